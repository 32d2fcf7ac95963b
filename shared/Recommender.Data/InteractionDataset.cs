namespace Recommender.Data;

/// <summary>
/// Side information as bags of tokens: row <c>r</c> lists the token ids of entity <c>r</c> (token 0 is
/// padding and never used). Items use it for categories, tags and title words; users for attributes.
/// </summary>
public sealed record FeatureTable(int[][] Tokens, IReadOnlyList<string> Vocabulary)
{
    public int VocabularySize => Vocabulary.Count;

    public int MaxTokens => Tokens.Length == 0 ? 0 : Tokens.Max(t => t.Length);

    /// <summary>Builds a table from token strings per entity; the vocabulary is in order of first use, index 0 reserved.</summary>
    public static FeatureTable FromStrings(IReadOnlyList<IReadOnlyList<string>> tokensPerRow)
    {
        var vocabulary = new List<string> { "<pad>" };
        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        var rows = new int[tokensPerRow.Count][];
        for (var r = 0; r < rows.Length; r++)
        {
            rows[r] = tokensPerRow[r].Distinct(StringComparer.Ordinal).Select(token =>
            {
                if (!index.TryGetValue(token, out var id))
                {
                    id = vocabulary.Count;
                    index[token] = id;
                    vocabulary.Add(token);
                }
                return id;
            }).ToArray();
        }
        return new FeatureTable(rows, vocabulary);
    }
}

/// <summary>
/// Users' interaction sequences over a catalog, with optional side information. Items are numbered
/// 1..<see cref="ItemCount"/> (0 is padding, as in SASRec); users 0..<see cref="UserCount"/>-1.
/// </summary>
/// <param name="ItemIds">External id of item i at index i; index 0 is the padding slot (empty string).</param>
/// <param name="Sequences">Per user, item numbers in time order.</param>
/// <param name="ItemFeatures">Rows indexed like <paramref name="ItemIds"/> (row 0 empty).</param>
/// <param name="UserFeatures">Rows indexed like <paramref name="UserIds"/>.</param>
public sealed record InteractionDataset(
    string Name,
    IReadOnlyList<string> ItemIds,
    IReadOnlyList<string> UserIds,
    int[][] Sequences,
    FeatureTable? ItemFeatures = null,
    FeatureTable? UserFeatures = null)
{
    public int ItemCount => ItemIds.Count - 1;

    public int UserCount => UserIds.Count;

    public long InteractionCount => Sequences.Sum(s => (long)s.Length);

    public override string ToString() =>
        $"{Name}: {UserCount:N0} users, {ItemCount:N0} items, {InteractionCount:N0} interactions ({InteractionCount / (double)Math.Max(1, UserCount):F1} per user)";

    /// <summary>
    /// Builds a dataset from (user, item, order) triples: items and users are numbered in order of first
    /// appearance (or by <paramref name="itemOrder"/>), each user's interactions sorted stably by order key.
    /// </summary>
    public static InteractionDataset FromInteractions(
        string name,
        IEnumerable<(string UserId, string ItemId, long Order)> interactions,
        IReadOnlyList<string>? itemOrder = null)
    {
        var items = new Dictionary<string, int>(StringComparer.Ordinal);
        var itemIds = new List<string> { "" };
        foreach (var id in itemOrder ?? [])
        {
            items[id] = itemIds.Count;
            itemIds.Add(id);
        }
        var users = new Dictionary<string, int>(StringComparer.Ordinal);
        var perUser = new List<List<(long Order, int Seq, int Item)>>();
        var seq = 0;
        foreach (var (userId, itemId, order) in interactions)
        {
            if (!items.TryGetValue(itemId, out var item))
            {
                item = itemIds.Count;
                items[itemId] = item;
                itemIds.Add(itemId);
            }
            if (!users.TryGetValue(userId, out var user))
            {
                user = perUser.Count;
                users[userId] = user;
                perUser.Add([]);
            }
            perUser[user].Add((order, seq++, item));
        }
        var sequences = perUser.Select(list => list.OrderBy(x => x.Order).ThenBy(x => x.Seq).Select(x => x.Item).ToArray()).ToArray();
        var userIds = new string[users.Count];
        foreach (var (id, index) in users)
            userIds[index] = id;
        return new InteractionDataset(name, itemIds, userIds, sequences);
    }
}

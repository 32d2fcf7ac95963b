using Recommender.Data;

namespace Recommender.Training.Reinforcement;

/// <summary>
/// How many of a user's last <see cref="RecentWindow"/> consumed items share a candidate's category (its
/// content token named "category:..."): the observable trace of fatigue with repeated content.
/// </summary>
public sealed class CategoryRepeats(int itemCount, FeatureTable? itemFeatures)
{
    public const int RecentWindow = 5;

    private readonly int[] _category = ItemCategories(itemCount, itemFeatures);

    /// <summary>The item's category token (-1 when it has none).</summary>
    public int Category(long item) => _category[item];

    public int Count(int[] history, long candidate)
    {
        var category = _category[candidate];
        if (category < 0)
            return 0;
        var count = 0;
        for (var i = Math.Max(0, history.Length - RecentWindow); i < history.Length; i++)
            count += _category[history[i]] == category ? 1 : 0;
        return count;
    }

    /// <summary>Each item's category token, -1 when it has none.</summary>
    private static int[] ItemCategories(int itemCount, FeatureTable? features)
    {
        var categories = Enumerable.Repeat(-1, itemCount + 1).ToArray();
        if (features is null)
            return categories;
        for (var item = 1; item <= itemCount && item < features.Tokens.Length; item++)
        {
            foreach (var token in features.Tokens[item])
            {
                if (features.Vocabulary[token].StartsWith("category", StringComparison.Ordinal))
                    categories[item] = token;
            }
        }
        return categories;
    }
}

using System.Globalization;
using Recommender.Events;

namespace Recommender.Data;

/// <summary>Knobs of the synthetic world, with the defaults used by the demo and the tests.</summary>
public sealed record SyntheticWorldOptions
{
    public int Users { get; init; } = 1000;
    public int Items { get; init; } = 500;
    /// <summary>Dimension of the hidden tastes and item factors.</summary>
    public int LatentDimension { get; init; } = 8;
    public int Categories { get; init; } = 12;
    /// <summary>Item popularity weights follow rank^-s.</summary>
    public double ZipfExponent { get; init; } = 1.0;
    /// <summary>How strongly popularity adds to an item's appeal (log-weight scale).</summary>
    public double PopularityWeight { get; init; } = 0.5;
    /// <summary>How sharply users prefer items that match their taste.</summary>
    public double TasteSharpness { get; init; } = 5.0;
    /// <summary>Standard deviation of the random walk of a user's taste per interaction.</summary>
    public double TasteDrift { get; init; } = 0.05;
    /// <summary>Appeal lost per item of the same category among the last <see cref="FatigueWindow"/> consumed.</summary>
    public double FatiguePerRepeat { get; init; } = 0.6;
    public int FatigueWindow { get; init; } = 5;
    /// <summary>Chance to leave after each interaction when satisfied; rises as satisfaction falls.</summary>
    public double BaseLeaveProbability { get; init; } = 0.05;
    public double UnsatisfiedLeaveProbability { get; init; } = 0.5;
    public int SessionsPerUser { get; init; } = 4;
    public int MaxSessionLength { get; init; } = 25;
    /// <summary>Items the user browses among at each step of organic (logged) behaviour, drawn by popularity.</summary>
    public int BrowsedCandidates { get; init; } = 60;
    /// <summary>
    /// Share of items that are clickbait (RecSim's "chocolate" against "kale"): <see cref="ClickbaitLure"/> more
    /// appealing to pick, but once consumed they satisfy only as much as their appeal without the lure, and the user,
    /// feeling tricked, may leave at once (<see cref="ClickbaitLeave"/>). A choice that pays now and costs later, so a
    /// policy that maximises picks per step is not the one that maximises a session's picks.
    /// They carry a "sensational" tag, as such titles do. 0 (the default): none.
    /// </summary>
    public double ClickbaitShare { get; init; }
    /// <summary>Appeal a clickbait item adds to being picked.</summary>
    public double ClickbaitLure { get; init; } = 1.0;
    /// <summary>Chance that a user who consumed a clickbait item leaves right after it, besides the usual chance to leave.</summary>
    public double ClickbaitLeave { get; init; } = 0.3;
    public int Seed { get; init; } = 7;

    /// <summary>Parses "users=2000,items=800,seed=3" (names as the properties, case-insensitive).</summary>
    public static SyntheticWorldOptions Parse(string text)
    {
        var options = new SyntheticWorldOptions();
        foreach (var pair in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var (key, value) = (pair.Split('=')[0].ToLowerInvariant(), pair.Split('=').ElementAtOrDefault(1) ?? "");
            int I() => int.Parse(value, CultureInfo.InvariantCulture);
            double D() => double.Parse(value, CultureInfo.InvariantCulture);
            options = key switch
            {
                "users" => options with { Users = I() },
                "items" => options with { Items = I() },
                "dim" or "latentdimension" => options with { LatentDimension = I() },
                "categories" => options with { Categories = I() },
                "zipf" or "zipfexponent" => options with { ZipfExponent = D() },
                "drift" or "tastedrift" => options with { TasteDrift = D() },
                "fatigue" or "fatigueperrepeat" => options with { FatiguePerRepeat = D() },
                "sessions" or "sessionsperuser" => options with { SessionsPerUser = I() },
                "sharpness" or "tastesharpness" => options with { TasteSharpness = D() },
                "candidates" or "browsedcandidates" => options with { BrowsedCandidates = I() },
                "clickbait" or "clickbaitshare" => options with { ClickbaitShare = D() },
                "lure" or "clickbaitlure" => options with { ClickbaitLure = D() },
                "baitleave" or "clickbaitleave" => options with { ClickbaitLeave = D() },
                "seed" => options with { Seed = I() },
                _ => throw new FormatException($"unknown synthetic option '{key}' (users, items, dim, categories, zipf, drift, fatigue, sessions, sharpness, candidates, clickbait, lure, baitleave, seed)"),
            };
        }
        return options;
    }
}

/// <summary>
/// What consuming an item gave the user besides the pick, as the event log records it: the share watched (0 to 1),
/// a like and a purchase (1 or 0; a learned simulator predicts their chances instead), and a rating of 1 to 5 stars.
/// </summary>
public readonly record struct Engagement(double Watched, double Liked, double Purchased, double Stars)
{
    /// <summary>Satisfaction from which a consumed item is liked.</summary>
    public const double LikedFrom = 0.9;
    /// <summary>Satisfaction from which a consumed item is bought.</summary>
    public const double PurchasedFrom = 0.97;

    /// <summary>
    /// The world's users act on how much an item satisfied them (s, 0 to 1): they watch the share s of it, like it
    /// from <see cref="LikedFrom"/>, buy it from <see cref="PurchasedFrom"/>, and give it 1 + 4s stars, rounded.
    /// </summary>
    public static Engagement FromSatisfaction(double satisfaction) =>
        new(satisfaction, satisfaction >= LikedFrom ? 1 : 0, satisfaction >= PurchasedFrom ? 1 : 0, 1 + Math.Round(4 * satisfaction));
}

/// <summary>A user of the world at one moment: hidden taste, what they recently consumed, how satisfied they are.</summary>
public sealed class WorldUser(int index, double[] taste, IReadOnlyList<string> attributes)
{
    public int Index { get; } = index;
    public double[] Taste { get; } = taste;
    public IReadOnlyList<string> Attributes { get; } = attributes;
    public List<int> RecentCategories { get; } = [];
    public double Satisfaction { get; set; } = 1.0;
}

/// <summary>
/// A seeded world with known truth: users with hidden tastes that drift, items with hidden factors
/// and observable categories, tags and text derived from them, Zipf-skewed popularity, sessions,
/// fatigue with repeated categories, and a chance to leave that grows when the user is not
/// satisfied. It is the demo data, a test fixture and the ground-truth environment for RL.
/// </summary>
/// <remarks>
/// Appeal of item i to user u: <c>sharpness * cos(taste_u, v_i) + popularityWeight * log w_i - fatigue * repeats(category_i)
/// (+ lure if i is clickbait)</c>. Organic behaviour (the logs): at each step the user browses candidates drawn by
/// popularity and picks one with probability softmax(appeal). A recommended slate is answered by <see cref="Respond"/>.
/// After each pick, satisfaction s ← 0.7 s + 0.3 σ(appeal, less the lure for clickbait) (0 for no pick), and the
/// user leaves with probability base + (unsatisfied - base)(1 - s), or after clickbait also with its own chance.
/// </remarks>
public sealed class SyntheticWorld
{
    private static readonly string[] Words =
    [
        "action", "calm", "dark", "bright", "retro", "space", "family", "puzzle", "story", "speed",
        "magic", "war", "music", "nature", "city", "horror", "comedy", "sport", "strategy", "craft",
    ];

    private readonly double[][] _itemFactors;
    private readonly double[] _logPopularity;
    private readonly double[] _popularityCdf;

    public SyntheticWorld(SyntheticWorldOptions? options = null)
    {
        Options = options ?? new SyntheticWorldOptions();
        var random = new Random(Options.Seed);
        var d = Options.LatentDimension;

        _itemFactors = Enumerable.Range(0, Options.Items).Select(_ => Normalize(Gaussian(random, d))).ToArray();
        // Popularity is independent of taste: a shuffled Zipf rank per item.
        var ranks = Enumerable.Range(1, Options.Items).OrderBy(_ => random.Next()).ToArray();
        _logPopularity = ranks.Select(r => -Options.ZipfExponent * Math.Log(r)).ToArray();
        _popularityCdf = new double[Options.Items];
        double sum = 0;
        for (var i = 0; i < Options.Items; i++)
            _popularityCdf[i] = sum += Math.Exp(_logPopularity[i]);
        for (var i = 0; i < Options.Items; i++)
            _popularityCdf[i] /= sum;

        // Observable content: the category is the nearest of a set of category directions; tags and text come from the strongest factors.
        var categoryDirections = Enumerable.Range(0, Options.Categories).Select(_ => Normalize(Gaussian(random, d))).ToArray();
        ItemCategory = _itemFactors.Select(v => ArgMax(categoryDirections.Select(c => Dot(c, v)).ToArray())).ToArray();
        ItemTags = _itemFactors.Select(v => TopDimensions(v, 2).Select(k => Words[(2 * k + (v[k] > 0 ? 0 : 1)) % Words.Length]).ToArray()).ToArray();
        // Clickbait from a generator of its own, so that a world without it is the same world as before.
        var clickbaitRandom = new Random(Options.Seed * 104729 + 3);
        IsClickbait = _itemFactors.Select(_ => clickbaitRandom.NextDouble() < Options.ClickbaitShare).ToArray();
        ItemTags = ItemTags.Select((tags, i) => IsClickbait[i] ? [.. tags, "sensational"] : tags).ToArray();

        var userRandom = new Random(Options.Seed * 7919 + 1);
        Users = Enumerable.Range(0, Options.Users).Select(u =>
        {
            var taste = Normalize(Gaussian(userRandom, d));
            // Attributes correlate with taste (so user features carry signal), plus noise.
            var region = FeatureTokens.Of("region", ((taste[0] > 0 ? 1 : 0) + 2 * (taste[1] > 0 ? 1 : 0)).ToString(System.Globalization.CultureInfo.InvariantCulture));
            var age = FeatureTokens.Of("age", taste[2] + 0.5 * Gaussian(userRandom, 1)[0] > 0 ? "young" : "older");
            return new WorldUser(u, taste, [region, age]);
        }).ToArray();
    }

    public SyntheticWorldOptions Options { get; }
    public IReadOnlyList<WorldUser> Users { get; }
    public int[] ItemCategory { get; }
    public string[][] ItemTags { get; }
    /// <summary>Whether each item is clickbait (<see cref="SyntheticWorldOptions.ClickbaitShare"/>).</summary>
    public bool[] IsClickbait { get; }

    public static string ItemId(int item) => "item" + item.ToString(CultureInfo.InvariantCulture);
    public static string UserId(int user) => "user" + user.ToString(CultureInfo.InvariantCulture);

    /// <summary>The world's index of an item id made by <see cref="ItemId"/> ("item17" is 17).</summary>
    public static int ItemIndex(string itemId) => int.Parse(itemId.AsSpan("item".Length), CultureInfo.InvariantCulture);

    /// <summary>The world's index of a user id made by <see cref="UserId"/> ("user17" is 17).</summary>
    public static int UserIndex(string userId) => int.Parse(userId.AsSpan("user".Length), CultureInfo.InvariantCulture);

    public string ItemTitle(int item) => $"{ItemTags[item][0]} {ItemTags[item][1]} {item}";

    /// <summary>The true similarity of two items: the cosine of their latent factors (ground truth for tests of learned item spaces).</summary>
    public double ItemSimilarity(int a, int b) => Dot(_itemFactors[a], _itemFactors[b]);

    /// <summary>The true appeal of an item to a user right now (higher is better).</summary>
    public double Appeal(WorldUser user, int item)
    {
        var repeats = user.RecentCategories.Count(c => c == ItemCategory[item]);
        return Options.TasteSharpness * Dot(user.Taste, _itemFactors[item])
            + Options.PopularityWeight * _logPopularity[item]
            - Options.FatiguePerRepeat * repeats
            + (IsClickbait[item] ? Options.ClickbaitLure : 0);
    }

    /// <summary>How much consuming the item satisfies the user right now (0 to 1): its appeal, less the lure for clickbait.</summary>
    public double Satisfaction(WorldUser user, int item) =>
        Sigmoid(Appeal(user, item) - (IsClickbait[item] ? Options.ClickbaitLure : 0));

    /// <summary>
    /// The user's answer to a recommended slate: picks an item (softmax over appeal, with a "none of
    /// these" option of appeal 0) or none; then consumes it (<see cref="Engagement"/>: how much of it they watch,
    /// whether they like it, buy it, how they rate it, all from how much it satisfies them), drifts, and may leave.
    /// </summary>
    public (int? Chosen, bool Left, Engagement? Engagement) Respond(WorldUser user, IReadOnlyList<int> slate, Random random)
    {
        var appeals = slate.Select(i => Appeal(user, i)).Append(0.0).ToArray();
        var pick = Sample(appeals, random);
        int? chosen = pick < slate.Count ? slate[pick] : null;
        Engagement? engagement = chosen is { } item ? Engagement.FromSatisfaction(Satisfaction(user, item)) : null;
        return (chosen, Step(user, chosen, random), engagement);
    }

    /// <summary>Organic behaviour as in the logs: browse popular candidates, pick one by appeal.</summary>
    public int Browse(WorldUser user, Random random)
    {
        var candidates = Enumerable.Range(0, Options.BrowsedCandidates).Select(_ => SampleByPopularity(random)).Distinct().ToArray();
        var appeals = candidates.Select(i => Appeal(user, i) - Options.PopularityWeight * _logPopularity[i]).ToArray(); // popularity already shaped the candidates
        return candidates[Sample(appeals, random)];
    }

    /// <summary>The user consumes <paramref name="item"/> (or nothing), tastes drift; returns whether they leave.</summary>
    public bool Step(WorldUser user, int? item, Random random)
    {
        var satisfaction = item is { } i ? Satisfaction(user, i) : 0.0;
        user.Satisfaction = 0.7 * user.Satisfaction + 0.3 * satisfaction;
        if (item is { } consumed)
        {
            user.RecentCategories.Add(ItemCategory[consumed]);
            if (user.RecentCategories.Count > Options.FatigueWindow)
                user.RecentCategories.RemoveAt(0);
        }
        var noise = Gaussian(random, user.Taste.Length);
        for (var k = 0; k < user.Taste.Length; k++)
            user.Taste[k] += Options.TasteDrift * noise[k];
        Normalize(user.Taste);
        var leave = Options.BaseLeaveProbability + (Options.UnsatisfiedLeaveProbability - Options.BaseLeaveProbability) * (1 - user.Satisfaction);
        if (item is { } taken && IsClickbait[taken])
            leave = 1 - (1 - leave) * (1 - Options.ClickbaitLeave);
        return random.NextDouble() < leave;
    }

    /// <summary>A copy of a user in its current state, for simulating from it without changing it.</summary>
    public static WorldUser Clone(WorldUser user)
    {
        var copy = new WorldUser(user.Index, (double[])user.Taste.Clone(), user.Attributes) { Satisfaction = user.Satisfaction };
        copy.RecentCategories.AddRange(user.RecentCategories);
        return copy;
    }

    /// <summary>
    /// Organic history: each user has several sessions of browsing; each step emits a click (and
    /// sometimes a like or purchase, which are also engagements). Deterministic for the world's seed.
    /// </summary>
    public IReadOnlyList<Interaction> GenerateHistory(DateTimeOffset start) => Simulate(start, out _);

    /// <summary>
    /// Each user as the organic history left them (taste drifted, recent categories, satisfaction): where a
    /// later session, such as an RL episode, starts. The same for every <c>start</c>, so no time is asked for.
    /// </summary>
    public IReadOnlyList<WorldUser> UsersAfterHistory()
    {
        Simulate(DateTimeOffset.UnixEpoch, out var users);
        return users;
    }

    private List<Interaction> Simulate(DateTimeOffset start, out WorldUser[] users)
    {
        var random = new Random(Options.Seed * 31 + 5);
        var events = new List<Interaction>();
        users = Users.Select(Clone).ToArray();
        for (var session = 0; session < Options.SessionsPerUser; session++)
        {
            foreach (var user in users)
            {
                var time = start.AddDays(session).AddMinutes(random.Next(0, 600));
                var sessionId = $"s{user.Index}-{session}";
                for (var step = 0; step < Options.MaxSessionLength; step++)
                {
                    var item = Browse(user, random);
                    var roll = random.NextDouble();
                    var type = roll < 0.05 ? InteractionType.Purchase : roll < 0.15 ? InteractionType.Like : InteractionType.Click;
                    time = time.AddSeconds(random.Next(20, 300));
                    events.Add(new Interaction($"syn-{events.Count}", UserId(user.Index), ItemId(item), type, null, time, sessionId));
                    if (Step(user, item, random))
                        break;
                }
            }
        }
        events.Sort((a, b) => a.Timestamp.CompareTo(b.Timestamp));
        return events;
    }

    /// <summary>The catalog and the user profiles as product events.</summary>
    public IEnumerable<WireEvent> CatalogAndProfileEvents(DateTimeOffset at) =>
        Enumerable.Range(0, Options.Items).Select(i => WireEvent.From(CatalogItemOf(i, at)))
            .Concat(Users.Select(u => WireEvent.From(new UserProfile($"syn-user-{u.Index}", UserId(u.Index),
                u.Attributes.ToDictionary(a => a.Split(':')[0], a => a.Split(':')[1]), at))));

    /// <summary>The history as a training dataset, with item content and user attributes as features.</summary>
    public InteractionDataset ToDataset(IReadOnlyList<Interaction> history)
    {
        var data = InteractionDataset.FromInteractions($"synthetic(seed={Options.Seed})",
            history.Select(e => (e.UserId, e.ItemId!, e.Timestamp.UtcTicks)),
            Enumerable.Range(0, Options.Items).Select(ItemId).ToList());
        return data with
        {
            ItemFeatures = FeatureTable.FromStrings(data.ItemIds.Select(id => id.Length == 0
                ? (IReadOnlyList<string>)[]
                : ItemTokens(ItemIndex(id))).ToList()),
            UserFeatures = FeatureTable.FromStrings(data.UserIds.Select(id => Users[UserIndex(id)].Attributes).ToList()),
        };
    }

    /// <summary>An item as the catalog knows it (what <see cref="CatalogAndProfileEvents"/> sends).</summary>
    private CatalogItem CatalogItemOf(int item, DateTimeOffset at) => new($"syn-item-{item}", ItemId(item),
        [ItemCategory[item].ToString(System.Globalization.CultureInfo.InvariantCulture)], ItemTags[item], ItemTitle(item), $"A {ItemTags[item][0]} and {ItemTags[item][1]} title.", true, at);

    /// <summary>An item's content tokens, named as serving names them from the catalog (<see cref="FeatureTokens"/>), so a model trained here reads the served catalog.</summary>
    public IReadOnlyList<string> ItemTokens(int item) => FeatureTokens.OfItem(CatalogItemOf(item, DateTimeOffset.UnixEpoch));

    private int SampleByPopularity(Random random)
    {
        var i = Array.BinarySearch(_popularityCdf, random.NextDouble());
        return Math.Min(i < 0 ? ~i : i, Options.Items - 1);
    }

    private static int Sample(double[] logits, Random random)
    {
        var max = logits.Max();
        var weights = logits.Select(l => Math.Exp(l - max)).ToArray();
        var r = random.NextDouble() * weights.Sum();
        for (var i = 0; i < weights.Length; i++)
        {
            r -= weights[i];
            if (r <= 0)
                return i;
        }
        return weights.Length - 1;
    }

    private static double[] Gaussian(Random random, int n) =>
        Enumerable.Range(0, n).Select(_ => Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble())).ToArray();

    private static double[] Normalize(double[] v)
    {
        var norm = Math.Sqrt(v.Sum(x => x * x));
        for (var i = 0; i < v.Length; i++)
            v[i] /= norm > 0 ? norm : 1;
        return v;
    }

    private static double Dot(double[] a, double[] b)
    {
        double s = 0;
        for (var i = 0; i < a.Length; i++)
            s += a[i] * b[i];
        return s;
    }

    private static int ArgMax(double[] v) => Array.IndexOf(v, v.Max());

    private static IEnumerable<int> TopDimensions(double[] v, int n) =>
        Enumerable.Range(0, v.Length).OrderByDescending(k => Math.Abs(v[k])).Take(n);

    private static double Sigmoid(double x) => 1 / (1 + Math.Exp(-x));
}

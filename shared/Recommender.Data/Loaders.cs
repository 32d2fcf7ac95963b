using System.Globalization;
using System.Text.RegularExpressions;
using Recommender.Events;

namespace Recommender.Data;

/// <summary>SASRec's preprocessed files: one <c>user item</c> line per interaction, grouped by user, in time order.</summary>
public static class SasRecFile
{
    public static InteractionDataset Load(string path)
    {
        var rows = new List<(string User, string Item, long Order)>();
        var maxItem = 0;
        foreach (var line in File.ReadLines(path))
        {
            if (line.Length == 0)
                continue;
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length != 2 || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var item) || item < 1)
                throw new FormatException($"{path}:{rows.Count + 1}: expected 'user item' with a positive item number, got '{line}'");
            maxItem = Math.Max(maxItem, item);
            rows.Add((parts[0], parts[1], rows.Count));
        }
        // Keep SASRec's numbering: item k is number k, so results compare with the paper's code.
        var itemOrder = Enumerable.Range(1, maxItem).Select(i => i.ToString(CultureInfo.InvariantCulture)).ToList();
        return InteractionDataset.FromInteractions(Path.GetFileNameWithoutExtension(path), rows, itemOrder);
    }
}

/// <summary>
/// MovieLens 100K (<c>u.data</c>, <c>u.item</c>, <c>u.user</c>) and 1M (<c>ratings.dat</c>, <c>movies.dat</c>,
/// <c>users.dat</c>). Every rating is an interaction (as in SASRec), ordered by timestamp. Items carry their
/// genres, title words and release decade; users their age band, gender, occupation and zip prefix.
/// </summary>
public static partial class MovieLens
{
    public static InteractionDataset Load(string directory)
    {
        if (File.Exists(Path.Combine(directory, "u.data")))
            return Load100K(directory);
        if (File.Exists(Path.Combine(directory, "ratings.dat")))
            return Load1M(directory);
        throw new FileNotFoundException($"{directory} holds neither u.data (MovieLens 100K) nor ratings.dat (MovieLens 1M)");
    }

    private static InteractionDataset Load100K(string dir)
    {
        var ratings = File.ReadLines(Path.Combine(dir, "u.data")).Where(l => l.Length > 0).Select(l =>
        {
            var f = l.Split('\t');
            return (f[0], f[1], long.Parse(f[3], CultureInfo.InvariantCulture));
        });
        var genres = File.ReadLines(Path.Combine(dir, "u.genre")).Where(l => l.Contains('|')).Select(l => l.Split('|')[0]).ToArray();
        var itemTokens = new Dictionary<string, List<string>>();
        foreach (var line in File.ReadLines(Path.Combine(dir, "u.item"), System.Text.Encoding.Latin1).Where(l => l.Length > 0))
        {
            var f = line.Split('|');
            var tokens = new List<string>();
            for (var g = 0; g < genres.Length && 5 + g < f.Length; g++)
            {
                if (f[5 + g] == "1")
                    tokens.Add(FeatureTokens.Of("genre", genres[g]));
            }
            tokens.AddRange(TitleTokens(f[1]));
            itemTokens[f[0]] = tokens;
        }
        var userTokens = File.ReadLines(Path.Combine(dir, "u.user")).Where(l => l.Length > 0).Select(l => l.Split('|'))
            .ToDictionary(f => f[0], f => UserTokens(int.Parse(f[1], CultureInfo.InvariantCulture), f[2], f[3], f[4]));
        return WithFeatures(InteractionDataset.FromInteractions("ml-100k", ratings), itemTokens, userTokens);
    }

    private static InteractionDataset Load1M(string dir)
    {
        var ratings = File.ReadLines(Path.Combine(dir, "ratings.dat")).Where(l => l.Length > 0).Select(l =>
        {
            var f = l.Split("::");
            return (f[0], f[1], long.Parse(f[3], CultureInfo.InvariantCulture));
        });
        var itemTokens = File.ReadLines(Path.Combine(dir, "movies.dat"), System.Text.Encoding.Latin1).Where(l => l.Length > 0).Select(l => l.Split("::"))
            .ToDictionary(f => f[0], f => f[2].Split('|').Select(g => FeatureTokens.Of("genre", g)).Concat(TitleTokens(f[1])).ToList());
        var userTokens = File.ReadLines(Path.Combine(dir, "users.dat")).Where(l => l.Length > 0).Select(l => l.Split("::"))
            .ToDictionary(f => f[0], f => UserTokens(int.Parse(f[2], CultureInfo.InvariantCulture), f[1], "occupation" + f[3], f[4]));
        return WithFeatures(InteractionDataset.FromInteractions("ml-1m", ratings), itemTokens, userTokens);
    }

    private static InteractionDataset WithFeatures(InteractionDataset data, Dictionary<string, List<string>> items, Dictionary<string, List<string>> users) =>
        data with
        {
            ItemFeatures = FeatureTable.FromStrings(data.ItemIds.Select(id => (IReadOnlyList<string>?)items.GetValueOrDefault(id) ?? []).ToList()),
            UserFeatures = FeatureTable.FromStrings(data.UserIds.Select(id => (IReadOnlyList<string>?)users.GetValueOrDefault(id) ?? []).ToList()),
        };

    /// <summary>Lower-cased title words (3+ letters) and the release decade, from "Toy Story (1995)".</summary>
    internal static IEnumerable<string> TitleTokens(string title)
    {
        var year = YearPattern().Match(title);
        if (year.Success)
            yield return FeatureTokens.Of("decade", year.Groups[1].Value[..3] + "0s");
        foreach (Match word in WordPattern().Matches(YearPattern().Replace(title, "")))
        {
            if (word.Value.Length >= 3)
                yield return FeatureTokens.Of("word", word.Value.ToLowerInvariant());
        }
    }

    private static List<string> UserTokens(int age, string gender, string occupation, string zip) =>
    [
        FeatureTokens.Of("age", (age < 18 ? "under18" : age < 25 ? "18-24" : age < 35 ? "25-34" : age < 45 ? "35-44" : age < 55 ? "45-54" : "55+")),
        FeatureTokens.Of("gender", gender),
        FeatureTokens.Of("occupation", occupation),
        FeatureTokens.Of("zip", zip.Length > 0 ? zip[..1] : "?"),
    ];

    [GeneratedRegex(@"\((\d{4})\)\s*$")]
    private static partial Regex YearPattern();

    [GeneratedRegex(@"[A-Za-z]+")]
    private static partial Regex WordPattern();
}

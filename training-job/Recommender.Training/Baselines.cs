using Recommender.Data;

namespace Recommender.Training;

/// <summary>Most interacted-with items in training, the same list for everyone.</summary>
public sealed class PopularityScorer : ISequenceScorer
{
    private readonly float[] _counts;

    public PopularityScorer(LeaveOneOutSplit split, int itemCount)
    {
        _counts = new float[itemCount + 1];
        foreach (var sequence in split.Train)
        {
            foreach (var item in sequence)
                _counts[item]++;
        }
    }

    public string Name => "Popularity";

    /// <summary>log(1 + training interactions) of every item (index = item number): popularity as a feature.</summary>
    public float[] LogCounts() => _counts.Select(c => (float)Math.Log(1 + c)).ToArray();

    /// <summary>The most interacted-with items (numbers), most first; ties by item number. Serves users without history.</summary>
    public IEnumerable<int> MostPopular(int count) =>
        Enumerable.Range(1, _counts.Length - 1).Where(i => _counts[i] > 0).OrderByDescending(i => _counts[i]).ThenBy(i => i).Take(count);

    public float[][] Score(IReadOnlyList<int> users, IReadOnlyList<int[]> histories) =>
        users.Select(_ => (float[])_counts.Clone()).ToArray();
}

/// <summary>
/// Item-based collaborative filtering: cosine similarity of items over the users who interacted with
/// them (training sequences), each item keeping its <c>neighbours</c> most similar items; a user's
/// score for an item is the sum of its similarities to the items in the history.
/// </summary>
public sealed class ItemKnnScorer : ISequenceScorer
{
    private readonly (int Item, float Similarity)[][] _neighbours;
    private readonly int _itemCount;

    public ItemKnnScorer(LeaveOneOutSplit split, int itemCount, int neighbours = 100)
    {
        _itemCount = itemCount;
        var usersOf = new List<int>[itemCount + 1];
        for (var i = 0; i <= itemCount; i++)
            usersOf[i] = [];
        var itemsOf = split.Train.Select(s => s.Distinct().ToArray()).ToArray();
        for (var u = 0; u < itemsOf.Length; u++)
        {
            foreach (var item in itemsOf[u])
                usersOf[item].Add(u);
        }

        _neighbours = new (int, float)[itemCount + 1][];
        var overlap = new int[itemCount + 1];
        var touched = new List<int>();
        for (var i = 1; i <= itemCount; i++)
        {
            foreach (var u in usersOf[i])
            {
                foreach (var j in itemsOf[u])
                {
                    if (j == i)
                        continue;
                    if (overlap[j]++ == 0)
                        touched.Add(j);
                }
            }
            _neighbours[i] = touched
                .Select(j => (j, (float)(overlap[j] / Math.Sqrt((double)usersOf[i].Count * usersOf[j].Count))))
                .OrderByDescending(x => x.Item2).ThenBy(x => x.j)
                .Take(neighbours).ToArray();
            foreach (var j in touched)
                overlap[j] = 0;
            touched.Clear();
        }
    }

    public string Name => "ItemKNN";

    public float[][] Score(IReadOnlyList<int> users, IReadOnlyList<int[]> histories) =>
        histories.Select(history =>
        {
            var scores = new float[_itemCount + 1];
            foreach (var item in history)
            {
                foreach (var (neighbour, similarity) in _neighbours[item])
                    scores[neighbour] += similarity;
            }
            return scores;
        }).ToArray();
}

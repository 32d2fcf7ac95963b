using Recommender.Data;
using Recommender.TestSupport;

namespace Recommender.Data.Tests;

[Trait("Kind", "Unit")]
public sealed class LoaderTests
{
    [Fact]
    public void MovieLens_100k_loads_every_rating_with_item_and_user_features()
    {
        var data = MovieLens.Load(SharedData.Path("ml-100k"));

        Assert.Equal((943, 1682, 100_000L), (data.UserCount, data.ItemCount, data.InteractionCount));
        var toyStory = data.ItemFeatures!.Tokens[data.ItemIds.ToList().IndexOf("1")].Select(t => data.ItemFeatures.Vocabulary[t]).ToList();
        Assert.Contains("genre:Animation", toyStory);
        Assert.Contains("genre:Comedy", toyStory);
        Assert.Contains("decade:1990s", toyStory);
        Assert.Contains("word:toy", toyStory);
        var user1 = data.UserFeatures!.Tokens[data.UserIds.ToList().IndexOf("1")].Select(t => data.UserFeatures.Vocabulary[t]).ToList();
        Assert.Equal(["age:18-24", "gender:M", "occupation:technician", "zip:8"], user1);
    }

    [Fact]
    public void MovieLens_sequences_are_in_timestamp_order()
    {
        var dir = SharedData.Path("ml-100k");
        var data = MovieLens.Load(dir);
        var times = File.ReadLines(Path.Combine(dir, "u.data")).Select(l => l.Split('\t'))
            .ToDictionary(f => (f[0], f[1]), f => long.Parse(f[3], System.Globalization.CultureInfo.InvariantCulture));

        for (var u = 0; u < data.UserCount; u += 37)
        {
            var stamps = data.Sequences[u].Select(i => times[(data.UserIds[u], data.ItemIds[i])]).ToList();
            Assert.Equal(stamps.Order(), stamps);
        }
    }

    [Fact]
    public void SasRec_games_file_loads_with_the_papers_counts_and_numbering()
    {
        var data = SasRecFile.Load(SharedData.Path("sasrec", "Video.txt"));

        Assert.Equal((31_013, 23_715, 287_107L), (data.UserCount, data.ItemCount, data.InteractionCount));
        var firstLine = File.ReadLines(SharedData.Path("sasrec", "Video.txt")).First().Split(' ');
        Assert.Equal(firstLine[1], data.ItemIds[data.Sequences[0][0]]);
        Assert.Equal(int.Parse(firstLine[1], System.Globalization.CultureInfo.InvariantCulture), data.Sequences[0][0]); // item k is number k
    }

    [Fact]
    public void A_malformed_line_names_file_and_line()
    {
        var path = System.IO.Path.GetTempFileName();
        File.WriteAllLines(path, ["1 2", "oops"]);
        var error = Assert.Throws<FormatException>(() => SasRecFile.Load(path));
        Assert.Contains(":2:", error.Message);
    }
}

[Trait("Kind", "Unit")]
public sealed class SplitTests
{
    [Fact]
    public void Leave_one_out_holds_out_the_last_two_items_of_users_with_at_least_three()
    {
        var data = new InteractionDataset("toy", ["", "a", "b", "c", "d"], ["long", "short"], [[1, 2, 3, 4], [2, 3]]);

        var split = LeaveOneOutSplit.Create(data);

        Assert.Equal([1, 2], split.Train[0]);
        Assert.Equal((3, 4), (split.Validation[0], split.Test[0]));
        Assert.Equal([1, 2, 3], split.History(0, EvaluationStage.Test));
        Assert.Equal([2, 3], split.Train[1]);
        Assert.Equal((0, 0), (split.Validation[1], split.Test[1]));
        Assert.Equal([0], split.EvaluableUsers(EvaluationStage.Test));
    }

    [Fact]
    public void Feature_tables_number_tokens_from_one_in_order_of_first_use()
    {
        var table = FeatureTable.FromStrings([[], ["x", "y", "x"], ["y", "z"]]);

        Assert.Equal(["<pad>", "x", "y", "z"], table.Vocabulary);
        Assert.Equal([[], [1, 2], [2, 3]], table.Tokens);
    }
}

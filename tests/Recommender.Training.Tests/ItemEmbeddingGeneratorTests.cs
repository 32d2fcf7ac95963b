using Recommender.Experiments;
using Recommender.Data;
using Recommender.Training.MetaLearning;
using static TorchSharp.torch;

namespace Recommender.Training.Tests;

/// <summary>New items scored from content: on a synthetic world whose item factors are known, held-out items land among truly similar items.</summary>
[Collection("Torch")]
public sealed class ItemEmbeddingGeneratorTests
{
    [Fact]
    public void A_zero_interaction_item_is_generated_into_the_neighbourhood_of_truly_similar_items()
    {
        var world = new SyntheticWorld(new SyntheticWorldOptions { Users = 400, Items = 120, Seed = 21 });
        var data = world.ToDataset(world.GenerateHistory(DateTimeOffset.UnixEpoch.AddYears(50)));
        var metaConfig = new MetaLearningConfig { ColdItemShare = 0.2, GeneratorEpochs = 10 };
        var coldStart = new ColdStartRun(metaConfig, new EvaluationProtocol());
        var warm = coldStart.WarmPart(data);
        var warmSplit = LeaveOneOutSplit.Create(warm);
        var config = new SequenceModelConfig
        {
            Dimension = 32, Blocks = 1, MaxLength = 20, Dropout = 0.1, Epochs = 20, EvaluateEvery = 20, BatchSize = 64, LearningRate = 0.003, Seed = 1,
        };
        var encoder = new SequenceModelTrainer(config).Train(warm, warmSplit).Model;

        var (states, targets) = ItemGeneratorTraining.TrainingPairs(encoder, config, data.UserFeatures, warmSplit.Train);
        using var noGrad = no_grad();
        var items = encoder.ItemVectors().detach();
        var content = encoder.ContentVectors()!.detach();
        var generator = new ItemEmbeddingGenerator(config.Dimension);
        using (enable_grad())
        {
            var curve = ItemGeneratorTraining.Train(generator, states, targets, items, content, metaConfig);
            Assert.True(curve[^1] < curve[0], $"new-item loss {curve[0]:F3} -> {curve[^1]:F3}");
        }

        var cold = Enumerable.Range(1, data.ItemCount).Where(coldStart.IsColdItem).ToArray();
        var warmItems = Enumerable.Range(1, data.ItemCount).Where(i => !coldStart.IsColdItem(i)).ToArray();
        Assert.True(cold.Length >= 10, $"{cold.Length} cold items");
        Assert.All(cold, i => Assert.DoesNotContain(warm.Sequences, s => s.Contains(i)));
        var table = nn.functional.normalize(generator.ItemTable(items, content, cold.Select(i => (long)i).ToArray()), dim: 1);
        int World(int item) => SyntheticWorld.ItemIndex(data.ItemIds[item]);

        // True similarity of each new item to its 5 nearest known items in the generated space, against all known items.
        double neighbours = 0, everyone = 0;
        foreach (var c in cold)
        {
            var cosine = table.index_select(0, tensor(warmItems.Select(i => (long)i).ToArray())).matmul(table[c]).data<float>().ToArray();
            var nearest = warmItems.Zip(cosine).OrderByDescending(p => p.Second).Take(5).Select(p => p.First);
            neighbours += nearest.Average(i => world.ItemSimilarity(World(c), World(i)));
            everyone += warmItems.Average(i => world.ItemSimilarity(World(c), World(i)));
        }
        neighbours /= cold.Length;
        everyone /= cold.Length;
        Assert.True(neighbours > everyone + 0.2, $"true similarity to the 5 nearest {neighbours:F3} vs to any known item {everyone:F3}");
    }
}

using Recommender.Data;

namespace Recommender.Training.Tests;

/// <summary>Models trained side by side in one process, as the serving and Functions test fixtures do.</summary>
public sealed class ConcurrentTrainingTests
{
    /// <summary>
    /// Optimizer steps hold the collector off in a process-wide no-GC region (TorchScalars); two trainings
    /// that entered it at the same moment threw "already in no GC region". They now take turns: every
    /// training finishes and learns (its loss falls). Which seed draws which random number is not defined here.
    /// </summary>
    [Fact]
    public void Four_trainings_at_once_all_finish_and_learn()
    {
        var world = new SyntheticWorld(new SyntheticWorldOptions { Users = 150, Items = 60, Seed = 5 });
        var data = world.ToDataset(world.GenerateHistory(DateTimeOffset.UnixEpoch.AddYears(50)));
        var split = LeaveOneOutSplit.Create(data);
        var config = new SequenceModelConfig { Dimension = 8, Blocks = 1, MaxLength = 10, Epochs = 60, EvaluateEvery = 60, BatchSize = 8, Negatives = 8 };

        var results = new TrainingOutcome[4];
        Parallel.For(0, results.Length, new ParallelOptions { MaxDegreeOfParallelism = results.Length }, i => results[i] = new SequenceModelTrainer(config with { Seed = i }).Train(data, split));

        Assert.All(results, r => Assert.True(r.Curve[^1].Loss < r.Curve[0].Loss, $"loss {r.Curve[0].Loss:F3} -> {r.Curve[^1].Loss:F3}"));
    }
}

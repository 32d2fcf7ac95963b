using Recommender.Data;
using Recommender.Training.Reinforcement;

namespace Recommender.Training.Tests;

/// <summary>
/// TorchSharp turns a number given to an operation (and the alpha = 1 inside every tensor +) into a Scalar that
/// nothing references once its handle is read; a collection started by another thread while libtorch runs the
/// operation can finalize it under libtorch, which then fails ("Expected false to be true") or reads freed memory
/// (dotnet/TorchSharp#1434). A thread that allocates without pause makes such collections constant: training,
/// acting and PPO must survive it (before <c>TorchScalars.Plus</c> this crashed within seconds, in the encoder's
/// residual additions and the actor's logits). Optimizer steps are the exception: TorchSharp makes their Scalars
/// inside, and they are safe only while the collector is held off (<c>TorchScalars.StepWithoutCollection</c>), which
/// another thread's allocations would end; this thread, like the training job's own, does not allocate meanwhile.
/// </summary>
[Collection("Torch")]
public sealed class ScalarLifetimeTests
{
    [Fact]
    public void Training_acting_and_policy_optimisation_survive_a_thread_that_allocates_meanwhile()
    {
        var world = new SyntheticWorld(new SyntheticWorldOptions { Users = 600, Items = 300, Seed = 11 });
        var data = world.ToDataset(world.GenerateHistory(DateTimeOffset.UnixEpoch.AddYears(50)));
        var split = LeaveOneOutSplit.Create(data);
        var users = Enumerable.Range(0, data.UserCount).Where(u => data.Sequences[u].Length > 0).ToList();
        var population = world.UsersAfterHistory();

        using var stop = new CancellationTokenSource();
        var noise = new Thread(() =>
        {
            var kept = new object[64];
            for (var i = 0; !stop.IsCancellationRequested; i++)
            {
                if (System.Runtime.GCSettings.LatencyMode != System.Runtime.GCLatencyMode.NoGCRegion)
                    kept[i % kept.Length] = new byte[1024];
            }
        }) { IsBackground = true };
        noise.Start();
        try
        {
            var config = new SequenceModelConfig { Dimension = 32, Blocks = 2, MaxLength = 30, Epochs = 3, EvaluateEvery = 3, BatchSize = 32, Negatives = 32, Seed = 1 };
            var encoder = new SequenceModelTrainer(config).Train(data, split).Model;
            encoder.eval();
            var policy = new SequenceActorCritic(encoder, config, data.UserFeatures, data.ItemFeatures, new PopularityScorer(split, data.ItemCount).LogCounts(), candidates: 20);
            var reference = new SequenceActorCritic(encoder, config, data.UserFeatures, data.ItemFeatures, new PopularityScorer(split, data.ItemCount).LogCounts(), candidates: 20);
            var curve = new PolicyOptimizer<SessionState>(new PolicyOptimizationConfig { Iterations = 20, EpisodesPerIteration = 128, MinibatchSize = 64, ReferenceKlCoefficient = 0.1, Seed = 2 }, policy,
                () => new SessionEnvironment(world, population, data, users, new RewardConfig()), reference: reference).Train();

            Assert.Equal(20, curve.Count);
            Assert.All(curve, r => Assert.True(double.IsFinite(r.ValueLoss) && double.IsFinite(r.ReferenceKl)));
        }
        finally
        {
            stop.Cancel();
            noise.Join();
        }
    }
}

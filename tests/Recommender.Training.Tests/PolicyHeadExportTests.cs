using System.Text.Json;
using Recommender.Data;
using Recommender.Serving;
using Recommender.Training;
using Recommender.Training.Reinforcement;
using Recommender.Training.Pipeline;

namespace Recommender.Training.Tests;

/// <summary>
/// A policy learned by RL, as serving runs it: the head's per-item terms in the ONNX graph, its session terms and
/// temperature in the manifest, the session read by <see cref="SlateRanker"/>. Its logits must be the training job's.
/// </summary>
[Collection("Torch")]
public sealed class PolicyHeadExportTests(Xunit.Abstractions.ITestOutputHelper output)
{
    [Fact]
    public async Task Served_logits_equal_the_actors_for_the_same_session_state()
    {
        var world = new SyntheticWorld(new SyntheticWorldOptions { Users = 200, Items = 120, Seed = 5, ClickbaitShare = 0.1, SessionsPerUser = 2 });
        var data = world.ToDataset(world.GenerateHistory(DateTimeOffset.UnixEpoch.AddYears(50)));
        var run = Path.Combine(Path.GetTempPath(), "head-export-" + Guid.NewGuid().ToString("N"));
        var config = new SequenceModelConfig { Dimension = 16, Blocks = 1, MaxLength = 20, Epochs = 2, EvaluateEvery = 2, BatchSize = 64, Negatives = 32, ItemGenerator = true };
        await new TrainingRun(config, new EvaluationProtocol()).RunAsync(data, run);
        var encoder = SavedModel.Load(run, data, out var modelConfig);
        var split = LeaveOneOutSplit.Create(data);
        var actor = new SequenceActorCritic(encoder, modelConfig, data.UserFeatures, data.ItemFeatures, new PopularityScorer(split, data.ItemCount).LogCounts(), candidates: 30, temperature: 0.25);
        actor.SetHead(PolicyHead.Parse("sharpness=0.4;repetition=-0.6;declined=-0.9;declinedAffinity=-0.3;popularity=0.2;tag:sensational=-1.5;category:3=0.7"));

        var (graph, policy) = actor.Export();
        await File.WriteAllBytesAsync(Path.Combine(run, "policy.onnx"), PolicyExporter.Export(encoder, modelConfig, graph));
        await File.WriteAllTextAsync(Path.Combine(run, ProductPolicyStage.PolicyFile), JsonSerializer.Serialize(policy, TrainingJsonContext.Default.ServingPolicy));
        using var model = PolicyModel.Load(RunPublisher.Manifest(run, "v-head", "test"), await File.ReadAllBytesAsync(Path.Combine(run, "policy.onnx")));
        var served = new PublishedPolicy(model, data);

        // Session states with a history and slates already shown this session, some taken, some passed over.
        var random = new Random(3);
        var maxDiff = 0.0;
        var states = 0;
        foreach (var user in Enumerable.Range(0, data.UserCount).Where(u => data.Sequences[u].Length is > 3 and <= 40).Take(40))
        {
            var state = SessionState.Start(user, data.Sequences[user]);
            for (var step = 0; step < 3; step++)
            {
                var candidates = actor.Candidates(state);
                using (TorchSharp.torch.NewDisposeScope())
                {
                    var expected = actor.Forward([state], [candidates]).Logits[0].data<float>().ToArray();
                    var at = served.At(state);
                    Assert.Equal(candidates.Order(), at.Candidates.Order());
                    for (var c = 0; c < candidates.Length; c++)
                        maxDiff = Math.Max(maxDiff, Math.Abs(expected[c] - at.Logits[Array.IndexOf(at.Candidates, candidates[c])]));
                }
                states++;
                var slate = candidates.OrderBy(_ => random.Next()).Take(5).ToArray();
                state = state.After(slate, random.Next(3) == 0 ? (int)slate[0] : null);
            }
        }
        output.WriteLine($"max |served - actor| logit = {maxDiff:E2} over {states} session states");
        Assert.True(maxDiff <= 1e-4, $"max |served - actor| logit = {maxDiff:E2}");
        Assert.Equal(ServingPath.Policy, SlateRanker.Rank(model, new RankingInput([1, 2], null, []), _ => true, 0, new ExplorationOptions()).Path);
    }
}

using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Recommender.Data;
using Recommender.Training;

namespace Recommender.Training.Tests;

/// <summary>The exported ONNX graph answers as the TorchSharp model does, on real histories.</summary>
[Collection("Torch")]
public sealed class PolicyExportTests(Xunit.Abstractions.ITestOutputHelper output)
{
    [Theory]
    [InlineData(2, 1, true, false)]
    [InlineData(2, 1, true, true)]
    [InlineData(2, 2, false, false)]
    public void Onnx_runtime_matches_the_torch_forward_pass(int blocks, int heads, bool features, bool generator)
    {
        var world = new SyntheticWorld(new SyntheticWorldOptions { Users = 300, Items = 200, Seed = 9 });
        var data = world.ToDataset(world.GenerateHistory(DateTimeOffset.UnixEpoch.AddYears(50)));
        var split = LeaveOneOutSplit.Create(data);
        var config = new SequenceModelConfig
        {
            Dimension = 32, Blocks = blocks, Heads = heads, MaxLength = 20, Epochs = 3, EvaluateEvery = 3, BatchSize = 64, Negatives = 64,
            ItemContent = features, UserFeatures = features, ItemGenerator = generator, Seed = 4,
        };
        var outcome = new SequenceModelTrainer(config).Train(data, split);
        Recommender.Training.MetaLearning.ItemGeneratorTraining.FitFor(outcome.Model, config, data.UserFeatures, split.Train, outcome.Device, new() { GeneratorEpochs = 2 });
        var users = Enumerable.Range(0, 64).ToArray();
        var histories = users.Select(u => split.History(u, EvaluationStage.Test)).ToArray();
        var expected = new SasRecScorer(outcome.Model, config, data.UserFeatures, outcome.Device).Score(users, histories);

        var onnx = PolicyExporter.Export(outcome.Model, config);
        using var options = Recommender.Serving.PolicyModel.NewSessionOptions();
        using var session = new InferenceSession(onnx, options);
        var history = new DenseTensor<long>([users.Length, config.MaxLength]);
        for (var b = 0; b < users.Length; b++)
        {
            var h = histories[b].TakeLast(config.MaxLength).ToArray();
            for (var t = 0; t < h.Length; t++)
                history[b, config.MaxLength - h.Length + t] = h[t];
        }
        var inputs = new List<NamedOnnxValue>
        {
            NamedOnnxValue.CreateFromTensor("history", history),
            NamedOnnxValue.CreateFromTensor("k", new DenseTensor<long>(new long[] { 10 }, [1])),
        };
        if (features)
        {
            var width = data.UserFeatures!.MaxTokens;
            var tokens = new DenseTensor<long>([users.Length, width]);
            for (var b = 0; b < users.Length; b++)
                for (var t = 0; t < data.UserFeatures.Tokens[users[b]].Length; t++)
                    tokens[b, t] = data.UserFeatures.Tokens[users[b]][t];
            inputs.Add(NamedOnnxValue.CreateFromTensor("user_tokens", tokens));
        }
        using var results = session.Run(features
            ? inputs.Append(NamedOnnxValue.CreateFromTensor("candidate_tokens", new DenseTensor<long>([1, 1]))).ToList()
            : inputs);
        var scores = results.First(r => r.Name == "scores").AsTensor<float>();
        var topItems = results.First(r => r.Name == "top_items").AsTensor<long>();

        var maxDiff = 0.0;
        for (var b = 0; b < users.Length; b++)
        {
            for (var i = 1; i <= data.ItemCount; i++)
                maxDiff = Math.Max(maxDiff, Math.Abs(scores[b, i] - expected[b][i]));
            var torchTop = Enumerable.Range(1, data.ItemCount).OrderByDescending(i => expected[b][i]).Take(10).Select(i => (long)i);
            Assert.Equal(torchTop, Enumerable.Range(0, 10).Select(k => topItems[b, k]));
            Assert.True(float.IsNegativeInfinity(scores[b, 0]), "the padding item is never recommended");
        }
        output.WriteLine($"max |onnx - torch| = {maxDiff:E2} over {users.Length} users x {data.ItemCount} items");
        Assert.True(maxDiff <= 1e-5, $"max |onnx - torch| = {maxDiff:E2}");

        if (features)
        {
            // Items scored from content alone: torch's content part of ItemVectors (with the generator: G(c) + c) against the same state.
            var candidates = new[] { 1, 2, 3 };
            var state = outcome.Model.forward(SequenceBatches.Histories([histories[0]], config.MaxLength, TorchSharp.torch.CPU),
                SequenceBatches.UserTokens(data.UserFeatures, [users[0]], TorchSharp.torch.CPU))[.., -1, ..];
            var content = outcome.Model.NewItemVectors(outcome.Model.ContentVectors()!);
            Assert.Equal(generator, outcome.Model.Generator is not null);
            if (generator)
                Assert.False(content.allclose(outcome.Model.ContentVectors()!), "the generator moves new items away from content alone");
            var expectedContent = state.matmul(content.index_select(0, TorchSharp.torch.tensor(candidates.Select(c => (long)c).ToArray())).T).data<float>().ToArray();
            var width = candidates.Max(c => data.ItemFeatures!.Tokens[c].Length);
            var candidateTokens = new DenseTensor<long>([candidates.Length, width]);
            for (var c = 0; c < candidates.Length; c++)
                for (var t = 0; t < data.ItemFeatures!.Tokens[candidates[c]].Length; t++)
                    candidateTokens[c, t] = data.ItemFeatures.Tokens[candidates[c]][t];
            var single = inputs.Select(i => i.Name switch
            {
                "history" => NamedOnnxValue.CreateFromTensor("history", Row(history, 0)),
                "user_tokens" => NamedOnnxValue.CreateFromTensor("user_tokens", Row(i.AsTensor<long>(), 0)),
                _ => i,
            }).Append(NamedOnnxValue.CreateFromTensor("candidate_tokens", candidateTokens)).ToList();
            using var candidateResults = session.Run(single, ["candidate_scores"]);
            var actual = candidateResults[0].AsTensor<float>().ToArray();
            for (var c = 0; c < candidates.Length; c++)
                Assert.Equal(expectedContent[c], actual[c], 5);
        }
    }

    [Fact]
    public void A_large_catalog_is_ranked_by_exact_scores_of_an_int8_shortlist()
    {
        var world = new SyntheticWorld(new SyntheticWorldOptions { Users = 300, Items = 400, Seed = 9 });
        var data = world.ToDataset(world.GenerateHistory(DateTimeOffset.UnixEpoch.AddYears(50)));
        var split = LeaveOneOutSplit.Create(data);
        // Two stages from 100 items up, and a shortlist small enough that the int8 stage decides what reaches it.
        var config = new SequenceModelConfig
        {
            Dimension = 32, Blocks = 1, MaxLength = 20, Epochs = 3, EvaluateEvery = 3, BatchSize = 64, Negatives = 64,
            ItemContent = false, UserFeatures = false, Seed = 4, ShortlistAbove = 100, ShortlistSize = 30,
        };
        var model = new SequenceModelTrainer(config).Train(data, split).Model;
        var onnx = PolicyExporter.Export(model, config);
        var graph = Onnx.ModelProto.Parser.ParseFrom(onnx);
        Assert.Contains(graph.Graph.Node, n => n.OpType == "MatMulInteger");
        var ranking = Recommender.ModelContract.OnnxGraph.Part(graph, [Recommender.ModelContract.PolicyGraph.TopItems]);
        Assert.DoesNotContain(ranking.Graph.Node, n => n.OpType == "Gemm"); // the ranking part never reads the fp32 matrix whole
        var manifest = new Recommender.ModelContract.ModelManifest("two-stage", DateTimeOffset.UnixEpoch, "none", config.MaxLength,
            ["history", "k"], [.. graph.Graph.Output.Select(o => o.Name)], ["", .. Enumerable.Range(1, data.ItemCount).Select(i => "i" + i)]);
        using var served = Recommender.Serving.PolicyModel.Load(manifest, onnx);

        var found = 0;
        var users = Enumerable.Range(0, 100).ToArray();
        foreach (var u in users)
        {
            var history = split.History(u, EvaluationStage.Test).ToList();
            var exact = served.Score(history, null, out var top, 10);
            for (var n = 0; n < top.Length; n++)
                Assert.Equal(exact[top[n].Item], top[n].Score, 1e-5); // the shortlist is re-scored exactly
            Assert.Equal(top.Select(t => t.Score).OrderByDescending(s => s), top.Select(t => t.Score));
            var exactTop = Enumerable.Range(1, data.ItemCount).OrderByDescending(i => exact[i]).Take(10).ToHashSet();
            found += top.Count(t => exactTop.Contains(t.Item));
            Assert.Equal(50, served.TopK(history, null, 50).Select(t => t.Item).Distinct().Count()); // k above the shortlist's size
        }
        var recall = found / (10.0 * users.Length);
        output.WriteLine($"recall@10 of the int8 shortlist of 30 against exact fp32: {recall:F4}");
        Assert.True(recall >= 0.99, $"recall@10 {recall:F4}");
    }

    private static DenseTensor<long> Row(Tensor<long> tensor, int row)
    {
        var width = tensor.Dimensions[1];
        var result = new DenseTensor<long>([1, width]);
        for (var t = 0; t < width; t++)
            result[0, t] = tensor[row, t];
        return result;
    }
}

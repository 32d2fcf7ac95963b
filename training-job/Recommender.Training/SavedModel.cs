using Recommender.Data;

namespace Recommender.Training;

/// <summary>A run folder read back: its config and weights rebuilt into a model for the same dataset.</summary>
public static class SavedModel
{
    public static SasRecModel Load(string directory, InteractionDataset data, out SequenceModelConfig config)
    {
        config = SequenceModelConfig.Load(Path.Combine(directory, "config.json"), new Dictionary<string, string>());
        TorchSetup.Configure(config.Threads);
        var model = new SasRecModel(config, data.ItemCount, data.ItemFeatures?.Tokens, data.ItemFeatures?.VocabularySize ?? 0, data.UserFeatures?.VocabularySize ?? 0);
        model.load(Path.Combine(directory, "model.bin"));
        model.eval();
        return model;
    }

    public static EvaluationResult Evaluate(string directory, InteractionDataset data, EvaluationProtocol protocol)
    {
        var model = Load(directory, data, out var config);
        var split = LeaveOneOutSplit.Create(data);
        return Evaluator.Evaluate(new SasRecScorer(model, config, data.UserFeatures, TorchSharp.torch.CPU), split, data.ItemCount, EvaluationStage.Test, protocol);
    }
}

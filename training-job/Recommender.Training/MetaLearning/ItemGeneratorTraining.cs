using Recommender.Data;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Recommender.Training.MetaLearning;

/// <summary>
/// How the model's generator of new items' vectors (<see cref="ItemEmbeddingGenerator"/>, Meta-Embedding, Pan et al. 2019,
/// the cold-start phase) learns to place an item that has no interactions yet, <c>v = G(c) + c</c>:
/// <code>
/// encoder frozen; pairs (h_t, y_t): the state before each training interaction, and its item
/// repeat for each minibatch of pairs:
///     N = a fresh random share of the catalogue (the cold-item share), playing new items
///     v_i = G(c_i) + c_i for i in N;  v_j as pretrained for every other j
///     loss = mean_t -log softmax(h_t Vᵀ)[y_t]        over all pairs: where y_t is new, the generated vector
///                                                     must win; where it is not, generated vectors are
///                                                     competitors, so G cannot simply lift every new item
///     G ← Adam step on the loss
/// </code>
/// N is drawn independently of the targets, as new items are in the catalogue: drawing it from the
/// minibatch's own targets teaches G that "new" means "about to be chosen", which inflates every new item.
/// </summary>
public static class ItemGeneratorTraining
{
    /// <summary>Trains the generator on (state, next item) pairs of warm items; returns the mean loss of each epoch.</summary>
    public static IReadOnlyList<double> Train(ItemEmbeddingGenerator generator, Tensor states, Tensor targets, Tensor itemVectors, Tensor contentVectors, MetaLearningConfig config, JobProgress? progress = null)
    {
        torch.random.manual_seed(config.Seed);
        var random = new Random(config.Seed);
        var optimizer = optim.Adam(generator.parameters(), config.GeneratorLearningRate);
        var pairs = (int)states.shape[0];
        var itemCount = (int)itemVectors.shape[0] - 1;
        var device = states.device;
        var curve = new List<double>();
        using var stage = progress?.Begin("generator epoch", config.GeneratorEpochs, lineEvery: 5);
        for (var epoch = 1; epoch <= config.GeneratorEpochs; epoch++)
        {
            double total = 0;
            var batches = 0;
            foreach (var batch in Enumerable.Range(0, pairs).OrderBy(_ => random.Next()).Chunk(config.GeneratorBatch))
            {
                using var scope = NewDisposeScope();
                var index = tensor(batch.Select(i => (long)i).ToArray(), device: device);
                var h = states.index_select(0, index);
                var y = targets.index_select(0, index);
                var newItems = tensor(Enumerable.Range(1, itemCount).Where(_ => random.NextDouble() < config.ColdItemShare).Select(i => (long)i).ToArray(), device: device);
                var logits = Logits(h, itemVectors, newItems, generator.NewItemVectors(contentVectors.index_select(0, newItems)));
                var loss = functional.cross_entropy(logits, y);
                optimizer.zero_grad();
                loss.backward();
                optimizer.StepWithoutCollection();
                total += loss.item<float>();
                batches++;
            }
            curve.Add(total / Math.Max(1, batches));
            stage?.Step(epoch, $"new-item loss {curve[^1]:F4}");
        }
        return curve;
    }

    /// <summary>States before each training interaction and its item, over the given sequences (no gradients: the encoder stays frozen).</summary>
    public static (Tensor States, Tensor Targets) TrainingPairs(SasRecModel encoder, SequenceModelConfig modelConfig, FeatureTable? userFeatures, int[][] sequences, Device? device = null)
    {
        using var _ = no_grad();
        encoder.eval();
        var states = new List<Tensor>();
        var targets = new List<Tensor>();
        foreach (var batch in SequenceModelTrainer.UsersToLearnFrom(sequences).Chunk(256))
        {
            var (inputs, next) = SequenceBatches.NextItem(batch.Select(u => sequences[u]).ToList(), modelConfig.MaxLength, device ?? CPU);
            var h = encoder.forward(inputs, SequenceBatches.UserTokens(userFeatures, batch, device ?? CPU));
            var valid = next.ne(TorchScalars.Zero);
            states.Add(h[valid]);
            targets.Add(next[valid]);
        }
        return (cat(states), cat(targets));
    }

    /// <summary>Trains the generator a model carries (<see cref="SasRecModel.Generator"/>), if any, on the model's own training sequences.</summary>
    public static void FitFor(SasRecModel model, SequenceModelConfig modelConfig, FeatureTable? userFeatures, int[][] sequences, Device device, MetaLearningConfig settings, JobProgress? progress = null)
    {
        if (model.Generator is not null)
            Fit(model.Generator, model, modelConfig, userFeatures, sequences, device, settings, progress);
    }

    /// <summary>Trains <paramref name="generator"/> for <paramref name="model"/> (frozen, with item content) on pairs from <paramref name="sequences"/>.</summary>
    public static void Fit(ItemEmbeddingGenerator generator, SasRecModel model, SequenceModelConfig modelConfig, FeatureTable? userFeatures, int[][] sequences, Device device, MetaLearningConfig settings, JobProgress? progress = null)
    {
        using var scope = NewDisposeScope();
        Tensor items, content;
        using (no_grad())
        {
            model.eval();
            items = model.ItemVectors().detach();
            content = (model.ContentVectors() ?? throw new InvalidOperationException("the model has no item content to generate from")).detach();
        }
        var (states, targets) = TrainingPairs(model, modelConfig, userFeatures, sequences, device);
        generator.train();
        Train(generator, states, targets, items, content, settings, progress);
        generator.eval();
    }

    /// <summary>Logits h Vᵀ over the catalogue, with the columns of <paramref name="items"/> scored against <paramref name="replacement"/> rows; padding never wins.</summary>
    private static Tensor Logits(Tensor h, Tensor itemVectors, Tensor items, Tensor replacement)
    {
        var logits = h.matmul(itemVectors.T).index_copy(1, items, h.matmul(replacement.T));
        return logits.index_fill(1, tensor(new long[] { 0 }, device: logits.device), TorchScalars.NegativeInfinity);
    }
}

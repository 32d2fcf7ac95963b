using Recommender.Data;
using Recommender.ModelContract;
using Recommender.Serving;
using TorchSharp;
using static TorchSharp.torch;

namespace Recommender.Training.MetaLearning;

/// <summary>Settings of user meta-learning, with documented defaults.</summary>
public sealed record MetaLearningConfig
{
    /// <summary>Known interactions of a cold user (the support set has one pair fewer: each item predicted from those before it).</summary>
    public int SupportItems { get; init; } = 5;
    /// <summary>Inner-loop gradient steps at meta-training and at serving.</summary>
    public int InnerSteps { get; init; } = 3;
    /// <summary>Starting inner rate α (every dimension); also the fixed rate of the fine-tuning baseline.</summary>
    public double InitialRate { get; init; } = 1.0;
    public int Epochs { get; init; } = 40;
    public int TasksPerBatch { get; init; } = 64;
    public double LearningRate { get; init; } = 0.01;
    /// <summary>First-order MAML (no gradients through the inner steps' gradients) instead of exact second order.</summary>
    public bool FirstOrder { get; init; }
    /// <summary>Share of users held out as new (cold) users: never seen by pretraining or meta-training.</summary>
    public double ColdUserShare { get; init; } = 0.2;
    /// <summary>Share of items held out as new items: every interaction with them removed from pretraining and generator training.</summary>
    public double ColdItemShare { get; init; } = 0.1;
    public int GeneratorEpochs { get; init; } = 30;
    public double GeneratorLearningRate { get; init; } = 0.003;
    public int GeneratorBatch { get; init; } = 256;
    public int Seed { get; init; } = 42;
}

/// <summary>One task: a user's support pairs (states before each known item, and the item) and the query (state after them all, and the next item).</summary>
public sealed record AdaptationTask(Tensor SupportStates, Tensor SupportTargets, Tensor QueryState, long QueryTarget);

/// <summary>
/// Meta-learns the starting point u₀ and the rates α of <see cref="UserAdaptation"/> over warm users as
/// tasks (MAML with Meta-SGD's learned rates), the pretrained encoder frozen:
/// <code>
/// outer loop, per batch of tasks (support S_j, query q_j):
///     inner loop: u_j = u₀; repeat S times: u_j ← u_j - α ⊙ ∇L_S_j(u_j)      (closed form, differentiable)
///     outer loss: mean_j -log softmax((h_q_j + u_j) Vᵀ)[q_j]
///     (u₀, log α) ← Adam step on the outer loss (exact second-order gradients through the inner steps)
/// </code>
/// </summary>
public sealed class UserMetaLearner(SasRecModel encoder, SequenceModelConfig modelConfig, FeatureTable? userFeatures, MetaLearningConfig config, JobProgress? progress = null, Device? device = null)
{
    private readonly Device _device = device ?? CPU;

    /// <summary>A task from a history: pairs (state of history[..t], history[t]) for t ≥ 1, and the query (state of the whole history, next item).</summary>
    public AdaptationTask Task(int user, int[] history, int next)
    {
        using var _ = no_grad();
        encoder.eval();
        var prefixes = Enumerable.Range(1, history.Length).Select(t => history[..t]).ToList();
        var users = Enumerable.Repeat(user, prefixes.Count).ToList();
        var states = encoder.forward(SequenceBatches.Histories(prefixes, modelConfig.MaxLength, _device), SequenceBatches.UserTokens(userFeatures, users, _device))[.., -1, ..];
        return new AdaptationTask(states[..^1].detach().MoveToOuterDisposeScope(), tensor(history[1..].Select(i => (long)i).ToArray(), device: _device),
            states[^1].detach().MoveToOuterDisposeScope(), next);
    }

    /// <summary>
    /// The tasks of meta-training: every user with more than <see cref="MetaLearningConfig.SupportItems"/> items in
    /// <paramref name="sequences"/>, as if new: their first items the support, the next one the query.
    /// </summary>
    public List<AdaptationTask> FirstInteractionTasks(int[][] sequences) =>
        Enumerable.Range(0, sequences.Length).Where(u => sequences[u].Length > config.SupportItems)
            .Select(u => Task(u, sequences[u][..config.SupportItems], sequences[u][config.SupportItems])).ToList();

    public Tensor ItemVectors()
    {
        using var _ = no_grad();
        return encoder.ItemVectors().detach();
    }

    /// <summary>Meta-trains on the tasks; returns what serving needs to adapt a user with up to <see cref="MetaLearningConfig.SupportItems"/> interactions.</summary>
    public UserAdaptationParameters Train(IReadOnlyList<AdaptationTask> tasks)
    {
        torch.random.manual_seed(config.Seed);
        var random = new Random(config.Seed);
        var items = ItemVectors();
        var initial = nn.Parameter(zeros(modelConfig.Dimension, device: _device));
        var logRates = nn.Parameter(full(modelConfig.Dimension, Math.Log(config.InitialRate), device: _device));
        var optimizer = optim.Adam([initial, logRates], config.LearningRate);
        using var stage = progress?.Begin("meta epoch", config.Epochs, lineEvery: 10);
        for (var epoch = 1; epoch <= config.Epochs; epoch++)
        {
            double total = 0;
            var batches = 0;
            foreach (var batch in tasks.OrderBy(_ => random.Next()).Chunk(config.TasksPerBatch))
            {
                using var scope = NewDisposeScope();
                var losses = batch.Select(task =>
                {
                    var adapted = UserAdaptation.Adapt(task.SupportStates, task.SupportTargets, items, initial, logRates, config.InnerSteps, config.FirstOrder); // inner loop
                    return UserAdaptation.Loss(task.QueryState.unsqueeze(0), tensor(new[] { task.QueryTarget }, device: _device), adapted, items); // query loss
                }).ToList();
                var loss = stack(losses).mean();
                optimizer.zero_grad();
                loss.backward();                                                                                                  // outer step
                optimizer.StepWithoutCollection();
                total += loss.item<float>();
                batches++;
            }
            stage?.Step(epoch, $"query loss {total / batches:F4}  mean rate {logRates.exp().mean().item<float>():F3}");
        }
        return new UserAdaptationParameters(initial.cpu().data<float>().ToArray(), logRates.exp().cpu().data<float>().ToArray(), config.InnerSteps, config.SupportItems);
    }

    /// <summary>Scores histories after adapting u to each (u₀ = 0 and no steps: the pretrained model as it is).</summary>
    public ISequenceScorer Scorer(string name, UserAdaptationParameters parameters) => new AdaptedScorer(name, this, parameters);

    private sealed class AdaptedScorer(string name, UserMetaLearner learner, UserAdaptationParameters parameters) : ISequenceScorer
    {
        public string Name => name;

        public float[][] Score(IReadOnlyList<int> users, IReadOnlyList<int[]> histories)
        {
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            var items = learner.ItemVectors();
            var initial = tensor(parameters.Initial, device: learner._device);
            var logRates = tensor(parameters.Rates, device: learner._device).log();
            return users.Select((user, b) =>
            {
                var task = learner.Task(user, histories[b], 0);
                var u = parameters.Steps == 0 || histories[b].Length < 2 ? initial
                    : UserAdaptation.Adapt(task.SupportStates, task.SupportTargets, items, initial, logRates, parameters.Steps);
                return task.QueryState.Plus(u).matmul(items.T).cpu().data<float>().ToArray();
            }).ToArray();
        }
    }
}

using Recommender.Data;
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

/// <summary>What meta-learning learned: the initial user vector and the per-dimension inner rates.</summary>
public sealed record MetaParameters(float[] Initial, float[] Rates, int Steps);

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
public sealed class UserMetaLearner(SasRecModel encoder, SequenceModelConfig modelConfig, FeatureTable? userFeatures, MetaLearningConfig config, TextWriter? progress = null)
{
    /// <summary>A task from a history: pairs (state of history[..t], history[t]) for t ≥ 1, and the query (state of the whole history, next item).</summary>
    public AdaptationTask Task(int user, int[] history, int next)
    {
        using var _ = no_grad();
        var prefixes = Enumerable.Range(1, history.Length).Select(t => history[..t]).ToList();
        var users = Enumerable.Repeat(user, prefixes.Count).ToList();
        var states = encoder.forward(SequenceBatches.Histories(prefixes, modelConfig.MaxLength, CPU), SequenceBatches.UserTokens(userFeatures, users, CPU))[.., -1, ..];
        return new AdaptationTask(states[..^1].detach().MoveToOuterDisposeScope(), tensor(history[1..].Select(i => (long)i).ToArray()),
            states[^1].detach().MoveToOuterDisposeScope(), next);
    }

    public Tensor ItemVectors()
    {
        using var _ = no_grad();
        return encoder.ItemVectors().detach();
    }

    public MetaParameters Train(IReadOnlyList<AdaptationTask> tasks)
    {
        torch.random.manual_seed(config.Seed);
        var random = new Random(config.Seed);
        var items = ItemVectors();
        var initial = nn.Parameter(zeros(modelConfig.Dimension));
        var logRates = nn.Parameter(full(modelConfig.Dimension, Math.Log(config.InitialRate)));
        var optimizer = optim.Adam([initial, logRates], config.LearningRate);
        for (var epoch = 1; epoch <= config.Epochs; epoch++)
        {
            double total = 0;
            var batches = 0;
            foreach (var batch in tasks.OrderBy(_ => random.Next()).Chunk(config.TasksPerBatch))
            {
                using var scope = NewDisposeScope();
                var losses = batch.Select(task =>
                {
                    var adapted = UserAdaptation.Adapt(task.SupportStates, task.SupportTargets, items, initial, logRates, config.InnerSteps); // inner loop
                    return UserAdaptation.Loss(task.QueryState.unsqueeze(0), tensor(new[] { task.QueryTarget }), adapted, items);      // query loss
                }).ToList();
                var loss = stack(losses).mean();
                optimizer.zero_grad();
                loss.backward();                                                                                                  // outer step
                optimizer.step();
                total += loss.item<float>();
                batches++;
            }
            if (epoch == 1 || epoch % 10 == 0 || epoch == config.Epochs)
                progress?.WriteLine($"meta epoch {epoch,3}/{config.Epochs}  query loss {total / batches:F4}  mean rate {logRates.exp().mean().item<float>():F3}");
        }
        return new MetaParameters(initial.data<float>().ToArray(), logRates.exp().data<float>().ToArray(), config.InnerSteps);
    }

    /// <summary>Scores histories after adapting u to each (u₀ = 0 and no steps: the pretrained model as it is).</summary>
    public ISequenceScorer Scorer(string name, MetaParameters parameters) => new AdaptedScorer(name, this, parameters);

    private sealed class AdaptedScorer(string name, UserMetaLearner learner, MetaParameters parameters) : ISequenceScorer
    {
        public string Name => name;

        public float[][] Score(IReadOnlyList<int> users, IReadOnlyList<int[]> histories)
        {
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            var items = learner.ItemVectors();
            var initial = tensor(parameters.Initial);
            var logRates = tensor(parameters.Rates).log();
            return users.Select((user, b) =>
            {
                var task = learner.Task(user, histories[b], 0);
                var u = parameters.Steps == 0 || histories[b].Length < 2 ? initial
                    : UserAdaptation.Adapt(task.SupportStates, task.SupportTargets, items, initial, logRates, parameters.Steps);
                return (task.QueryState + u).matmul(items.T).data<float>().ToArray();
            }).ToArray();
        }
    }
}

using System.Diagnostics;
using Recommender.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Recommender.Training;

/// <summary>One line of the learning curve.</summary>
public sealed record EpochRecord(int Epoch, double Loss, double Seconds, double SequencesPerSecond, double? ValidationNdcg, double? ValidationHitRate, double? ValidationFullNdcg = null);

public sealed record TrainingOutcome(SasRecModel Model, IReadOnlyList<EpochRecord> Curve, int BestEpoch, double TrainSeconds, double SequencesPerSecond, Device Device);

/// <summary>
/// Trains <see cref="SasRecModel"/> on next-item prediction over the training part of a leave-one-out
/// split: Adam, the configured loss, validation NDCG@10 every few epochs, early stopping that keeps
/// the best validated weights.
/// </summary>
/// <param name="warmStart">The weights to start from (the champion's, <see cref="WarmStart"/>) instead of a random initialisation.</param>
/// <param name="validated">Called after each validation with its epoch's record and the model as it is then (a time-to-quality curve reads the test split there; training never does).</param>
public sealed class SequenceModelTrainer(SequenceModelConfig config, JobProgress? progress = null, WarmStart? warmStart = null, Action<EpochRecord, SasRecModel>? validated = null)
{
    public TrainingOutcome Train(InteractionDataset data, LeaveOneOutSplit split)
    {
        var (model, optimizer, device, rng) = NewModel(data);

        var trainUsers = UsersToLearnFrom(split.Train);
        var validation = new EvaluationProtocol { MaxUsers = config.ValidationUsers, Seed = config.Seed };
        var curve = new List<EpochRecord>();
        Func<MetricSet, double> selected = config.SelectBy switch
        {
            "sampled" => m => m.Ndcg,
            "full" => m => m.FullNdcg,
            _ => throw new ArgumentException($"unknown selectBy '{config.SelectBy}' (sampled, full)"),
        };
        var best = (Figure: double.NegativeInfinity, Epoch: 0, State: (Dictionary<string, Tensor>?)null);
        var sinceBest = 0;
        var clock = Stopwatch.StartNew();
        double trainSeconds = 0;
        long sequencesSeen = 0;
        progress?.Line($"training on {device.type}: {trainUsers.Length:N0} sequences, {config.Loss} loss, dim {config.Dimension}, {config.Blocks} blocks, length {config.MaxLength}, batch {config.BatchSize}");
        using var stage = progress?.Begin("epoch", config.Epochs);
        for (var epoch = 1; epoch <= config.Epochs; epoch++)
        {
            var epochClock = Stopwatch.StartNew();
            var loss = Epoch(model, optimizer, data, split.Train, trainUsers, device, rng);
            var seconds = epochClock.Elapsed.TotalSeconds;
            trainSeconds += seconds;
            sequencesSeen += trainUsers.Length;

            double? ndcg = null, hitRate = null, fullNdcg = null;
            if (epoch % config.EvaluateEvery == 0 || epoch == config.Epochs)
            {
                var result = Evaluator.Evaluate(new SasRecScorer(model, config, data.UserFeatures, device), split, data.ItemCount, EvaluationStage.Validation, validation);
                (ndcg, hitRate, fullNdcg) = (result.All.Ndcg, result.All.HitRate, result.All.FullNdcg);
                var figure = selected(result.All);
                if (figure > best.Figure)
                {
                    best = (figure, epoch, Snapshot(model));
                    sinceBest = 0;
                }
                else
                    sinceBest++;
            }
            var record = new EpochRecord(epoch, loss, seconds, trainUsers.Length / seconds, ndcg, hitRate, fullNdcg);
            curve.Add(record);
            if (ndcg is not null)
                validated?.Invoke(record, model);
            stage?.Step(epoch, $"loss {record.Loss:F4}  {record.SequencesPerSecond,7:N0} seq/s" + (ndcg is null ? "" : $"  valid NDCG@10 {ndcg:F4} HR@10 {hitRate:F4} full NDCG@10 {fullNdcg:F4}"));

            if (sinceBest >= config.Patience)
            {
                progress?.Line($"early stop: no better validation {config.SelectBy} NDCG@10 in {config.Patience} evaluations (best epoch {best.Epoch})");
                break;
            }
            if (config.TimeBudgetSeconds > 0 && clock.Elapsed.TotalSeconds > config.TimeBudgetSeconds)
            {
                progress?.Line($"time budget of {config.TimeBudgetSeconds:F0} s spent (best epoch {best.Epoch})");
                break;
            }
        }

        if (best.State is { } state)
            model.load_state_dict(state);
        return new TrainingOutcome(model, curve, best.Epoch, trainSeconds, sequencesSeen / Math.Max(trainSeconds, 1e-9), device);
    }

    /// <summary>
    /// The final fit: a fresh model (or the warm start again) trained for a fixed number of epochs (the early-stopped run's best)
    /// on each user's training history plus the validation item, so it also learns the most recent
    /// transitions, as a production retrain on all data would. Nothing is left to validate on, and the
    /// test item is still never seen. Not SASRec's protocol: its metrics are reported beside it.
    /// </summary>
    public SasRecModel Refit(InteractionDataset data, LeaveOneOutSplit split, int epochs)
    {
        var (model, optimizer, device, rng) = NewModel(data);
        var sequences = split.Histories(EvaluationStage.Test);
        var users = UsersToLearnFrom(sequences);
        using var stage = progress?.Begin("refit", epochs);
        for (var epoch = 1; epoch <= epochs; epoch++)
        {
            var loss = Epoch(model, optimizer, data, sequences, users, device, rng);
            stage?.Step(epoch, $"loss {loss:F4}  on train + validation");
        }
        return model;
    }

    /// <summary>
    /// Continues the warm start (the champion's weights) for a fixed number of epochs on each user's training history plus
    /// the validation item, as <see cref="Refit"/> does. No early stopping: the champion was trained on many of these
    /// validation items, so validation would favour it over anything that learns.
    /// </summary>
    public TrainingOutcome FineTune(InteractionDataset data, LeaveOneOutSplit split, int epochs)
    {
        if (warmStart is null)
            throw new InvalidOperationException("fine-tuning needs a warm start");
        var (model, optimizer, device, rng) = NewModel(data);
        var sequences = split.Histories(EvaluationStage.Test);
        var users = UsersToLearnFrom(sequences);
        var curve = new List<EpochRecord>();
        var clock = Stopwatch.StartNew();
        progress?.Line($"fine-tuning {warmStart.Version} on {device.type}: {users.Length:N0} sequences (train + validation), {epochs} epochs");
        using var stage = progress?.Begin("fine-tune", epochs);
        for (var epoch = 1; epoch <= epochs; epoch++)
        {
            var epochClock = Stopwatch.StartNew();
            var loss = Epoch(model, optimizer, data, sequences, users, device, rng);
            curve.Add(new EpochRecord(epoch, loss, epochClock.Elapsed.TotalSeconds, users.Length / epochClock.Elapsed.TotalSeconds, null, null));
            stage?.Step(epoch, $"loss {loss:F4}");
        }
        return new TrainingOutcome(model, curve, epochs, clock.Elapsed.TotalSeconds, users.Length * (double)epochs / Math.Max(clock.Elapsed.TotalSeconds, 1e-9), device);
    }

    /// <summary>A freshly initialised model (or the warm start) on the preferred device with its optimiser, all seeded.</summary>
    private (SasRecModel, optim.Optimizer, Device, Random) NewModel(InteractionDataset data)
    {
        TorchSetup.Configure(config.Threads);
        random.manual_seed(config.Seed);
        var device = TorchSetup.PreferredDevice();
        var model = new SasRecModel(config, data.ItemCount, data.ItemFeatures?.Tokens, data.ItemFeatures?.VocabularySize ?? 0, data.UserFeatures?.VocabularySize ?? 0);
        warmStart?.CopyInto(model, data);
        model.to(device);
        var optimizer = optim.Adam(model.parameters(), warmStart is null ? config.LearningRate : config.WarmStartLearningRate, beta1: 0.9, beta2: 0.98, weight_decay: config.WeightDecay);
        return (model, optimizer, device, new Random(config.Seed));
    }

    /// <summary>Users with at least one next-item pair to learn from.</summary>
    internal static int[] UsersToLearnFrom(int[][] sequences) =>
        Enumerable.Range(0, sequences.Length).Where(u => sequences[u].Length >= 2).ToArray();

    /// <summary>Steps between returns of freed heap pages (<see cref="NativeEnvironment.ReturnFreedHeapPages"/>): often enough to bound memory, rarely enough to cost nothing measurable.</summary>
    private const int TrimEverySteps = 32;

    /// <summary>One pass over the users in a random order; returns the mean batch loss.</summary>
    private double Epoch(SasRecModel model, optim.Optimizer optimizer, InteractionDataset data, int[][] sequences, int[] users, Device device, Random rng)
    {
        model.train();
        double lossSum = 0;
        var batches = 0;
        foreach (var batch in users.OrderBy(_ => rng.Next()).Chunk(config.BatchSize))
        {
            lossSum += Step(model, optimizer, data, sequences, batch, device, rng);
            if (++batches % TrimEverySteps == 0)
                NativeEnvironment.ReturnFreedHeapPages();
        }
        return lossSum / Math.Max(1, batches);
    }

    /// <summary>One optimisation step on a batch of users (indices into <paramref name="sequences"/>); returns its loss.</summary>
    public double Step(SasRecModel model, optim.Optimizer optimizer, InteractionDataset data, int[][] sequences, int[] users, Device device, Random rng)
    {
        using var scope = NewDisposeScope();
        optimizer.zero_grad();
        var loss = Loss(model, data, users.Select(u => sequences[u]).ToList(), users, device, rng);
        loss.backward();
        optimizer.StepWithoutCollection();
        return loss.item<float>();
    }

    /// <summary>The configured next-item loss on one batch of users' sequences.</summary>
    private Tensor Loss(SasRecModel model, InteractionDataset data, List<int[]> sequences, int[] users, Device device, Random rng)
    {
        var (inputs, targets) = SequenceBatches.NextItem(sequences, config.MaxLength, device);
        var states = model.forward(inputs, SequenceBatches.UserTokens(data.UserFeatures, users, device)); // [B, L, d]
        var items = model.ItemVectors();                                                                 // [N+1, d]
        var valid = targets.ne(TorchScalars.Zero);                                                                       // positions with a next item

        switch (config.Loss)
        {
            case "bce":
            {
                // SASRec: the next item against one uniformly drawn negative per position. Only the positions with a
                // next item are scored, and the positives' and negatives' rows come from one lookup of the item table:
                // each lookup's backward writes a gradient the size of the whole table.
                var h = states[valid];                                                      // [P, d]
                var positives = targets[valid];                                             // [P]
                var negatives = randint(1, data.ItemCount + 1, positives.shape, dtype: int64, device: device);
                var rows = items.index_select(0, cat([positives, negatives]));              // [2P, d]
                var logits = (h.repeat(2, 1) * rows).sum(-1);                               // positives, then negatives
                var labels = cat([ones_like(positives, float32), zeros_like(negatives, float32)]);
                return nn.functional.binary_cross_entropy_with_logits(logits, labels);
            }
            case "ce-sampled":
            {
                // Softmax over the next item and negatives shared by the batch (uniform, so no log-q correction);
                // a negative that happens to be the target is masked out.
                var negatives = tensor(Enumerable.Range(0, config.Negatives).Select(_ => (long)rng.Next(1, data.ItemCount + 1)).ToArray(), device: device);
                var h = states[valid];                                                     // [P, d]
                var t = targets[valid];                                                    // [P]
                var positive = (h * items.index_select(0, t)).sum(-1, keepdim: true);      // [P, 1]
                var negative = h.matmul(items.index_select(0, negatives).T);               // [P, S]
                negative = negative.masked_fill(t.unsqueeze(1).eq(negatives.unsqueeze(0)), TorchScalars.NegativeInfinity);
                var logits = cat([positive, negative], 1);
                return nn.functional.cross_entropy(logits, zeros(logits.shape[0], dtype: int64, device: device));
            }
            case "ce":
            {
                // Softmax over the whole catalog; the padding item can never be the answer.
                var logits = states[valid].matmul(items.T);
                logits[.., 0] = float.NegativeInfinity;
                return nn.functional.cross_entropy(logits, targets[valid]);
            }
            default:
                throw new ArgumentException($"unknown loss '{config.Loss}' (bce, ce-sampled, ce)");
        }
    }

    private static Dictionary<string, Tensor> Snapshot(nn.Module model) =>
        model.state_dict().ToDictionary(p => p.Key, p => p.Value.detach().clone());
}

/// <summary>Torch process settings: threads, and the device (CUDA when present, CPU otherwise).</summary>
public static class TorchSetup
{
    private static bool _configured;

    public static void Configure(int threads)
    {
        if (_configured)
            return;
        // With more than one thread, OpenMP's busy-waiting swings step times wildly on a shared machine;
        // it reads OMP_WAIT_POLICY from the C environment before libtorch loads.
        if (threads > 1 && OperatingSystem.IsLinux())
            NativeEnvironment.SetEnv("OMP_WAIT_POLICY", "PASSIVE");
        torch.set_num_threads(threads);
        _configured = true;
    }

    public static Device PreferredDevice() => cuda.is_available() ? CUDA : CPU;
}

internal static partial class NativeEnvironment
{
    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "setenv", StringMarshalling = System.Runtime.InteropServices.StringMarshalling.Utf8)]
    private static partial int SetEnvNative(string name, string value, int overwrite);

    public static void SetEnv(string name, string value) => SetEnvNative(name, value, 1);

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "malloc_trim")]
    private static partial int MallocTrim(nuint pad);

    /// <summary>
    /// Gives the pages glibc's heap holds free back to the system. A training step's tensors are freed when its dispose
    /// scope ends, but their sizes change every step (packed batches), glibc serves most of them from its heap, and the
    /// heap keeps freed pages it cannot reuse: left alone, a Beauty run's resident memory grew by gigabytes per epoch.
    /// </summary>
    public static void ReturnFreedHeapPages()
    {
        if (OperatingSystem.IsLinux())
            MallocTrim(0);
    }
}

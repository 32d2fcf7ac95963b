using System.Runtime.CompilerServices;
using Recommender.Data;
using static TorchSharp.torch;

namespace Recommender.Training.Reinforcement;

/// <summary>
/// A frozen encoder's state (its last hidden vector) for each session state, computed once. During policy
/// optimisation the same observation is read when the actor shortlists candidates, when it acts, in every epoch
/// of the update, and by the learned simulator answering it; with the encoder frozen all of them get one answer,
/// so it is worth computing once, in batches. The state depends on the user and the history alone, so it is
/// remembered per history array for as long as that array lives: a slate without a pick keeps the history
/// (<see cref="SessionState.After"/>), and the off-policy evaluation's rollouts from one logged state all start from
/// its history.
/// </summary>
public sealed class FrozenEncoderStates(SasRecModel encoder, SequenceModelConfig config, FeatureTable? userFeatures)
{
    private readonly ConditionalWeakTable<int[], UserState> _states = new();

    /// <summary>The state of one history array, for the user it was computed for (arrays are per user; this makes sure).</summary>
    private sealed record UserState(int User, float[] State);

    private bool TryGet(SessionState observation, out float[] state)
    {
        if (_states.TryGetValue(observation.History, out var known) && known.User == observation.User)
        {
            state = known.State;
            return true;
        }
        state = [];
        return false;
    }
    private Tensor? _itemVectors;

    public SasRecModel Encoder => encoder;

    /// <summary>The frozen encoder's item vectors [items + 1, d] (id + content), computed once, without gradients.</summary>
    public Tensor ItemVectors()
    {
        // The off-policy evaluation reads states from several threads: the vectors are computed once, by the first.
        lock (_itemVectorsLock)
        {
            if (_itemVectors is null)
            {
                using var _ = no_grad();
                _itemVectors = encoder.ItemVectors().detach().DetachFromDisposeScope();
            }
            return _itemVectors;
        }
    }
    private readonly Lock _itemVectorsLock = new();

    /// <summary>The states [B, d] of <paramref name="observations"/>, without gradients.</summary>
    public Tensor Of(IReadOnlyList<SessionState> observations)
    {
        var missing = observations.Where(o => !TryGet(o, out _)).DistinctBy(o => (o.History, o.User)).ToList();
        if (missing.Count > 0)
        {
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            encoder.eval();
            var computed = encoder.forward(SequenceBatches.Histories(missing.Select(o => o.History).ToList(), config.MaxLength, CPU),
                SequenceBatches.UserTokens(userFeatures, missing.Select(o => o.User).ToList(), CPU))[.., -1, ..].contiguous().data<float>().ToArray();
            for (var m = 0; m < missing.Count; m++)
                _states.AddOrUpdate(missing[m].History, new UserState(missing[m].User, computed.AsSpan(m * config.Dimension, config.Dimension).ToArray()));
        }
        var flat = observations.SelectMany(o => TryGet(o, out var state) ? state : throw new InvalidOperationException("state not computed")).ToArray();
        return TorchArrays.Copy(flat, observations.Count, config.Dimension);
    }
}

using System.Runtime.CompilerServices;
using Recommender.Data;
using static TorchSharp.torch;

namespace Recommender.Training.Reinforcement;

/// <summary>
/// A frozen encoder's state (its last hidden vector) for each session state, computed once. During policy
/// optimisation the same observation is read when the actor shortlists candidates, when it acts, in every epoch
/// of the update, and by the learned simulator answering it; with the encoder frozen all of them get one answer,
/// so it is worth computing once, in batches. Remembered per observation object for as long as that object lives.
/// </summary>
public sealed class FrozenEncoderStates(SasRecModel encoder, SequenceModelConfig config, FeatureTable? userFeatures)
{
    private readonly ConditionalWeakTable<SessionState, float[]> _states = new();
    private Tensor? _itemVectors;

    public SasRecModel Encoder => encoder;

    /// <summary>The frozen encoder's item vectors [items + 1, d] (id + content), computed once, without gradients.</summary>
    public Tensor ItemVectors()
    {
        if (_itemVectors is null)
        {
            using var _ = no_grad();
            _itemVectors = encoder.ItemVectors().detach().DetachFromDisposeScope();
        }
        return _itemVectors;
    }

    /// <summary>The states [B, d] of <paramref name="observations"/>, without gradients.</summary>
    public Tensor Of(IReadOnlyList<SessionState> observations)
    {
        var missing = observations.Where(o => !_states.TryGetValue(o, out _)).Distinct(ReferenceEqualityComparer.Instance).Cast<SessionState>().ToList();
        if (missing.Count > 0)
        {
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            encoder.eval();
            var computed = encoder.forward(SequenceBatches.Histories(missing.Select(o => o.History).ToList(), config.MaxLength, CPU),
                SequenceBatches.UserTokens(userFeatures, missing.Select(o => o.User).ToList(), CPU))[.., -1, ..].contiguous().data<float>().ToArray();
            for (var m = 0; m < missing.Count; m++)
                _states.AddOrUpdate(missing[m], computed.AsSpan(m * config.Dimension, config.Dimension).ToArray());
        }
        var flat = observations.SelectMany(o => _states.TryGetValue(o, out var state) ? state : throw new InvalidOperationException("state not computed")).ToArray();
        return TorchArrays.Copy(flat, observations.Count, config.Dimension);
    }
}

namespace Recommender.Serving;

/// <summary>
/// The training job's few-shot user adaptation, repeated at serving time without TorchSharp: S gradient
/// steps u ← u - α ⊙ mean_t (Vᵀ softmax((h_t + u) Vᵀ) - v_{y_t}) from the meta-learned u₀ and rates α,
/// over the user's support pairs (the state before each known interaction, and that interaction). The
/// adapted scores are the model's plus V u. Computed in double precision; item 0 (padding) is left out.
/// </summary>
public static class UserAdaptation
{
    /// <param name="states">Per support pair, the sequence state h_t [d] before the item.</param>
    /// <param name="targets">Per support pair, the item number that followed.</param>
    /// <param name="itemVectors">Item vectors row-major [items + 1, d] (row 0 padding), as the model's <c>item_embeddings</c> output.</param>
    public static float[] Adapt(IReadOnlyList<float[]> states, IReadOnlyList<int> targets, ReadOnlySpan<float> itemVectors, int dimension,
        ReadOnlySpan<float> initial, ReadOnlySpan<float> rates, int steps)
    {
        var items = itemVectors.Length / dimension;
        var u = new double[dimension];
        for (var k = 0; k < dimension; k++)
            u[k] = initial[k];
        var gradient = new double[dimension];
        var logits = new double[items];
        for (var step = 0; step < steps; step++)
        {
            Array.Clear(gradient);
            for (var t = 0; t < states.Count; t++)
            {
                // p = softmax((h_t + u) Vᵀ) over items 1..N
                var max = double.NegativeInfinity;
                for (var i = 1; i < items; i++)
                {
                    double dot = 0;
                    var row = itemVectors.Slice(i * dimension, dimension);
                    for (var k = 0; k < dimension; k++)
                        dot += (states[t][k] + u[k]) * row[k];
                    logits[i] = dot;
                    max = Math.Max(max, dot);
                }
                double sum = 0;
                for (var i = 1; i < items; i++)
                    sum += logits[i] = Math.Exp(logits[i] - max);
                // gradient += Vᵀ p - v_y
                for (var i = 1; i < items; i++)
                {
                    var p = logits[i] / sum;
                    var row = itemVectors.Slice(i * dimension, dimension);
                    for (var k = 0; k < dimension; k++)
                        gradient[k] += p * row[k];
                }
                var target = itemVectors.Slice(targets[t] * dimension, dimension);
                for (var k = 0; k < dimension; k++)
                    gradient[k] -= target[k];
            }
            for (var k = 0; k < dimension; k++)
                u[k] -= rates[k] * gradient[k] / states.Count;
        }
        return u.Select(x => (float)x).ToArray();
    }
}

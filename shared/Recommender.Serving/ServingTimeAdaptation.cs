using Recommender.ModelContract;

namespace Recommender.Serving;

/// <summary>
/// The training job's few-shot user adaptation, repeated at serving time without TorchSharp: S gradient
/// steps u ← u - α ⊙ mean_t (Vᵀ softmax(s_t + V u) - v_{y_t}) from the meta-learned u₀ and rates α, over
/// the user's support pairs: the model's scores s_t = h_t Vᵀ after the history before each known
/// interaction, and that interaction y_t. The adapted scores are the model's plus V u. Computed in double
/// precision; item 0 (padding) is left out.
/// </summary>
public static class ServingTimeAdaptation
{
    /// <param name="supportScores">Per support pair, the model's scores of every item [items + 1] after the history before the item.</param>
    /// <param name="targets">Per support pair, the item number that followed.</param>
    /// <param name="itemVectors">Item vectors row-major [items + 1, d] (row 0 padding), as the model's <c>item_embeddings</c> output.</param>
    public static float[] Adapt(IReadOnlyList<float[]> supportScores, IReadOnlyList<int> targets, ReadOnlySpan<float> itemVectors, int dimension,
        UserAdaptationParameters parameters)
    {
        var items = itemVectors.Length / dimension;
        var u = parameters.Initial.Select(x => (double)x).ToArray();
        var gradient = new double[dimension];
        var logits = new double[items];
        for (var step = 0; step < parameters.Steps && supportScores.Count > 0; step++)
        {
            Array.Clear(gradient);
            for (var t = 0; t < supportScores.Count; t++)
            {
                // p = softmax(s_t + V u) over items 1..N
                var max = double.NegativeInfinity;
                for (var i = 1; i < items; i++)
                {
                    double dot = supportScores[t][i];
                    var row = itemVectors.Slice(i * dimension, dimension);
                    for (var k = 0; k < dimension; k++)
                        dot += u[k] * row[k];
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
                u[k] -= parameters.Rates[k] * gradient[k] / supportScores.Count;
        }
        return u.Select(x => (float)x).ToArray();
    }
}

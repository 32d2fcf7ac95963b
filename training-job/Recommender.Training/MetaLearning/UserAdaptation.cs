using static TorchSharp.torch;

namespace Recommender.Training.MetaLearning;

/// <summary>
/// Few-shot adaptation of a user vector u added to the sequence state: scores = (h + u) Vᵀ. On a support
/// set of (state h_t, next item y_t) the loss is L(u) = mean_t -log softmax((h_t + u) Vᵀ)[y_t], whose
/// gradient has a closed form, ∇L(u) = mean_t (Vᵀ p_t - v_{y_t}) with p_t = softmax((h_t + u) Vᵀ).
/// The inner loop is S steps u ← u - α ⊙ ∇L(u) from a meta-learned u₀ with meta-learned per-dimension
/// rates α (Meta-SGD). Written with that formula rather than autograd, the steps are ordinary tensor ops:
/// the outer loop differentiates through them (second-order MAML, exactly), and serving repeats them in C#
/// without TorchSharp (<c>Recommender.Serving.ServingTimeAdaptation</c>).
/// </summary>
public static class UserAdaptation
{
    /// <summary>Logits over items [T, N+1] for states [T, d] shifted by u [d]; the padding item 0 never wins.</summary>
    public static Tensor Logits(Tensor states, Tensor u, Tensor itemVectors)
    {
        var logits = states.Plus(u).matmul(itemVectors.T);
        return logits.index_fill(1, tensor(new long[] { 0 }, device: logits.device), TorchScalars.NegativeInfinity);
    }

    /// <summary>L(u): mean cross-entropy of the next items.</summary>
    public static Tensor Loss(Tensor states, Tensor targets, Tensor u, Tensor itemVectors) =>
        nn.functional.cross_entropy(Logits(states, u, itemVectors), targets);

    /// <summary>∇L(u) in closed form: mean_t (Vᵀ softmax((h_t + u) Vᵀ) - v_{y_t}).</summary>
    public static Tensor Gradient(Tensor states, Tensor targets, Tensor u, Tensor itemVectors) =>
        (Logits(states, u, itemVectors).softmax(1).matmul(itemVectors) - itemVectors.index_select(0, targets)).mean([0]);

    /// <summary>
    /// The inner loop: <paramref name="steps"/> gradient steps from u₀ with per-dimension rates exp(logRates).
    /// <paramref name="firstOrder"/> (first-order MAML): each step's gradient is taken as a constant, so the outer
    /// gradient skips the Hessian terms: ∂u_S/∂u₀ = I, and the rates learn from the gradients' values alone.
    /// </summary>
    public static Tensor Adapt(Tensor states, Tensor targets, Tensor itemVectors, Tensor initial, Tensor logRates, int steps, bool firstOrder = false)
    {
        var u = initial;
        for (var step = 0; step < steps; step++)
            u = u - logRates.exp() * Gradient(states, targets, firstOrder ? u.detach() : u, itemVectors);
        return u;
    }
}

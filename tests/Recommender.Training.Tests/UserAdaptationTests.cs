using Recommender.Training.MetaLearning;
using static TorchSharp.torch;

namespace Recommender.Training.Tests;

/// <summary>The few-shot user adaptation: its closed-form gradient, what it does to the support loss, and its serving-time twin.</summary>
[Collection("Torch")]
public sealed class UserAdaptationTests
{
    private static (Tensor States, Tensor Targets, Tensor Items) Problem(int seed, ScalarType type = ScalarType.Float32)
    {
        random.manual_seed(seed);
        const int d = 8, items = 30, pairs = 4;
        var vectors = randn(items + 1, d, dtype: type);
        var states = randn(pairs, d, dtype: type);
        var targets = tensor(new long[] { 3, 17, 3, 29 });
        return (states, targets, vectors);
    }

    [Fact]
    public void The_closed_form_gradient_matches_finite_differences_and_autograd()
    {
        var (states, targets, items) = Problem(1, ScalarType.Float64);
        var u = randn(8, dtype: ScalarType.Float64) * 0.3;
        var gradient = UserAdaptation.Gradient(states, targets, u, items).data<double>().ToArray();
        const double h = 1e-6;
        for (var k = 0; k < 8; k++)
        {
            var step = zeros(8, dtype: ScalarType.Float64);
            step[k] = h;
            var numeric = (UserAdaptation.Loss(states, targets, u + step, items).item<double>() - UserAdaptation.Loss(states, targets, u - step, items).item<double>()) / (2 * h);
            Assert.Equal(numeric, gradient[k], 6);
        }
        var leaf = u.clone().requires_grad_(true);
        UserAdaptation.Loss(states, targets, leaf, items).backward();
        Assert.True(leaf.grad!.allclose(tensor(gradient), rtol: 1e-9, atol: 1e-12));
    }

    [Fact]
    public void Adaptation_lowers_the_support_loss_of_a_new_user()
    {
        var (states, targets, items) = Problem(2);
        var start = zeros(8);
        var adapted = UserAdaptation.Adapt(states, targets, items, start, full(8, Math.Log(0.5)), steps: 5);
        Assert.True(UserAdaptation.Loss(states, targets, adapted, items).item<float>() < UserAdaptation.Loss(states, targets, start, items).item<float>() - 0.1);
    }

    [Fact]
    public void Serving_time_adaptation_in_csharp_equals_the_torchsharp_one()
    {
        var (states, targets, items) = Problem(3);
        var initial = randn(8) * 0.1;
        var rates = rand(8) + 0.2;
        var expected = UserAdaptation.Adapt(states, targets, items, initial, rates.log(), steps: 4).data<float>().ToArray();

        var actual = Recommender.Serving.UserAdaptation.Adapt(
            Enumerable.Range(0, 4).Select(t => states[t].data<float>().ToArray()).ToList(),
            targets.data<long>().Select(t => (int)t).ToList(),
            items.data<float>().ToArray(), 8, initial.data<float>().ToArray(), rates.data<float>().ToArray(), steps: 4);

        Assert.Equal(expected.Length, actual.Length);
        for (var k = 0; k < expected.Length; k++)
            Assert.True(Math.Abs(expected[k] - actual[k]) < 1e-5, $"dimension {k}: {expected[k]} vs {actual[k]}");
    }
}

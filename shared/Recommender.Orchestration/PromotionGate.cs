using System.Text.Json.Nodes;
using Recommender.ModelContract;

namespace Recommender.Orchestration;

/// <summary>The gate's decision and the figures it was made on.</summary>
public sealed record GateVerdict(
    bool Promote,
    string Reason,
    string? ChampionVersion,
    IReadOnlyDictionary<string, double> Candidate,
    IReadOnlyDictionary<string, double> Champion);

/// <summary>
/// Whether a candidate model replaces the champion: it must load and pass the ONNX smoke test, and on
/// every gate metric the champion has (for example <c>ndcg@10</c> and an off-policy estimate of reward) it
/// must be at least <c>1 + minRelativeImprovement - tolerance</c> times the champion's and strictly better on one; a
/// metric's tolerance lets a guardrail (the offline next-item metric, when the objective is long-term reward) dip by
/// noise without blocking a policy that is better at what it is for.
/// A metric the champion reports and the candidate does not is a failure; a metric neither reports is skipped.
/// With no champion, a candidate that loads is promoted.
/// An off-policy estimate is trusted only when the effective sample size of its importance weights is at least
/// <c>minEffectiveSampleSize</c>: below it the estimate rests on a handful of logged decisions (the candidate is far
/// from the policy that logged them), and the gate refuses to judge blind: the champion serves on, and the reason says so.
/// </summary>
public static class PromotionGate
{
    /// <summary>The metric that says how many logged decisions an off-policy gate metric rests on.</summary>
    public static readonly IReadOnlyDictionary<string, string> EffectiveSampleSizeOf = new Dictionary<string, string> { [MetricKeys.OffPolicyReward] = MetricKeys.OffPolicyEffectiveSampleSize };

    public static GateVerdict Decide(JsonObject? candidateMetrics, JsonObject? championMetrics, string? championVersion,
        string? smokeTestFailure, IReadOnlyList<string> gateMetrics, double minRelativeImprovement, double minEffectiveSampleSize = 0,
        IReadOnlyDictionary<string, double>? tolerances = null)
    {
        var reported = gateMetrics.Concat(gateMetrics.Where(EffectiveSampleSizeOf.ContainsKey).Select(m => EffectiveSampleSizeOf[m])).ToList();
        var candidate = Pick(candidateMetrics, reported);
        var champion = Pick(championMetrics, reported);
        GateVerdict Verdict(bool promote, string reason) => new(promote, reason, championVersion, candidate, champion);

        if (smokeTestFailure is not null)
            return Verdict(false, $"candidate failed the smoke test: {smokeTestFailure}");
        if (candidate.Values.Any(v => !double.IsFinite(v)))
            return Verdict(false, "candidate reports a metric that is not a finite number");
        if (championVersion is null)
            return Verdict(true, "no model is promoted yet");

        var better = false;
        foreach (var metric in gateMetrics.Where(champion.ContainsKey))
        {
            if (!candidate.TryGetValue(metric, out var value))
                return Verdict(false, $"candidate does not report {metric}, which the champion does");
            if (minEffectiveSampleSize > 0 && EffectiveSampleSizeOf.TryGetValue(metric, out var essMetric) && candidate.GetValueOrDefault(essMetric, double.NaN) is var ess && !(ess >= minEffectiveSampleSize))
                return Verdict(false, $"{metric} not trusted: the effective sample size of its importance weights, {ess:F0}, is below the floor of {minEffectiveSampleSize:F0} (the candidate is too far from the policy that logged the decisions)");
            var tolerance = tolerances?.GetValueOrDefault(metric) ?? 0;
            var required = champion[metric] * (1 + minRelativeImprovement - tolerance);
            if (value < required)
                return Verdict(false, $"{metric} {value:F4} is below the champion's {champion[metric]:F4}" + (minRelativeImprovement > 0 || tolerance > 0 ? $" (needs {required:F4})" : ""));
            better |= value > champion[metric];
        }
        if (champion.Count == 0)
            return Verdict(false, $"the champion reports none of the gate metrics ({string.Join(", ", gateMetrics)}); nothing to beat it on");
        return better
            ? Verdict(true, "beats the champion on " + string.Join(", ", gateMetrics.Where(champion.ContainsKey).Select(m => $"{m} {candidate[m]:F4} vs {champion[m]:F4}")))
            : Verdict(false, "ties the champion on every gate metric");
    }

    private static Dictionary<string, double> Pick(JsonObject? metrics, IReadOnlyList<string> names)
    {
        var picked = new Dictionary<string, double>();
        foreach (var name in names)
        {
            if (metrics?[name] is JsonValue value && value.TryGetValue<double>(out var number))
                picked[name] = number;
        }
        return picked;
    }
}

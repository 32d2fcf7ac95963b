using System.Globalization;
using System.Text.Json.Serialization;
using Azure.Data.Tables;

namespace Recommender.Serving;

/// <summary>One window of Personalizer's learning metrics (v1.1 <c>Metric</c>); the cumulative figures run from the start of its learning-mode period.</summary>
public sealed record LearningMetric(
    string LearningMode,
    DateTimeOffset StartDate,
    DateTimeOffset EndDate,
    long NumberOfEvents,
    double SumOfRewards,
    long NumberOfMatchedEvents,
    double SumOfImitatedRewards,
    long CumulativeNumberOfEvents,
    double CumulativeSumOfRewards,
    long CumulativeNumberOfMatchedEvents,
    double CumulativeSumOfImitatedRewards);

/// <summary>The query of <c>GET metrics/learning</c>: a time range, and windows of a duration or of a number of events.</summary>
public sealed record LearningMetricsQuery(DateTimeOffset? Start, DateTimeOffset? End, TimeSpan Interval, long? EventsPerWindow, long? RecentEvents)
{
    public static readonly TimeSpan DefaultInterval = TimeSpan.FromHours(1);

    /// <summary>The query from the operation's query parameters, or why they are refused.</summary>
    public static (LearningMetricsQuery? Query, string? Error) Parse(string? startDate, string? endDate, string? aggregationInterval, string? numberOfRecentEvents, string? aggregationEventCount)
    {
        DateTimeOffset? start = null, end = null;
        if (startDate is not null)
        {
            if (!DateTimeOffset.TryParse(startDate, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var s))
                return (null, $"StartDate '{startDate}' is not a date-time");
            start = s;
        }
        if (endDate is not null)
        {
            if (!DateTimeOffset.TryParse(endDate, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var e))
                return (null, $"EndDate '{endDate}' is not a date-time");
            end = e;
        }
        if (start > end)
            return (null, "StartDate must not be after EndDate");
        var interval = DefaultInterval;
        if (aggregationInterval is not null && (!PersonalizerConfiguration.TryDuration(aggregationInterval, out interval) || interval < TimeSpan.FromSeconds(1)))
            return (null, $"AggregationInterval '{aggregationInterval}' is not a duration of at least a second (PT1H or 01:00:00)");
        if (!TryPositive(aggregationEventCount, out var perWindow))
            return (null, $"AggregationEventCount '{aggregationEventCount}' is not a positive whole number");
        if (!TryPositive(numberOfRecentEvents, out var recent))
            return (null, $"NumberOfRecentEvents '{numberOfRecentEvents}' is not a positive whole number");
        return (new LearningMetricsQuery(start, end, interval, perWindow, recent), null);
    }

    private static bool TryPositive(string? text, out long? value)
    {
        value = null;
        if (text is null)
            return true;
        if (!long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var parsed) || parsed <= 0)
            return false;
        value = parsed;
        return true;
    }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(List<List<LearningMetric>>))]
public sealed partial class PersonalizerMetricsJsonContext : JsonSerializerContext;

/// <summary>
/// <c>GET metrics/learning</c> from the rank log. An event counts once it was shown (activated) and its reward is
/// final, by the learner's rule (<see cref="PersonalizerLearner"/>): the reward kept, or <c>defaultReward</c> once
/// <c>rewardWaitTime</c> has passed without one. An event is <i>matched</i> when the learned policy's first choice at
/// rank time was the baseline (the first action not excluded): in Apprentice mode the share of matched events is how
/// often the policy already agrees with the application; the imitated rewards are the rewards of matched events. The
/// answer holds one list of windows per period in one learning mode, oldest first, as the spec's example shows.
/// </summary>
public sealed class PersonalizerLearningMetrics(PersonalizerStore store, RankEventTable ranks, TimeProvider? time = null)
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    private sealed record Shown(DateTimeOffset At, string Mode, double Reward, bool Matched);

    public async Task<List<List<LearningMetric>>> GetAsync(LearningMetricsQuery query, CancellationToken cancellationToken = default)
    {
        var configuration = await store.GetConfigurationAsync(cancellationToken: cancellationToken);
        var matureBefore = _time.GetUtcNow() - configuration.RewardWait;
        var earliest = configuration.RewardAggregation == PersonalizerConfiguration.Earliest;
        var filter = (query.Start, query.End) switch
        {
            ({ } s, { } e) => TableClient.CreateQueryFilter($"RankedAt ge {s} and RankedAt le {e}"),
            ({ } s, null) => TableClient.CreateQueryFilter($"RankedAt ge {s}"),
            (null, { } e) => TableClient.CreateQueryFilter($"RankedAt le {e}"),
            _ => null,
        };
        await ranks.FlushAsync(cancellationToken);
        var events = new List<Shown>();
        await foreach (var record in ranks.Table.QueryAsync<TableEntity>(filter, select: ["RankedAt", "Activated", "LearningMode", "Reward", "Baseline", "PolicyChoice", "Chosen", "Slots"], cancellationToken: cancellationToken))
        {
            if (PersonalizerService.IsMultiSlotEvent(record) || record.GetBoolean("Activated") != true || record.GetString("Chosen") is null
                || record.GetDateTimeOffset("RankedAt") is not { } at)
                continue;
            var reward = record.GetDouble("Reward");
            var final = at < matureBefore || (earliest && reward is not null);
            if (!final)
                continue;
            var matched = record.GetString("Baseline") is { } baseline && record.GetString("PolicyChoice") == baseline;
            events.Add(new Shown(at, record.GetString("LearningMode") ?? LearningModes.Online, reward ?? configuration.DefaultReward, matched));
        }
        var ordered = events.OrderBy(e => e.At).ToList();
        if (query.RecentEvents is { } recent && ordered.Count > recent)
            ordered = ordered.Skip(ordered.Count - (int)recent).ToList();

        var periods = new List<List<LearningMetric>>();
        foreach (var period in Periods(ordered))
        {
            var windows = new List<LearningMetric>();
            long cumulativeEvents = 0, cumulativeMatched = 0;
            double cumulativeRewards = 0, cumulativeImitated = 0;
            foreach (var (from, to, window) in Windows(period, query))
            {
                var matched = window.Where(e => e.Matched).ToList();
                cumulativeEvents += window.Count;
                cumulativeRewards += window.Sum(e => e.Reward);
                cumulativeMatched += matched.Count;
                cumulativeImitated += matched.Sum(e => e.Reward);
                windows.Add(new LearningMetric(period[0].Mode, from, to, window.Count, window.Sum(e => e.Reward), matched.Count, matched.Sum(e => e.Reward),
                    cumulativeEvents, cumulativeRewards, cumulativeMatched, cumulativeImitated));
            }
            periods.Add(windows);
        }
        return periods;
    }

    /// <summary>Runs of consecutive events ranked in the same learning mode.</summary>
    private static IEnumerable<List<Shown>> Periods(List<Shown> ordered)
    {
        var run = new List<Shown>();
        foreach (var shown in ordered)
        {
            if (run.Count > 0 && run[^1].Mode != shown.Mode)
            {
                yield return run;
                run = [];
            }
            run.Add(shown);
        }
        if (run.Count > 0)
            yield return run;
    }

    /// <summary>A period cut into windows of <c>EventsPerWindow</c> events (first to last event's time), or else of <c>Interval</c> aligned on the UTC epoch (empty windows left out).</summary>
    private static IEnumerable<(DateTimeOffset From, DateTimeOffset To, List<Shown> Events)> Windows(List<Shown> period, LearningMetricsQuery query)
    {
        if (query.EventsPerWindow is { } size)
            return period.Chunk((int)Math.Min(size, int.MaxValue)).Select(c => (c[0].At, c[^1].At, c.ToList()));
        var ticks = query.Interval.Ticks;
        return period.GroupBy(e => e.At.UtcTicks / ticks)
            .Select(g => (new DateTimeOffset(g.Key * ticks, TimeSpan.Zero), new DateTimeOffset(g.Key * ticks + ticks, TimeSpan.Zero), g.ToList()));
    }
}

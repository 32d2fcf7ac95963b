using System.Diagnostics.Metrics;
using Recommender.Events;

namespace Recommender.Storage;

/// <summary>
/// The figures operators watch, as OpenTelemetry metrics on one meter (<see cref="MeterName"/>): what came
/// in and what was refused, how fast recommendations are and which path and model served them, rewards per
/// model version (divide by impressions for the reward rate), and how retraining runs end. The Functions
/// app exports the meter to Application Insights; tests read it with a <see cref="MeterListener"/>.
/// </summary>
public static class RecommenderMetrics
{
    public const string MeterName = "Recommender";
    private static readonly Meter Meter = new(MeterName);

    /// <summary>Events newly accepted (a redelivery counts nothing), tagged <c>source</c> (http, eventhubs).</summary>
    public static readonly Counter<long> EventsAccepted = Meter.CreateCounter<long>("recommender.events.accepted", "{event}", "Events accepted into the log, the catalog or the profiles");
    /// <summary>Events refused and dead-lettered, tagged <c>source</c>.</summary>
    public static readonly Counter<long> EventsDeadLettered = Meter.CreateCounter<long>("recommender.events.dead_lettered", "{event}", "Events refused, with their reason in the dead-letter store");
    /// <summary>Serving time of one recommendation, tagged <c>path</c> (sequence, popular) and <c>model_version</c>.</summary>
    public static readonly Histogram<double> RecommendationDuration = Meter.CreateHistogram<double>("recommender.recommendation.duration", "ms", "Time to serve one recommendation or rank");
    /// <summary>Items shown, tagged <c>model_version</c> and <c>path</c>.</summary>
    public static readonly Counter<long> Impressions = Meter.CreateCounter<long>("recommender.impressions", "{item}", "Items shown in served slates");
    /// <summary>Engagements and rewards that name the recommendation they answer, tagged <c>model_version</c> (from the event's context; "unknown" if the client did not echo it) and <c>type</c>.</summary>
    public static readonly Counter<long> Rewards = Meter.CreateCounter<long>("recommender.rewards", "{event}", "Engagements and rewards attributed to a recommendation");
    /// <summary>Reads a stale-bounded cache served past its bound because storage was slow or failing, tagged <c>cache</c>.</summary>
    public static readonly Counter<long> StaleServed = Meter.CreateCounter<long>("recommender.cache.stale_served", "{read}", "Reads served from memory past the staleness bound because storage was slow or failing");
    /// <summary>Items a write-behind sink had to drop (buffer full, or a batch that failed every attempt), tagged <c>sink</c>.</summary>
    public static readonly Counter<long> SinkDropped = Meter.CreateCounter<long>("recommender.sink.dropped", "{item}", "Items a write-behind sink dropped under overload or storage failure");
    /// <summary>Retraining candidates judged, tagged <c>verdict</c> (promoted, kept) .</summary>
    public static readonly Counter<long> TrainingCandidates = Meter.CreateCounter<long>("recommender.training.candidates", "{model}", "Candidates judged by the promotion gate");

    /// <summary>Counts a batch the log took for the first time.</summary>
    public static void RecordAccepted(string source, int accepted, int deadLettered, IEnumerable<Interaction> interactions)
    {
        var tag = new KeyValuePair<string, object?>("source", source);
        if (accepted > 0)
            EventsAccepted.Add(accepted, tag);
        if (deadLettered > 0)
            EventsDeadLettered.Add(deadLettered, tag);
        foreach (var e in interactions)
        {
            if (e.RecommendationId is null || e.Type == InteractionType.Impression)
                continue;
            var version = e.Context is not null && e.Context.TryGetValue("modelVersion", out var v) ? v : "unknown";
            Rewards.Add(1, new("model_version", version), new("type", EventParser.WireName(e.Type)));
        }
    }
}

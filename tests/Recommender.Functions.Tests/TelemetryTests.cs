using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Recommender.Events;
using Recommender.Storage;
using Recommender.TestSupport;
using Recommender.Training;
using Recommender.Training.Pipeline;

namespace Recommender.Functions.Tests;

/// <summary>
/// The Recommender meter as an exporter would see it. Tests run in parallel and the meter is global, so
/// each test reads only measurements tagged with a model version of its own.
/// </summary>
public sealed class TelemetryTests(TrainedRun run) : IClassFixture<TrainedRun>
{
    private sealed class Recorder : IDisposable
    {
        private readonly MeterListener _listener = new();
        public ConcurrentBag<(string Instrument, double Value, Dictionary<string, string?> Tags)> Measurements { get; } = [];

        public Recorder()
        {
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == RecommenderMetrics.MeterName)
                    listener.EnableMeasurementEvents(instrument);
            };
            _listener.SetMeasurementEventCallback<long>((i, v, tags, _) => Add(i, v, tags));
            _listener.SetMeasurementEventCallback<double>((i, v, tags, _) => Add(i, v, tags));
            _listener.Start();
        }

        private void Add(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags) =>
            Measurements.Add((instrument.Name, value, tags.ToArray().ToDictionary(t => t.Key, t => t.Value?.ToString())));

        public List<(double Value, Dictionary<string, string?> Tags)> Of(string instrument, string version) =>
            Measurements.Where(m => m.Instrument == instrument && m.Tags.GetValueOrDefault("model_version") == version).Select(m => (m.Value, m.Tags)).ToList();

        public void Dispose() => _listener.Dispose();
    }

    [Fact]
    public async Task Recommendations_record_latency_and_impressions_and_rewards_count_once_per_model_version()
    {
        using var recorder = new Recorder();
        var services = await Azurite.CreateServicesAsync();
        var serving = await ServingFixture.CreateAsync(services);
        var version = "telemetry-" + Guid.NewGuid().ToString("N")[..8];
        await RunPublisher.PublishAsync(serving.Registry, run.Directory, version, "test", promote: true);

        var served = await serving.Recommendations.RecommendAsync("someone-new", 4);
        var reward = WireEvent.From(new Interaction("click-1", "someone-new", served.Items[0].ItemId, InteractionType.Click, null, DateTimeOffset.UtcNow,
            RecommendationId: served.RecommendationId, Context: new Dictionary<string, string> { ["modelVersion"] = version }));
        await services.Ingestor.IngestEventsAsync([reward]);
        await services.Ingestor.IngestEventsAsync([reward]); // a client's retry: the same delivery, counted once

        var duration = Assert.Single(recorder.Of("recommender.recommendation.duration", version));
        Assert.Equal("popular", duration.Tags["path"]);
        Assert.InRange(duration.Value, 0.0, 60_000);
        Assert.Equal(4, recorder.Of("recommender.impressions", version).Sum(m => m.Value));
        var rewards = Assert.Single(recorder.Of("recommender.rewards", version));
        Assert.Equal("click", rewards.Tags["type"]);
    }
}

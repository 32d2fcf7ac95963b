using System.Text.Json;
using Azure;
using Azure.Data.Tables;

namespace Recommender.Serving;

/// <summary>
/// Updates the bandit from the rank log, on its own every <c>modelExportFrequency</c> (the Functions app's timer, the
/// local host's background loop; <see cref="UpdateAsync"/> with <c>force</c> for tests and <c>POST</c>-less clients).
/// <para>
/// An event is learned from once its reward is final: at once when <c>rewardAggregation</c> is <c>earliest</c> and a
/// reward arrived (later ones do not change it), else when <c>rewardWaitTime</c> has passed since the rank, with the
/// rewards summed or, with none, <c>defaultReward</c>. Ranks never activated (<c>deferActivation</c> and no Activate)
/// were not shown and teach nothing. The model remembers the time before which every event was learned; events learned
/// early are marked in the log, so no event is learned twice.
/// </para>
/// </summary>
public sealed class PersonalizerLearner(PersonalizerStore store, RankEventTable ranks, TimeProvider? time = null)
{
    private TableClient rankEvents => ranks.Table;

    private readonly TimeProvider _time = time ?? TimeProvider.System;

    /// <summary>What one update did.</summary>
    public sealed record Update(bool Ran, int Learned, int Dropped, string Reason);

    public async Task<Update> UpdateAsync(bool force = false, CancellationToken cancellationToken = default)
    {
        var now = _time.GetUtcNow();
        var configuration = await store.GetConfigurationAsync(cancellationToken: cancellationToken);
        var (bandit, model, etag) = await store.GetModelAsync(cancellationToken: cancellationToken);
        if (!force && now - model.LastModifiedAt < configuration.ExportFrequency)
            return new Update(false, 0, 0, $"the model is younger than modelExportFrequency {configuration.ModelExportFrequency}");
        if (configuration.Mode == LearningModes.LoggingOnly)
            return new Update(false, 0, 0, "learningMode is LoggingOnly");

        var matureBefore = now - configuration.RewardWait;
        var earliest = configuration.RewardAggregation == PersonalizerConfiguration.Earliest;
        var since = model.LearnedBefore;
        var events = new List<TableEntity>();
        await ranks.FlushAsync(cancellationToken);
        await foreach (var record in rankEvents.QueryAsync<TableEntity>(TableClient.CreateQueryFilter($"RankedAt ge {since}"), cancellationToken: cancellationToken))
            events.Add(record);
        var ready = events
            .Where(e => e.GetBoolean("Learned") != true)
            .Where(e => e.GetDateTimeOffset("RankedAt") < matureBefore || (earliest && e.GetDouble("Reward") is not null))
            .OrderBy(e => e.GetDateTimeOffset("RankedAt")).ThenBy(e => e.RowKey, StringComparer.Ordinal)
            .ToList();

        int learned = 0, dropped = 0;
        long apprenticeEvents = model.ApprenticeEvents, agreements = model.ApprenticeAgreements;
        foreach (var record in ready)
        {
            if (record.GetBoolean("Activated") != true || record.GetString("Context") is not { } contextJson || record.GetString("Chosen") is not { } chosenJson)
            {
                dropped++;
                continue;
            }
            var context = JsonSerializer.Deserialize(contextJson, PersonalizerJsonContext.Default.ListFeature)!;
            var chosen = JsonSerializer.Deserialize(chosenJson, PersonalizerJsonContext.Default.ListFeature)!;
            if (configuration.Mode == LearningModes.Apprentice && record.GetString("Candidates") is { } candidatesJson)
            {
                // Before learning this event: would the learned policy have chosen what the baseline did?
                var candidates = JsonSerializer.Deserialize(candidatesJson, PersonalizerJsonContext.Default.ListListFeature)!;
                var predictions = bandit.Predict(context, candidates);
                apprenticeEvents++;
                if (Array.IndexOf(predictions, predictions.Max()) == 0)
                    agreements++;
            }
            bandit.Learn(context, chosen, record.GetDouble("Reward") ?? configuration.DefaultReward);
            learned++;
        }

        var updated = model with
        {
            CreatedAt = model.CreatedAt == DateTimeOffset.UnixEpoch ? now : model.CreatedAt,
            LastModifiedAt = now,
            LearnedBefore = matureBefore > since ? matureBefore : since,
            ApprenticeEvents = apprenticeEvents,
            ApprenticeAgreements = agreements,
            Weights = bandit.Export(),
        };
        if (!await store.TrySetModelAsync(updated, etag, cancellationToken))
            return new Update(false, 0, 0, "another instance updated the model meanwhile");
        // Marked after the model is saved: a crash between the two relearns these few events once, never loses them.
        foreach (var record in ready.Where(e => e.GetDateTimeOffset("RankedAt") >= updated.LearnedBefore))
        {
            try
            {
                // Only the flag: a reward written meanwhile stays.
                await rankEvents.UpdateEntityAsync(new TableEntity(record.PartitionKey, record.RowKey) { ["Learned"] = true }, ETag.All, TableUpdateMode.Merge, cancellationToken);
            }
            catch (RequestFailedException ex) when (ex.Status == 404)
            {
                // The log was deleted meanwhile.
            }
        }
        return new Update(true, learned, dropped, $"learned from {learned} events");
    }
}

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
/// were not shown and teach nothing. The model remembers the time before which every event was learned; an event
/// learned early is removed from the learning rows, so no event is learned twice. It reads only the learning partitions of the minutes since then
/// (<see cref="RankEventTable"/>), by key range, and deletes those behind the new watermark: its work follows the
/// traffic since the last update, not the size of the log.
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
        // The minutes not learned yet, by key range: the learning rows of their ranks, rewards, activations and marks.
        await ranks.FlushAsync(cancellationToken);
        var rows = new List<TableEntity>();
        var window = RankEventTable.LearningMinutes(since, now);
        await foreach (var row in rankEvents.QueryAsync<TableEntity>(window, cancellationToken: cancellationToken))
            rows.Add(row);
        var events = rows.GroupBy(r => r.GetString("EventId") ?? "").Select(LoggedEvent.From).OfType<LoggedEvent>().ToList();
        var ready = events
            .Where(e => e.At >= since)
            .Where(e => e.At < matureBefore || (earliest && e.Reward is not null))
            .OrderBy(e => e.At).ThenBy(e => e.Rank.RowKey, StringComparer.Ordinal)
            .ToList();

        int learned = 0, dropped = 0;
        long apprenticeEvents = model.ApprenticeEvents, agreements = model.ApprenticeAgreements;
        foreach (var e in ready)
        {
            if (!e.Activated)
            {
                dropped++; // never shown: nothing to learn
                continue;
            }
            var context = JsonSerializer.Deserialize(e.Rank.GetString("Context")!, PersonalizerJsonContext.Default.ListFeature)!;
            var chosen = JsonSerializer.Deserialize(e.Rank.GetString("Chosen")!, PersonalizerJsonContext.Default.ListFeature)!;
            if (configuration.Mode == LearningModes.Apprentice && e.Rank.GetString("Candidates") is { } candidatesJson)
            {
                // Before learning this event: would the learned policy have chosen what the baseline did?
                var candidates = JsonSerializer.Deserialize(candidatesJson, PersonalizerJsonContext.Default.ListListFeature)!;
                var predictions = bandit.Predict(context, candidates);
                apprenticeEvents++;
                if (Array.IndexOf(predictions, predictions.Max()) == 0)
                    agreements++;
            }
            bandit.Learn(context, chosen, e.Reward ?? configuration.DefaultReward);
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
        // After the model is saved: a crash between the two relearns these few events once, never loses them. What was
        // learned goes (a late reward of an event learned at its first reward finds no rank, and teaches nothing), and so
        // do the minutes behind the watermark, whatever arrived there late: the next update reads only what is left.
        var done = ready.SelectMany(e => e.Rows).Select(r => (r.PartitionKey, r.RowKey)).ToList();
        var behind = RankEventTable.LearningMinutesBefore(updated.LearnedBefore);
        await foreach (var row in rankEvents.QueryAsync<TableEntity>(behind, select: ["PartitionKey", "RowKey"], cancellationToken: cancellationToken))
            done.Add((row.PartitionKey, row.RowKey));
        await ranks.DeleteAllAsync(done.Distinct().ToList(), cancellationToken);
        return new Update(true, learned, dropped, $"learned from {learned} events");
    }

    /// <summary>One rank as its learning partition tells it: its rows, the rank's own, whether it was shown, the reward kept.</summary>
    private sealed record LoggedEvent(List<TableEntity> Rows, TableEntity Rank, DateTimeOffset At, bool Activated, double? Reward)
    {
        public static LoggedEvent? From(IEnumerable<TableEntity> rows)
        {
            var all = rows.ToList();
            if (all.FirstOrDefault(r => r.RowKey.StartsWith(RankEventTable.RankRow, StringComparison.Ordinal)) is not { } rank || rank.GetDateTimeOffset("At") is not { } at)
                return null; // rows of a rank learned already, or whose own row is gone (deleted logs, a purge)
            var reward = all.Where(r => r.RowKey.StartsWith(RankEventTable.RewardRow, StringComparison.Ordinal)).MaxBy(r => r.GetInt32("RewardCount") ?? 0);
            return new LoggedEvent(all, rank, at,
                rank.GetBoolean("Activated") == true || all.Any(r => r.RowKey.StartsWith(RankEventTable.ActivatedRow, StringComparison.Ordinal)),
                reward?.GetDouble("Reward"));
        }
    }
}

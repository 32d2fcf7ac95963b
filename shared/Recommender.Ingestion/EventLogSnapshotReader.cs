namespace Recommender.Ingestion;

/// <summary>
/// Reads the event log as training sees it: every blob under the prefix, minus the events of deleted
/// users ingested up to their deletion, each event id once (in case a client resent an event in a
/// different HTTP body), ordered by timestamp.
/// </summary>
public sealed class EventLogSnapshotReader(EventLog eventLog, TombstoneStore tombstones)
{
    public async Task<IReadOnlyList<EventLogRecord>> ReadAsync(string prefix = StorageLayout.EventLogPrefix, CancellationToken cancellationToken = default)
    {
        var deleted = await tombstones.ReadAllAsync(cancellationToken);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var records = new List<EventLogRecord>();
        await foreach (var blob in eventLog.ListBlobsAsync(prefix, cancellationToken))
        {
            foreach (var record in await eventLog.ReadBlobAsync(blob.Name, cancellationToken))
            {
                if (deleted.TryGetValue(record.UserId, out var deletedAt) && record.IngestedAt <= deletedAt.UtcDateTime)
                    continue;
                if (seen.Add(record.EventId))
                    records.Add(record);
            }
        }
        records.Sort((a, b) => a.Timestamp.CompareTo(b.Timestamp));
        return records;
    }
}

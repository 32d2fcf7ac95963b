using Recommender.Storage;

namespace Recommender.EventLog;

/// <summary>What a read of the log found: the records kept, and what was left out and why.</summary>
public sealed record EventLogRead(List<EventLogRecord> Records, int Blobs, long Events, long DeletedUserEvents, long DuplicateEvents, IReadOnlyList<string> UnreadableBlobs);

/// <summary>
/// Reads the event log as training sees it: the log's blobs, minus the events of deleted users ingested up to their
/// deletion (<see cref="Tombstone.Covers"/>; until the purge removes them from the blobs), each event id once (in case a client resent an event in a different HTTP body),
/// ordered by timestamp (then event id, so equal times keep one order).
/// </summary>
public sealed class EventLogSnapshotReader(EventLogStore eventLog, TombstoneStore tombstones)
{
    /// <summary>Every blob of the log; a blob that cannot be read fails the read.</summary>
    public async Task<IReadOnlyList<EventLogRecord>> ReadAsync(CancellationToken cancellationToken = default)
    {
        var read = await ReadAsync(writtenBefore: null, cancellationToken);
        if (read.UnreadableBlobs.Count > 0)
            throw new InvalidDataException($"event-log blob {read.UnreadableBlobs[0]} cannot be read");
        return read.Records;
    }

    /// <summary>Log blobs downloaded at once: the log holds many small blobs (one per delivery), and one request at a time leaves the storage account idle.</summary>
    public const int ConcurrentReads = 16;

    /// <summary>The blobs written before <paramref name="writtenBefore"/> (all when null); unreadable blobs are listed, not thrown.</summary>
    public async Task<EventLogRead> ReadAsync(DateTimeOffset? writtenBefore, CancellationToken cancellationToken = default)
    {
        var deleted = await tombstones.ReadAllAsync(cancellationToken);
        var names = new List<string>();
        await foreach (var blob in eventLog.ListBlobsAsync(cancellationToken: cancellationToken))
        {
            if (writtenBefore is not { } limit || EventLogStore.WrittenAt(blob) < limit)
                names.Add(blob.Name);
        }
        // Downloaded side by side, then taken in listing order, so which copy of a repeated event id is kept does not depend on timing.
        var contents = new IList<EventLogRecord>?[names.Count];
        await Parallel.ForEachAsync(Enumerable.Range(0, names.Count), new ParallelOptions { MaxDegreeOfParallelism = ConcurrentReads, CancellationToken = cancellationToken },
            async (i, ct) =>
            {
                try
                {
                    contents[i] = await eventLog.ReadBlobAsync(names[i], ct);
                }
                catch (Exception ex) when (ex is IOException or InvalidDataException or NotSupportedException or ArgumentException or InvalidOperationException)
                {
                    contents[i] = null;
                }
            });

        var seen = new HashSet<string>(StringComparer.Ordinal);
        var records = new List<EventLogRecord>();
        var unreadable = new List<string>();
        long events = 0, deletedEvents = 0, duplicates = 0;
        for (var i = 0; i < names.Count; i++)
        {
            if (contents[i] is not { } rows)
            {
                unreadable.Add(names[i]);
                continue;
            }
            foreach (var record in rows)
            {
                events++;
                if (deleted.Covers(record.UserId, record.IngestedAt))
                    deletedEvents++;
                else if (!seen.Add(record.EventId))
                    duplicates++;
                else
                    records.Add(record);
            }
        }
        records.Sort((a, b) => a.Timestamp != b.Timestamp ? a.Timestamp.CompareTo(b.Timestamp) : string.CompareOrdinal(a.EventId, b.EventId));
        return new EventLogRead(records, names.Count, events, deletedEvents, duplicates, unreadable);
    }
}

using System.Text;
using System.Text.Json;
using Azure.Data.Tables;
using Azure.Storage.Blobs;
using Parquet;
using Recommender.EventLog;
using Recommender.Events;
using Recommender.Ingestion;
using Recommender.ModelContract;
using Recommender.Serving;
using Recommender.Storage;
using Recommender.TestSupport;

namespace Recommender.Functions.Tests;

/// <summary>
/// The erasure promise: after a deleted user's purge, no blob or table of the product's storage holds the user's id
/// (every one scanned, Parquet decoded), and every other user keeps exactly what they had.
/// </summary>
public sealed class UserDataPurgeTests
{
    private static readonly UserDataPurgeOptions NoGrace = new() { Grace = TimeSpan.Zero };

    [Fact]
    public async Task After_the_purge_no_blob_or_table_holds_the_deleted_user_and_the_others_keep_everything()
    {
        var ingestion = await Azurite.CreateServicesAsync();
        await using var serving = await ServingFixture.CreateAsync(ingestion, purge: NoGrace);
        var gone = "erase-" + Guid.NewGuid().ToString("N")[..10];
        string[] kept = ["keep-a", "keep-b"];
        var storage = StorageOf(ingestion, serving);

        // Each user: engagements over HTTP (several bodies, so log blobs mix users), a profile, a refused event, a Personalizer rank and its reward.
        var n = 0;
        var bodies = new List<List<WireEvent>>();
        foreach (var round in Enumerable.Range(0, 3))
        {
            var batch = new List<WireEvent>();
            foreach (var user in kept.Append(gone))
                batch.AddRange(Enumerable.Range(0, 4).Select(_ => TestEvents.Interaction(n++, userId: user)));
            await ingestion.Ingestor.IngestEventsAsync(batch);
            bodies.Add(batch);
        }
        await ingestion.Ingestor.IngestEventsAsync([.. kept.Append(gone).Select(user => WireEvent.From(new UserProfile($"profile-{user}", user,
            new Dictionary<string, string> { ["country"] = "fr" }, TestEvents.Start)))]);
        var refused = kept.Append(gone).Select(user => Encoding.UTF8.GetBytes(
            $$"""{"schemaVersion":1,"eventId":"bad-{{user}}","userId":"{{user}}","type":"teleport","timestamp":"2026-11-01T12:00:00Z"}""")).ToList();
        await ingestion.Ingestor.IngestHttpAsync([.. refused.Select(b => (ReadOnlyMemory<byte>)b)], Encoding.UTF8.GetBytes("[" + string.Join(",", refused.Select(Encoding.UTF8.GetString)) + "]"));
        foreach (var user in kept.Append(gone))
        {
            var rank = await serving.Personalizer.RankAsync(new RankRequest(
                [JsonSerializer.SerializeToElement(new { userId = user })],
                [new RankableAction("i1"), new RankableAction("i2"), new RankableAction("i3")]));
            await serving.Personalizer.RewardAsync(rank.EventId, new RewardRequest(1));
        }
        await serving.FlushAsync();
        await Task.Delay(1_100); // a snapshot takes the log blobs of the seconds before its watermark
        var snapshot = await ingestion.Snapshots.CreateAsync(DateTimeOffset.UtcNow, new SnapshotRequirements { MinEngagements = 1, MinTrainableUsers = 1 });
        Assert.True(snapshot.Accepted, snapshot.RefusedBecause);
        await serving.Registry.PublishAsync(new ModelManifest("v-test", DateTimeOffset.UtcNow, snapshot.Id, 10, [], [], [""]), "policy"u8.ToArray());

        var before = await CountsByUserAsync(ingestion, serving);
        Assert.NotEmpty(await ScanAsync(storage, gone));

        await serving.DeleteUserAsync(gone);
        Assert.Equal("purgePending", (await serving.GetDeletionStatusAsync(gone))!.State);
        var run = await serving.PurgeDeletedUsersAsync();

        Assert.Equal(1, run.Users);
        Assert.Equal([snapshot.Id], run.DeletedSnapshots);
        Assert.Empty(await ScanAsync(storage, gone));
        var after = await CountsByUserAsync(ingestion, serving);
        foreach (var user in kept)
            Assert.Equal(before[user], after[user]);
        Assert.False(after.ContainsKey(gone));

        var status = (await serving.GetDeletionStatusAsync(gone))!;
        Assert.Equal("purged", status.State);
        // 12 engagements, the impressions of its rank (3), its reward; its refused event; its rank record; the snapshot; the model trained on it.
        Assert.Equal(before[gone].LogEvents, status.Removed!["logEvents"]);
        Assert.Equal((1, 1, 1, 1), (status.Removed["deadLetters"], status.Removed["rankEvents"], status.Removed["snapshots"], status.Removed["modelsMarked"]));
        Assert.True(await serving.Registry.IsTrainedOnPurgedDataAsync("v-test"));

        // A second purge finds nothing to do. Every log blob (one per delivery) is still there, so a client's retry of a body
        // sent before the deletion is recognised: it neither brings the deleted user back nor duplicates the others.
        Assert.Equal(0, (await serving.PurgeDeletedUsersAsync()).Users);
        await ingestion.Ingestor.IngestEventsAsync(bodies[0]);
        Assert.Empty(await ScanAsync(storage, gone));
        Assert.Equal(after, await CountsByUserAsync(ingestion, serving));
    }

    [Fact]
    public async Task A_deletion_is_not_purged_before_its_grace_period_and_a_user_never_deleted_has_no_status()
    {
        var ingestion = await Azurite.CreateServicesAsync();
        await using var serving = await ServingFixture.CreateAsync(ingestion, purge: new UserDataPurgeOptions { Grace = TimeSpan.FromHours(1) });
        await ingestion.Ingestor.IngestEventsAsync([TestEvents.Interaction(1, userId: "later")]);
        var deletedAt = await ingestion.Deletion.DeleteAsync("later");

        Assert.Equal(0, (await serving.PurgeDeletedUsersAsync()).Users);
        var status = (await serving.GetDeletionStatusAsync("later"))!;
        Assert.Equal(("purgePending", deletedAt + TimeSpan.FromHours(1), deletedAt + TimeSpan.FromHours(24)), (status.State, status.PurgeAfter, status.PurgedBy));
        Assert.Contains(await ingestion.EventLog.ListBlobsAsync().ToListAsync(), b => b.Metadata[EventLogStore.EventCountMetadata] == "1");
        Assert.Null(await serving.GetDeletionStatusAsync("never-deleted"));
    }

    private sealed record UserCounts(long LogEvents, int DeadLetters, int RankEvents);

    /// <summary>Per user: events in the log blobs (read raw, not through the snapshot reader's filter), dead letters, rank records.</summary>
    private static async Task<Dictionary<string, UserCounts>> CountsByUserAsync(IngestionServices ingestion, ServingServices serving)
    {
        var log = new Dictionary<string, long>();
        await foreach (var blob in ingestion.EventLog.ListBlobsAsync())
            foreach (var record in await ingestion.EventLog.ReadBlobAsync(blob.Name))
                log[record.UserId] = log.GetValueOrDefault(record.UserId) + 1;
        var letters = (await ingestion.DeadLetters.ReadAllAsync()).GroupBy(l => JsonDocument.Parse(l.Payload).RootElement.GetProperty("userId").GetString()!)
            .ToDictionary(g => g.Key, g => g.Count());
        var ranks = new Dictionary<string, int>();
        await foreach (var rank in serving.RankEvents.QueryAsync<TableEntity>(TableClient.CreateQueryFilter($"PartitionKey ge {"u"}"))) // the records, not their learning rows
            ranks[rank.GetString("UserId")!] = ranks.GetValueOrDefault(rank.GetString("UserId")!) + 1;
        return log.Keys.ToDictionary(user => user, user => new UserCounts(log[user], letters.GetValueOrDefault(user), ranks.GetValueOrDefault(user)));
    }

    /// <summary>Every container and table the product writes to in this test.</summary>
    private static HashSet<string> StorageOf(IngestionServices ingestion, ServingServices serving)
    {
        var layout = ingestion.Layout;
        return [layout.EventLogContainer, layout.DeadLetterContainer, layout.IngestStateContainer, layout.TrainingContainer, serving.Models.Name,
            layout.UserStateTable, layout.UserProfileTable, layout.CatalogTable, layout.TombstoneTable, serving.RankEvents.Name];
    }

    /// <summary>Every blob (Parquet decoded, metadata included) and every table entity of the test's storage that mentions <paramref name="needle"/>.</summary>
    private static async Task<List<string>> ScanAsync(HashSet<string> storage, string needle)
    {
        var found = new List<string>();
        var blobs = new BlobServiceClient(Azurite.ConnectionString);
        await foreach (var container in blobs.GetBlobContainersAsync())
        {
            if (!storage.Contains(container.Name))
                continue;
            var client = blobs.GetBlobContainerClient(container.Name);
            await foreach (var blob in client.GetBlobsAsync(new Azure.Storage.Blobs.Models.GetBlobsOptions { Traits = Azure.Storage.Blobs.Models.BlobTraits.Metadata }))
            {
                var content = (await client.GetBlobClient(blob.Name).DownloadContentAsync()).Value.Content.ToArray();
                var text = blob.Name + " " + string.Join(" ", blob.Metadata.Select(m => m.Key + "=" + m.Value)) + " "
                    + (blob.Name.EndsWith(".parquet", StringComparison.Ordinal) ? await ParquetTextAsync(content) : Encoding.UTF8.GetString(content));
                if (text.Contains(needle, StringComparison.Ordinal))
                    found.Add($"{container.Name}/{blob.Name}");
            }
        }
        var tables = new TableServiceClient(Azurite.ConnectionString);
        await foreach (var table in tables.QueryAsync())
        {
            if (!storage.Contains(table.Name))
                continue;
            await foreach (var entity in tables.GetTableClient(table.Name).QueryAsync<TableEntity>())
            {
                if (entity.Select(kv => kv.Value).Select(v => v?.ToString() ?? "").Append(entity.PartitionKey).Append(entity.RowKey).Any(v => v.Contains(needle, StringComparison.Ordinal)))
                    found.Add($"{table.Name}/{entity.PartitionKey}/{entity.RowKey}");
            }
        }
        return found;
    }

    /// <summary>Every value of every text column, whatever the schema: the scan must not depend on the reader the product uses.</summary>
    private static async Task<string> ParquetTextAsync(byte[] content)
    {
        await using var reader = await ParquetReader.CreateAsync(new MemoryStream(content));
        var text = new StringBuilder();
        for (var g = 0; g < reader.RowGroupCount; g++)
        {
            using var group = reader.OpenRowGroupReader(g);
            foreach (var field in reader.Schema.GetDataFields().Where(f => f.ClrType == typeof(string)))
            {
                var values = new string?[group.RowCount];
                await group.ReadAsync(field, values.AsMemory(), null);
                text.AppendJoin(' ', values).Append(' ');
            }
        }
        return text.ToString();
    }
}

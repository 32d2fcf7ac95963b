using System.Text.Json;
using Azure;
using Azure.Data.Tables;
using Recommender.Events;
using Recommender.Storage;

namespace Recommender.EventLog;

/// <summary>
/// Catalog items and user profiles for serving and training. Both are latest-wins by event
/// timestamp: an older update that arrives late (or again) does not overwrite a newer one. Profiles are read
/// through a <see cref="StaleBoundedCache{T}"/> (serving reads one per request); this process's own updates
/// and deletions drop the cached profile, so they are read back at once.
/// </summary>
public sealed class CatalogStore(TableClient items, TableClient profiles, StaleBoundedCacheOptions? profileCache = null, TimeProvider? time = null)
{
    private const string ItemPartition = "item";
    private readonly StaleBoundedCache<UserProfile> _profiles = new(
        p => p is null ? 0 : 128 + p.Attributes.Sum(a => 64 + (a.Key.Length + a.Value.Length) * 2), profileCache, time, "profiles");

    public async Task UpsertItemsAsync(IEnumerable<CatalogItem> updates, CancellationToken cancellationToken = default)
    {
        // Within one delivery only the newest update of each item matters.
        foreach (var item in updates.GroupBy(i => i.ItemId).Select(g => g.MaxBy(i => i.Timestamp)!))
        {
            var entity = new TableEntity(ItemPartition, TableKeys.Encode(item.ItemId))
            {
                ["ItemId"] = item.ItemId,
                ["Categories"] = JsonSerializer.Serialize(item.Categories.ToList(), IngestionJsonContext.Default.ListString),
                ["Tags"] = JsonSerializer.Serialize(item.Tags.ToList(), IngestionJsonContext.Default.ListString),
                ["Title"] = item.Title,
                ["Text"] = item.Text,
                ["Available"] = item.Available,
                ["EventTimestamp"] = item.Timestamp,
            };
            await WriteIfNewerAsync(items, entity, item.Timestamp, cancellationToken);
        }
    }

    public async Task UpsertProfilesAsync(IEnumerable<UserProfile> updates, CancellationToken cancellationToken = default)
    {
        foreach (var profile in updates.GroupBy(p => p.UserId).Select(g => g.MaxBy(p => p.Timestamp)!))
        {
            var entity = new TableEntity(TableKeys.UserBucket(profile.UserId), TableKeys.Encode(profile.UserId))
            {
                ["UserId"] = profile.UserId,
                ["Attributes"] = JsonSerializer.Serialize(new Dictionary<string, string>(profile.Attributes), EventJsonContext.Default.DictionaryStringString),
                ["EventTimestamp"] = profile.Timestamp,
            };
            await WriteIfNewerAsync(profiles, entity, profile.Timestamp, cancellationToken);
            _profiles.Remove(profile.UserId);
        }
    }

    public async Task<CatalogItem?> GetItemAsync(string itemId, CancellationToken cancellationToken = default)
    {
        var response = await items.GetEntityIfExistsAsync<TableEntity>(ItemPartition, TableKeys.Encode(itemId), cancellationToken: cancellationToken);
        return response.HasValue ? ToItem(response.Value!) : null;
    }

    public async IAsyncEnumerable<CatalogItem> ListItemsAsync([System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await foreach (var entity in items.QueryAsync<TableEntity>(e => e.PartitionKey == ItemPartition, cancellationToken: cancellationToken))
        {
            yield return ToItem(entity);
        }
    }

    /// <summary>Ids of the items marked unavailable (serving leaves them out).</summary>
    public async IAsyncEnumerable<string> ListUnavailableItemIdsAsync([System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await foreach (var entity in items.QueryAsync<TableEntity>(e => e.PartitionKey == ItemPartition && e.GetBoolean("Available") == false,
            select: ["ItemId"], cancellationToken: cancellationToken))
        {
            yield return entity.GetString("ItemId") ?? TableKeys.Decode(entity.RowKey);
        }
    }

    /// <summary>The user's profile, no staler than the profile cache's bound (null: none).</summary>
    public async Task<UserProfile?> GetProfileAsync(string userId, CancellationToken cancellationToken = default) =>
        await _profiles.GetAsync(userId, async ct =>
        {
            var response = await profiles.GetEntityIfExistsAsync<TableEntity>(TableKeys.UserBucket(userId), TableKeys.Encode(userId), cancellationToken: ct);
            if (!response.HasValue)
                return (null, default);
            var e = response.Value!;
            return (new UserProfile("", userId,
                JsonSerializer.Deserialize(e.GetString("Attributes") ?? "{}", EventJsonContext.Default.DictionaryStringString)!,
                e.GetDateTimeOffset("EventTimestamp") ?? default), e.ETag);
        }, cancellationToken);

    /// <summary>Every user profile (training snapshots read them all).</summary>
    public async IAsyncEnumerable<UserProfile> ListProfilesAsync([System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await foreach (var e in profiles.QueryAsync<TableEntity>(cancellationToken: cancellationToken))
        {
            yield return new UserProfile("", e.GetString("UserId") ?? TableKeys.Decode(e.RowKey),
                JsonSerializer.Deserialize(e.GetString("Attributes") ?? "{}", EventJsonContext.Default.DictionaryStringString)!,
                e.GetDateTimeOffset("EventTimestamp") ?? default);
        }
    }

    public async Task DeleteProfileAsync(string userId, CancellationToken cancellationToken = default)
    {
        _profiles.Remove(userId);
        await profiles.DeleteEntityAsync(TableKeys.UserBucket(userId), TableKeys.Encode(userId), ETag.All, cancellationToken);
        _profiles.Remove(userId);
    }

    private static CatalogItem ToItem(TableEntity e) => new(
        "",
        e.GetString("ItemId") ?? TableKeys.Decode(e.RowKey),
        JsonSerializer.Deserialize(e.GetString("Categories") ?? "[]", IngestionJsonContext.Default.ListString)!,
        JsonSerializer.Deserialize(e.GetString("Tags") ?? "[]", IngestionJsonContext.Default.ListString)!,
        e.GetString("Title"),
        e.GetString("Text"),
        e.GetBoolean("Available") ?? true,
        e.GetDateTimeOffset("EventTimestamp") ?? default);

    /// <summary>Optimistic concurrency: read, compare timestamps, write on the ETag read; retry on a lost race.</summary>
    private static async Task WriteIfNewerAsync(TableClient table, TableEntity entity, DateTimeOffset timestamp, CancellationToken cancellationToken)
    {
        while (true)
        {
            var existing = await table.GetEntityIfExistsAsync<TableEntity>(entity.PartitionKey, entity.RowKey, ["EventTimestamp"], cancellationToken);
            try
            {
                if (!existing.HasValue)
                {
                    await table.AddEntityAsync(entity, cancellationToken);
                    return;
                }
                if (existing.Value!.GetDateTimeOffset("EventTimestamp") >= timestamp)
                    return;
                await table.UpdateEntityAsync(entity, existing.Value.ETag, TableUpdateMode.Replace, cancellationToken);
                return;
            }
            catch (RequestFailedException ex) when (ex.Status is 409 or 412)
            {
                // Someone else wrote in between: look again.
            }
        }
    }
}

[System.Text.Json.Serialization.JsonSerializable(typeof(List<string>))]
internal sealed partial class IngestionJsonContext : System.Text.Json.Serialization.JsonSerializerContext;

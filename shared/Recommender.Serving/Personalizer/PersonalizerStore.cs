using System.Text.Json;
using System.Text.Json.Serialization;
using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Recommender.Storage;

namespace Recommender.Serving;

/// <summary>The learned bandit as stored, with its times and what it learned from.</summary>
public sealed record PersonalizerModel
{
    public DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset LastModifiedAt { get; init; }
    /// <summary>Every rank before this time has been learned from (or dropped); ranks after it only when marked learned.</summary>
    public DateTimeOffset LearnedBefore { get; init; }
    /// <summary>Ranks the apprentice judged, and how often the learned policy's choice was the baseline's.</summary>
    public long ApprenticeEvents { get; init; }
    public long ApprenticeAgreements { get; init; }
    public required BanditWeights Weights { get; init; }

    public static PersonalizerModel Fresh(DateTimeOffset now) => new() { CreatedAt = now, LastModifiedAt = now, LearnedBefore = now, Weights = new BanditWeights(0, []) };
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(PersonalizerConfiguration))]
[JsonSerializable(typeof(PersonalizerPolicy))]
[JsonSerializable(typeof(PersonalizerModel))]
public sealed partial class PersonalizerStateJsonContext : JsonSerializerContext;

/// <summary>
/// Personalizer's state in Blob Storage, beside the models (<c>personalizer/</c>): the service configuration, the
/// learning policy and the learned model. Every instance reads the same blobs; the model is written only with
/// <c>If-Match</c> on the version it was learned from, so two instances updating at once do not both count an event.
/// Rank reads the configuration and the model from memory (<see cref="StaleBoundedCache{T}"/>, bound <see cref="CacheFor"/>):
/// re-read behind the requests, one read at a time, and what this instance writes is read back at once, so no Rank
/// waits on storage while it is healthy, and a slow one makes the state a little staler, not every Rank slower.
/// </summary>
public sealed class PersonalizerStore(BlobContainerClient container, TimeProvider? time = null)
{
    public const string ConfigurationBlob = "personalizer/configuration.json";
    public const string PolicyBlob = "personalizer/policy.json";
    public const string ModelBlob = "personalizer/model.json";
    public static readonly TimeSpan CacheFor = TimeSpan.FromSeconds(2);

    /// <summary>The learned model with the bandit read from it (importing the weights is the costly part of a read).</summary>
    private sealed record LearnedModel(ContextualBandit Bandit, PersonalizerModel Model);

    private static readonly StaleBoundedCacheOptions Cached = new() { MaxStaleness = CacheFor };
    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private readonly StaleBoundedCache<PersonalizerConfiguration> _configuration = new(_ => 1024, Cached, time, "personalizer-configuration");
    private readonly StaleBoundedCache<LearnedModel> _model = new(m => m is null ? 0 : 256 + 64L * m.Model.Weights.Weights.Count, Cached, time, "personalizer-model");

    /// <param name="cached">From memory (Rank); otherwise read from storage now (what the API returns, what the learner updates).</param>
    public async Task<PersonalizerConfiguration> GetConfigurationAsync(bool cached = false, CancellationToken cancellationToken = default)
    {
        if (cached)
            return await _configuration.GetAsync(ConfigurationBlob, ReadConfigurationAsync, cancellationToken) ?? new PersonalizerConfiguration();
        var (configuration, etag) = await ReadConfigurationAsync(cancellationToken);
        _configuration.Put(ConfigurationBlob, configuration, etag); // a read from storage is as fresh as the cache can be
        return configuration ?? new PersonalizerConfiguration();
    }

    private Task<(PersonalizerConfiguration? Value, ETag ETag)> ReadConfigurationAsync(CancellationToken cancellationToken) =>
        ReadAsync(ConfigurationBlob, PersonalizerStateJsonContext.Default.PersonalizerConfiguration, cancellationToken);

    /// <summary>Keeps <paramref name="configuration"/>, stamped with the time of the edit; returns what was kept.</summary>
    public async Task<PersonalizerConfiguration> SetConfigurationAsync(PersonalizerConfiguration configuration, CancellationToken cancellationToken = default)
    {
        configuration = configuration with { LastConfigurationEditDate = _time.GetUtcNow() };
        var etag = await WriteAsync(ConfigurationBlob, configuration, PersonalizerStateJsonContext.Default.PersonalizerConfiguration, null, cancellationToken);
        _configuration.Put(ConfigurationBlob, configuration, etag);
        return configuration;
    }

    public async Task<PersonalizerPolicy> GetPolicyAsync(CancellationToken cancellationToken = default) =>
        (await ReadAsync(PolicyBlob, PersonalizerStateJsonContext.Default.PersonalizerPolicy, cancellationToken)).Value ?? PersonalizerPolicy.Default;

    public Task SetPolicyAsync(PersonalizerPolicy policy, CancellationToken cancellationToken = default) =>
        WriteAsync(PolicyBlob, policy, PersonalizerStateJsonContext.Default.PersonalizerPolicy, null, cancellationToken);

    public async Task ResetPolicyAsync(CancellationToken cancellationToken = default) =>
        await container.GetBlobClient(PolicyBlob).DeleteIfExistsAsync(cancellationToken: cancellationToken);

    /// <summary>The model and the bandit it holds (a fresh one when none was learned yet), and the ETag to write it back with.</summary>
    /// <param name="cached">From memory (Rank); otherwise read from storage now, with the ETag a write-back needs.</param>
    public async Task<(ContextualBandit Bandit, PersonalizerModel Model, ETag ETag)> GetModelAsync(bool cached = false, CancellationToken cancellationToken = default)
    {
        if (!cached)
        {
            var (read, etag) = await ReadModelAsync(cancellationToken);
            _model.Put(ModelBlob, read, etag); // a read from storage is as fresh as the cache can be
            return (read!.Bandit, read.Model, etag);
        }
        var model = (await _model.GetAsync(ModelBlob, ReadModelAsync, cancellationToken))!;
        return (model.Bandit, model.Model, _model.Peek(ModelBlob)?.ETag ?? default);
    }

    private async Task<(LearnedModel? Value, ETag ETag)> ReadModelAsync(CancellationToken cancellationToken)
    {
        var (model, etag) = await ReadAsync(ModelBlob, PersonalizerStateJsonContext.Default.PersonalizerModel, cancellationToken);
        model ??= PersonalizerModel.Fresh(DateTimeOffset.UnixEpoch);
        return (new LearnedModel(ContextualBandit.Import(model.Weights), model), etag);
    }

    /// <summary>Writes the model if it is still the version read as <paramref name="readAs"/>; false when another writer got there first.</summary>
    public async Task<bool> TrySetModelAsync(PersonalizerModel model, ETag readAs, CancellationToken cancellationToken = default)
    {
        try
        {
            // No blob yet: only if there still is none.
            var conditions = readAs == default ? new BlobRequestConditions { IfNoneMatch = ETag.All } : new BlobRequestConditions { IfMatch = readAs };
            var etag = await WriteAsync(ModelBlob, model, PersonalizerStateJsonContext.Default.PersonalizerModel, conditions, cancellationToken);
            _model.Put(ModelBlob, new LearnedModel(ContextualBandit.Import(model.Weights), model), etag);
            return true;
        }
        catch (RequestFailedException ex) when (ex.Status is 409 or 412)
        {
            return false;
        }
    }

    /// <summary>DELETE model: a fresh model that learns only from ranks after now.</summary>
    public async Task ResetModelAsync(CancellationToken cancellationToken = default)
    {
        var fresh = PersonalizerModel.Fresh(_time.GetUtcNow());
        var etag = await WriteAsync(ModelBlob, fresh, PersonalizerStateJsonContext.Default.PersonalizerModel, null, cancellationToken);
        _model.Put(ModelBlob, new LearnedModel(ContextualBandit.Import(fresh.Weights), fresh), etag);
    }

    /// <summary>The learned model as ONNX (<see cref="BanditOnnxExport"/>), for <c>GET model</c>.</summary>
    public async Task<byte[]> ExportModelAsync(CancellationToken cancellationToken = default)
    {
        var (bandit, _, _) = await GetModelAsync(cancellationToken: cancellationToken);
        return BanditOnnxExport.Export(bandit);
    }

    private async Task<(T? Value, ETag ETag)> ReadAsync<T>(string name, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type, CancellationToken cancellationToken) where T : class
    {
        try
        {
            var content = await container.GetBlobClient(name).DownloadContentAsync(cancellationToken);
            return (JsonSerializer.Deserialize(content.Value.Content.ToMemory().Span, type), content.Value.Details.ETag);
        }
        catch (RequestFailedException ex) when (ex.Status == 404)
        {
            return (null, default);
        }
    }

    private async Task<ETag> WriteAsync<T>(string name, T value, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type, BlobRequestConditions? conditions, CancellationToken cancellationToken)
    {
        var written = await container.GetBlobClient(name).UploadAsync(BinaryData.FromBytes(JsonSerializer.SerializeToUtf8Bytes(value, type)),
            new BlobUploadOptions { Conditions = conditions, HttpHeaders = new BlobHttpHeaders { ContentType = "application/json" } }, cancellationToken);
        return written.Value.ETag;
    }
}

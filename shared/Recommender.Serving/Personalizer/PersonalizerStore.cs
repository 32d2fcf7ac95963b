using System.Text.Json;
using System.Text.Json.Serialization;
using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;

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
/// Reads are cached for <see cref="CacheFor"/>, so Rank does not wait on storage.
/// </summary>
public sealed class PersonalizerStore(BlobContainerClient container, TimeProvider? time = null)
{
    public const string ConfigurationBlob = "personalizer/configuration.json";
    public const string PolicyBlob = "personalizer/policy.json";
    public const string ModelBlob = "personalizer/model.json";
    public static readonly TimeSpan CacheFor = TimeSpan.FromSeconds(2);

    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private (PersonalizerConfiguration Value, DateTimeOffset ReadAt)? _configuration;
    private (ContextualBandit Bandit, PersonalizerModel Model, ETag ETag, DateTimeOffset ReadAt)? _model;

    public async Task<PersonalizerConfiguration> GetConfigurationAsync(bool cached = false, CancellationToken cancellationToken = default)
    {
        if (cached && _configuration is { } hit && _time.GetUtcNow() - hit.ReadAt < CacheFor)
            return hit.Value;
        var value = (await ReadAsync(ConfigurationBlob, PersonalizerStateJsonContext.Default.PersonalizerConfiguration, cancellationToken)).Value ?? new PersonalizerConfiguration();
        _configuration = (value, _time.GetUtcNow());
        return value;
    }

    /// <summary>Keeps <paramref name="configuration"/>, stamped with the time of the edit; returns what was kept.</summary>
    public async Task<PersonalizerConfiguration> SetConfigurationAsync(PersonalizerConfiguration configuration, CancellationToken cancellationToken = default)
    {
        configuration = configuration with { LastConfigurationEditDate = _time.GetUtcNow() };
        await WriteAsync(ConfigurationBlob, configuration, PersonalizerStateJsonContext.Default.PersonalizerConfiguration, null, cancellationToken);
        _configuration = null;
        return configuration;
    }

    public async Task<PersonalizerPolicy> GetPolicyAsync(CancellationToken cancellationToken = default) =>
        (await ReadAsync(PolicyBlob, PersonalizerStateJsonContext.Default.PersonalizerPolicy, cancellationToken)).Value ?? PersonalizerPolicy.Default;

    public Task SetPolicyAsync(PersonalizerPolicy policy, CancellationToken cancellationToken = default) =>
        WriteAsync(PolicyBlob, policy, PersonalizerStateJsonContext.Default.PersonalizerPolicy, null, cancellationToken);

    public async Task ResetPolicyAsync(CancellationToken cancellationToken = default) =>
        await container.GetBlobClient(PolicyBlob).DeleteIfExistsAsync(cancellationToken: cancellationToken);

    /// <summary>The model and the bandit it holds (a fresh one when none was learned yet), and the ETag to write it back with.</summary>
    public async Task<(ContextualBandit Bandit, PersonalizerModel Model, ETag ETag)> GetModelAsync(bool cached = false, CancellationToken cancellationToken = default)
    {
        if (cached && _model is { } hit && _time.GetUtcNow() - hit.ReadAt < CacheFor)
            return (hit.Bandit, hit.Model, hit.ETag);
        var (model, etag) = await ReadAsync(ModelBlob, PersonalizerStateJsonContext.Default.PersonalizerModel, cancellationToken);
        model ??= PersonalizerModel.Fresh(DateTimeOffset.UnixEpoch);
        var bandit = ContextualBandit.Import(model.Weights);
        _model = (bandit, model, etag, _time.GetUtcNow());
        return (bandit, model, etag);
    }

    /// <summary>Writes the model if it is still the version read as <paramref name="readAs"/>; false when another writer got there first.</summary>
    public async Task<bool> TrySetModelAsync(PersonalizerModel model, ETag readAs, CancellationToken cancellationToken = default)
    {
        try
        {
            // No blob yet: only if there still is none.
            var conditions = readAs == default ? new BlobRequestConditions { IfNoneMatch = ETag.All } : new BlobRequestConditions { IfMatch = readAs };
            await WriteAsync(ModelBlob, model, PersonalizerStateJsonContext.Default.PersonalizerModel, conditions, cancellationToken);
            _model = null;
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
        await WriteAsync(ModelBlob, PersonalizerModel.Fresh(_time.GetUtcNow()), PersonalizerStateJsonContext.Default.PersonalizerModel, null, cancellationToken);
        _model = null;
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

    private async Task WriteAsync<T>(string name, T value, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type, BlobRequestConditions? conditions, CancellationToken cancellationToken)
    {
        await container.GetBlobClient(name).UploadAsync(BinaryData.FromBytes(JsonSerializer.SerializeToUtf8Bytes(value, type)),
            new BlobUploadOptions { Conditions = conditions, HttpHeaders = new BlobHttpHeaders { ContentType = "application/json" } }, cancellationToken);
    }
}

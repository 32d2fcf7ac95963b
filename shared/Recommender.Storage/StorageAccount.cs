using Azure.Core;
using Azure.Core.Pipeline;
using Azure.Data.Tables;
using Azure.Identity;
using Azure.Storage.Blobs;

namespace Recommender.Storage;

/// <summary>
/// The clients of one storage account, from what configuration names it by: a connection string
/// (<c>UseDevelopmentStorage=true</c> for Azurite), or in Azure an account name or blob endpoint, reached
/// with a managed identity (no keys in settings).
/// </summary>
public sealed record StorageAccount(BlobServiceClient Blobs, TableServiceClient Tables)
{
    /// <param name="storage">A connection string, an account name (<c>mystorage</c>) or a blob endpoint (<c>https://mystorage.blob.core.windows.net</c>).</param>
    /// <param name="credential">For names and endpoints; <see cref="DefaultAzureCredential"/> (managed identity in Azure, with <c>AZURE_CLIENT_ID</c> for a user-assigned one) by default.</param>
    /// <param name="policy">A policy in every request's pipeline, per attempt (<see cref="InjectedStorageFaults"/>).</param>
    public static StorageAccount Connect(string storage, TokenCredential? credential = null, HttpPipelinePolicy? policy = null)
    {
        var blobOptions = new BlobClientOptions();
        var tableOptions = new TableClientOptions();
        ConfigureRetry(blobOptions.Retry);
        ConfigureRetry(tableOptions.Retry);
        if (policy is not null)
        {
            blobOptions.AddPolicy(policy, HttpPipelinePosition.PerRetry);
            tableOptions.AddPolicy(policy, HttpPipelinePosition.PerRetry);
        }
        if (storage.Contains('=', StringComparison.Ordinal))
            return new StorageAccount(new BlobServiceClient(storage, blobOptions), new TableServiceClient(storage, tableOptions));
        var blobEndpoint = storage.StartsWith("https://", StringComparison.OrdinalIgnoreCase)
            ? new Uri(storage)
            : new Uri($"https://{storage}.blob.core.windows.net");
        var tableEndpoint = new Uri(blobEndpoint.AbsoluteUri.Replace(".blob.", ".table.", StringComparison.OrdinalIgnoreCase));
        credential ??= new DefaultAzureCredential();
        return new StorageAccount(new BlobServiceClient(blobEndpoint, credential, blobOptions), new TableServiceClient(tableEndpoint, credential, tableOptions));
    }

    /// <summary>
    /// Retries that span about 20 seconds (0.5 s doubling to at most 8 s, six times), where the SDK's default gives up after
    /// about 5: a storage blip (a failover, throttling) then delays a request instead of failing it, and a failure that
    /// outlives them is answered 503 with Retry-After (StorageUnavailable in the Functions app).
    /// </summary>
    private static void ConfigureRetry(RetryOptions retry)
    {
        retry.Mode = RetryMode.Exponential;
        retry.MaxRetries = 6;
        retry.Delay = TimeSpan.FromMilliseconds(500);
        retry.MaxDelay = TimeSpan.FromSeconds(8);
    }

    /// <summary>
    /// The Functions host's own storage setting: <c>AzureWebJobsStorage</c> (a connection string) or, with
    /// identity-based connections, <c>AzureWebJobsStorage__accountName</c>.
    /// </summary>
    public static string FromFunctionsSetting(Func<string, string?> setting) =>
        setting("AzureWebJobsStorage") ?? setting("AzureWebJobsStorage:accountName") ?? setting("AzureWebJobsStorage__accountName")
        ?? throw new InvalidOperationException("neither AzureWebJobsStorage nor AzureWebJobsStorage__accountName is set");
}

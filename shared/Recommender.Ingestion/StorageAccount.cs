using Azure.Core;
using Azure.Data.Tables;
using Azure.Identity;
using Azure.Storage.Blobs;

namespace Recommender.Ingestion;

/// <summary>
/// The clients of one storage account, from what configuration names it by: a connection string
/// (<c>UseDevelopmentStorage=true</c> for Azurite), or in Azure an account name or blob endpoint, reached
/// with a managed identity (no keys in settings).
/// </summary>
public sealed record StorageAccount(BlobServiceClient Blobs, TableServiceClient Tables)
{
    /// <param name="storage">A connection string, an account name (<c>mystorage</c>) or a blob endpoint (<c>https://mystorage.blob.core.windows.net</c>).</param>
    /// <param name="credential">For names and endpoints; <see cref="DefaultAzureCredential"/> (managed identity in Azure, with <c>AZURE_CLIENT_ID</c> for a user-assigned one) by default.</param>
    public static StorageAccount Connect(string storage, TokenCredential? credential = null)
    {
        if (storage.Contains('=', StringComparison.Ordinal))
            return new StorageAccount(new BlobServiceClient(storage), new TableServiceClient(storage));
        var blobEndpoint = storage.StartsWith("https://", StringComparison.OrdinalIgnoreCase)
            ? new Uri(storage)
            : new Uri($"https://{storage}.blob.core.windows.net");
        var tableEndpoint = new Uri(blobEndpoint.AbsoluteUri.Replace(".blob.", ".table.", StringComparison.OrdinalIgnoreCase));
        credential ??= new DefaultAzureCredential();
        return new StorageAccount(new BlobServiceClient(blobEndpoint, credential), new TableServiceClient(tableEndpoint, credential));
    }

    /// <summary>
    /// The Functions host's own storage setting: <c>AzureWebJobsStorage</c> (a connection string) or, with
    /// identity-based connections, <c>AzureWebJobsStorage__accountName</c>.
    /// </summary>
    public static string FromFunctionsSetting(Func<string, string?> setting) =>
        setting("AzureWebJobsStorage") ?? setting("AzureWebJobsStorage:accountName") ?? setting("AzureWebJobsStorage__accountName")
        ?? throw new InvalidOperationException("neither AzureWebJobsStorage nor AzureWebJobsStorage__accountName is set");
}

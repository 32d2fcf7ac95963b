using Recommender.Ingestion;
using Recommender.Serving;
using Recommender.Storage;
using Recommender.TestSupport;

namespace Recommender.Functions.Tests;

/// <summary>Serving over Azurite with a model container and rank-event table of its own.</summary>
internal static class ServingFixture
{
    public static async Task<ServingServices> CreateAsync(IngestionServices ingestion, RecommendationOptions? recommendation = null, TimeProvider? time = null,
        UserDataPurgeOptions? purge = null)
    {
        var id = Guid.NewGuid().ToString("N")[..12];
        var serving = new ServingServices(ingestion,
            new Azure.Storage.Blobs.BlobContainerClient(Azurite.ConnectionString, "models-" + id),
            new Azure.Data.Tables.TableClient(Azurite.ConnectionString, "RankEvents" + id),
            recommendation, time, purge: purge);
        await serving.EnsureCreatedAsync();
        return serving;
    }
}

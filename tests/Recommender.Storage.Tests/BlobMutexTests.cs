using Azure.Storage.Blobs;
using Recommender.Storage;
using Recommender.TestSupport;

namespace Recommender.Storage.Tests;

/// <summary>The lock across instances (a blob lease), against Azurite.</summary>
public sealed class BlobMutexTests
{
    [Fact]
    public async Task A_holder_keeps_the_lock_past_the_lease_duration_and_the_next_gets_it_once_released()
    {
        var container = new BlobServiceClient(Azurite.ConnectionString).GetBlobContainerClient("locks-" + Guid.NewGuid().ToString("N")[..12]);
        await container.CreateIfNotExistsAsync();

        var first = await BlobMutex.AcquireAsync(container, "locks/job", TimeSpan.FromSeconds(1));
        await Task.Delay(BlobMutex.LeaseDuration + TimeSpan.FromSeconds(3)); // an unrenewed lease would have expired by now

        await Assert.ThrowsAsync<TimeoutException>(() => BlobMutex.AcquireAsync(container, "locks/job", TimeSpan.FromMilliseconds(500)));
        var waiting = BlobMutex.AcquireAsync(container, "locks/job", TimeSpan.FromSeconds(10));
        await first.DisposeAsync();
        await using var second = await waiting;
    }
}

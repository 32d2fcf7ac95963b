using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Specialized;

namespace Recommender.Storage;

/// <summary>
/// A lock held across processes and instances: the lease of a small blob. Whoever holds the lease runs the guarded
/// step; the others wait for it. The holder renews the lease while it holds it (a purge takes minutes), and one that
/// dies frees the lock when the lease expires.
/// </summary>
public sealed class BlobMutex : IAsyncDisposable
{
    /// <summary>The shortest lease Blob Storage grants: a holder that crashed blocks the others this long at most.</summary>
    public static readonly TimeSpan LeaseDuration = TimeSpan.FromSeconds(15);
    private static readonly TimeSpan RetryDelay = TimeSpan.FromMilliseconds(100);

    private readonly BlobLeaseClient _lease;
    private readonly CancellationTokenSource _held = new();
    private readonly Task _renewing;

    private BlobMutex(BlobLeaseClient lease)
    {
        _lease = lease;
        _renewing = RenewAsync(_held.Token);
    }

    private async Task RenewAsync(CancellationToken held)
    {
        try
        {
            while (true)
            {
                await Task.Delay(LeaseDuration / 3, held);
                await _lease.RenewAsync(cancellationToken: held);
            }
        }
        catch (OperationCanceledException)
        {
            // Released.
        }
        catch (Exception) when (!held.IsCancellationRequested)
        {
            // Storage unreachable past the lease: the lock may pass to another; the guarded steps are conditional writes.
        }
    }

    /// <summary>Takes the lock named <paramref name="name"/> in <paramref name="container"/>, waiting up to <paramref name="wait"/> for its holder.</summary>
    /// <exception cref="TimeoutException">Another holder kept it longer than <paramref name="wait"/>.</exception>
    public static async Task<BlobMutex> AcquireAsync(BlobContainerClient container, string name, TimeSpan wait, CancellationToken cancellationToken = default)
    {
        var blob = container.GetBlobClient(name);
        await blob.UploadIfAbsentAsync(BinaryData.FromString(""), cancellationToken: cancellationToken);
        var lease = blob.GetBlobLeaseClient();
        var deadline = DateTimeOffset.UtcNow + wait;
        while (true)
        {
            try
            {
                await lease.AcquireAsync(LeaseDuration, cancellationToken: cancellationToken);
                return new BlobMutex(lease);
            }
            catch (RequestFailedException ex) when (ex.Status == 409 && DateTimeOffset.UtcNow < deadline)
            {
                await Task.Delay(RetryDelay, cancellationToken);
            }
            catch (RequestFailedException ex) when (ex.Status == 409)
            {
                throw new TimeoutException($"the lock {container.Name}/{name} was held for more than {wait}", ex);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _held.CancelAsync();
        await _renewing;
        _held.Dispose();
        try
        {
            await _lease.ReleaseAsync();
        }
        catch (RequestFailedException)
        {
            // Expired and perhaps taken by another: nothing of ours to release.
        }
    }
}

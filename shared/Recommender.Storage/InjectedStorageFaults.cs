using Azure;
using Azure.Core;
using Azure.Core.Pipeline;

namespace Recommender.Storage;

/// <summary>
/// Storage faults on demand, in the SDK pipeline of every blob and table client (each attempt, below the SDK's
/// retries): an outage, in which every request fails as an unreachable account fails, and added latency. Off unless a
/// host is started with <c>Storage:FaultInjection=true</c> (the soak benchmark's local host); what it injected is counted.
/// </summary>
public sealed class InjectedStorageFaults : HttpPipelinePolicy
{
    private long _outageUntil;
    private long _latencyUntil;
    private int _latencyMilliseconds;
    private long _failedRequests;
    private long _delayedRequests;

    public long FailedRequests => Interlocked.Read(ref _failedRequests);
    public long DelayedRequests => Interlocked.Read(ref _delayedRequests);

    /// <summary>Every storage request fails for <paramref name="duration"/> from now.</summary>
    public void StartOutage(TimeSpan duration) => Interlocked.Exchange(ref _outageUntil, Environment.TickCount64 + (long)duration.TotalMilliseconds);

    /// <summary>Every storage request waits <paramref name="latency"/> first, for <paramref name="duration"/> from now.</summary>
    public void AddLatency(TimeSpan latency, TimeSpan duration)
    {
        Volatile.Write(ref _latencyMilliseconds, (int)latency.TotalMilliseconds);
        Interlocked.Exchange(ref _latencyUntil, Environment.TickCount64 + (long)duration.TotalMilliseconds);
    }

    public override void Process(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline) =>
        ProcessAsync(message, pipeline).AsTask().GetAwaiter().GetResult();

    public override async ValueTask ProcessAsync(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline)
    {
        var now = Environment.TickCount64;
        if (now < Interlocked.Read(ref _latencyUntil))
        {
            Interlocked.Increment(ref _delayedRequests);
            await Task.Delay(Volatile.Read(ref _latencyMilliseconds), message.CancellationToken);
        }
        if (now < Interlocked.Read(ref _outageUntil))
        {
            Interlocked.Increment(ref _failedRequests);
            throw new RequestFailedException(0, "storage unreachable (injected outage)");
        }
        await ProcessNextAsync(message, pipeline);
    }
}

using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Azure.Functions.Worker;
using Recommender.Ingestion;

namespace Recommender.Functions;

/// <summary><c>POST /api/events</c>: a JSON array of events -> 202 with accepted and rejected counts.</summary>
public sealed class IngestEventsOverHttp(EventIngestor ingestor)
{
    private static readonly HttpIngestLimits Limits = HttpIngestLimits.Default;

    [Function(nameof(IngestEventsOverHttp))]
    public async Task<IActionResult> Run(
        [HttpTrigger(AuthorizationLevel.Function, "post", Route = "api/events")] HttpRequest request,
        CancellationToken cancellationToken)
    {
        if (request.ContentLength > Limits.MaxBodyBytes)
            return TooLarge();
        var body = await HttpEventBatch.ReadBoundedAsync(request.Body, Limits.MaxBodyBytes, cancellationToken);
        if (body is null)
            return TooLarge();
        if (!HttpEventBatch.TrySplit(body, Limits.MaxEvents, out var events, out var error, out var refused))
        {
            return refused == HttpBatchError.TooManyEvents
                ? ProblemResults.Create(StatusCodes.Status413PayloadTooLarge, "Too many events", error!)
                : ProblemResults.Create(StatusCodes.Status400BadRequest, "Malformed request body", error!);
        }

        var result = await ingestor.IngestHttpAsync(events, body, cancellationToken);
        return new ObjectResult(new IngestResponse(result.Accepted, result.Rejected.Count, result.AlreadyIngested,
            result.Rejected.Select(r => new RejectedEvent(r.Index, r.Reason)).ToList()))
        { StatusCode = StatusCodes.Status202Accepted };
    }

    private static ObjectResult TooLarge() => ProblemResults.Create(StatusCodes.Status413PayloadTooLarge, "Request body too large",
        $"the body is limited to {Limits.MaxBodyBytes} bytes and {Limits.MaxEvents} events");
}

/// <summary>The body of a 202 from <c>POST /api/events</c>.</summary>
public sealed record IngestResponse(int Accepted, int Rejected, int Duplicates, IReadOnlyList<RejectedEvent> Errors);

/// <summary>One refused event: its index in the posted array and why.</summary>
public sealed record RejectedEvent(int Index, string Reason);

using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Azure.Functions.Worker;
using Recommender.Ingestion;
using Recommender.Serving;

namespace Recommender.Functions;

/// <summary>
/// Azure AI Personalizer's Rank, Reward and Activate, on its own paths (<c>personalizer/v1.0/...</c>, so a
/// Personalizer client only changes its endpoint) and on the product's (<c>api/...</c>). host.json sets an
/// empty route prefix so both can exist.
/// </summary>
public sealed class PersonalizerApi(PersonalizerService personalizer)
{
    private const int MaxBodyBytes = 256 * 1024;

    [Function("Rank")]
    public Task<IActionResult> Rank([HttpTrigger(AuthorizationLevel.Function, "post", Route = "api/rank")] HttpRequest request, CancellationToken ct) => RankCore(request, ct);

    [Function("PersonalizerRank")]
    public Task<IActionResult> PersonalizerRank([HttpTrigger(AuthorizationLevel.Function, "post", Route = "personalizer/v1.0/rank")] HttpRequest request, CancellationToken ct) => RankCore(request, ct);

    [Function("Reward")]
    public Task<IActionResult> Reward([HttpTrigger(AuthorizationLevel.Function, "post", Route = "api/events/{eventId}/reward")] HttpRequest request, string eventId, CancellationToken ct) => RewardCore(request, eventId, ct);

    [Function("PersonalizerReward")]
    public Task<IActionResult> PersonalizerReward([HttpTrigger(AuthorizationLevel.Function, "post", Route = "personalizer/v1.0/events/{eventId}/reward")] HttpRequest request, string eventId, CancellationToken ct) => RewardCore(request, eventId, ct);

    [Function("Activate")]
    public Task<IActionResult> Activate([HttpTrigger(AuthorizationLevel.Function, "post", Route = "api/events/{eventId}/activate")] HttpRequest request, string eventId, CancellationToken ct) => ActivateCore(eventId, ct);

    [Function("PersonalizerActivate")]
    public Task<IActionResult> PersonalizerActivate([HttpTrigger(AuthorizationLevel.Function, "post", Route = "personalizer/v1.0/events/{eventId}/activate")] HttpRequest request, string eventId, CancellationToken ct) => ActivateCore(eventId, ct);

    private async Task<IActionResult> RankCore(HttpRequest request, CancellationToken ct)
    {
        var body = await ReadAsync<RankRequest>(request, ct);
        if (body.Error is not null)
            return body.Error;
        return await Map(async () => new OkObjectResult(await personalizer.RankAsync(body.Value!, ct)) as IActionResult);
    }

    private async Task<IActionResult> RewardCore(HttpRequest request, string eventId, CancellationToken ct)
    {
        var body = await ReadAsync<RewardRequest>(request, ct);
        if (body.Error is not null)
            return body.Error;
        return await Map(async () =>
        {
            await personalizer.RewardAsync(eventId, body.Value!, ct);
            return new StatusCodeResult(StatusCodes.Status204NoContent);
        });
    }

    private Task<IActionResult> ActivateCore(string eventId, CancellationToken ct) => Map(async () =>
    {
        await personalizer.ActivateAsync(eventId, ct);
        return new StatusCodeResult(StatusCodes.Status204NoContent);
    });

    private static async Task<IActionResult> Map(Func<Task<IActionResult>> call)
    {
        try
        {
            return await call();
        }
        catch (InvalidRankRequestException ex)
        {
            return ProblemResults.Create(StatusCodes.Status400BadRequest, "Invalid request", ex.Message);
        }
        catch (UnknownEventException ex)
        {
            return ProblemResults.Create(StatusCodes.Status404NotFound, "Unknown event", ex.Message);
        }
        catch (NoModelException ex)
        {
            return ProblemResults.Create(StatusCodes.Status503ServiceUnavailable, "No model yet", ex.Message);
        }
    }

    private static async Task<(T? Value, IActionResult? Error)> ReadAsync<T>(HttpRequest request, CancellationToken ct) where T : class
    {
        var bytes = await HttpEventBatch.ReadBoundedAsync(request.Body, MaxBodyBytes, ct);
        if (bytes is null)
            return (null, ProblemResults.Create(StatusCodes.Status413PayloadTooLarge, "Request body too large", $"the body is limited to {MaxBodyBytes} bytes"));
        try
        {
            var typeInfo = (System.Text.Json.Serialization.Metadata.JsonTypeInfo<T>)PersonalizerJsonContext.Default.GetTypeInfo(typeof(T))!;
            var value = JsonSerializer.Deserialize(bytes, typeInfo);
            return value is null
                ? (null, ProblemResults.Create(StatusCodes.Status400BadRequest, "Malformed request body", "the body must be a JSON object"))
                : (value, null);
        }
        catch (JsonException ex)
        {
            return (null, ProblemResults.Create(StatusCodes.Status400BadRequest, "Malformed request body", ex.Message.Split('.')[0]));
        }
    }
}

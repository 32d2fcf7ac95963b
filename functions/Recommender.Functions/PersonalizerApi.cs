using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Azure.Functions.Worker;
using Recommender.Ingestion;
using Recommender.Serving;

namespace Recommender.Functions;

/// <summary>
/// Azure AI Personalizer's API on its own paths (<c>personalizer/v1.0/...</c>, so a Personalizer client only changes
/// its endpoint), with the spec's status codes and its error body (<c>{"error": {"code", "message"}}</c>); Rank, Reward
/// and Activate also on the product's paths (<c>api/...</c>), with RFC 7807 problems like the rest of the product.
/// host.json sets an empty route prefix so both can exist. The Personalizer paths are anonymous to the Functions host
/// (a Personalizer client sends no function key) and check <c>Ocp-Apim-Subscription-Key</c> themselves
/// (<see cref="SubscriptionKeys"/>); the product's paths keep the host's function keys.
/// </summary>
public sealed class PersonalizerApi(PersonalizerService personalizer, PersonalizerLog log, PersonalizerEvaluations evaluations, PersonalizerLearningMetrics learningMetrics, SubscriptionKeys keys)
{
    private const int MaxBodyBytes = 256 * 1024;
    private const string Base = "personalizer/v1.0/";
    /// <summary>The multi-slot operations exist only in v1.1-preview.1, on its base path.</summary>
    private const string PreviewBase = "personalizer/v1.1-preview.1/";
    private PersonalizerStore Store => personalizer.Store;

    [Function("Rank")]
    public Task<IActionResult> Rank([HttpTrigger(AuthorizationLevel.Function, "post", Route = "api/rank")] HttpRequest request, CancellationToken ct) => RankCore(request, Errors.Problem, ct);

    [Function("PersonalizerRank")]
    public async Task<IActionResult> PersonalizerRank([HttpTrigger(AuthorizationLevel.Anonymous, "post", Route = Base + "rank")] HttpRequest request, CancellationToken ct)
    {
        if (Unauthorized(request) is { } denied)
            return denied;
        return await RankCore(request, Errors.Personalizer, ct);
    }

    [Function("Reward")]
    public Task<IActionResult> Reward([HttpTrigger(AuthorizationLevel.Function, "post", Route = "api/events/{eventId}/reward")] HttpRequest request, string eventId, CancellationToken ct) => RewardCore(request, eventId, Errors.Problem, ct);

    [Function("PersonalizerReward")]
    public async Task<IActionResult> PersonalizerReward([HttpTrigger(AuthorizationLevel.Anonymous, "post", Route = Base + "events/{eventId}/reward")] HttpRequest request, string eventId, CancellationToken ct)
    {
        if (Unauthorized(request) is { } denied)
            return denied;
        return await RewardCore(request, eventId, Errors.Personalizer, ct);
    }

    [Function("Activate")]
    public Task<IActionResult> Activate([HttpTrigger(AuthorizationLevel.Function, "post", Route = "api/events/{eventId}/activate")] HttpRequest request, string eventId, CancellationToken ct) => ActivateCore(eventId, Errors.Problem, ct);

    [Function("PersonalizerActivate")]
    public async Task<IActionResult> PersonalizerActivate([HttpTrigger(AuthorizationLevel.Anonymous, "post", Route = Base + "events/{eventId}/activate")] HttpRequest request, string eventId, CancellationToken ct)
    {
        if (Unauthorized(request) is { } denied)
            return denied;
        return await ActivateCore(eventId, Errors.Personalizer, ct);
    }

    [Function("PersonalizerGetServiceConfiguration")]
    public async Task<IActionResult> GetServiceConfiguration([HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = Base + "configurations/service")] HttpRequest request, CancellationToken ct)
    {
        if (Unauthorized(request) is { } denied)
            return denied;
        return Json(await Store.GetConfigurationAsync(cancellationToken: ct), PersonalizerStateJsonContext.Default.PersonalizerConfiguration);
    }

    [Function("PersonalizerUpdateServiceConfiguration")]
    public async Task<IActionResult> UpdateServiceConfiguration([HttpTrigger(AuthorizationLevel.Anonymous, "put", Route = Base + "configurations/service")] HttpRequest request, CancellationToken ct)
    {
        if (Unauthorized(request) is { } denied)
            return denied;
        var (configuration, error) = await ReadAsync(request, PersonalizerStateJsonContext.Default.PersonalizerConfiguration, Errors.Personalizer, ct);
        if (error is not null)
            return error;
        if (configuration!.Validate() is { } invalid)
            return Errors.Personalizer(StatusCodes.Status400BadRequest, invalid);
        return Json(await Store.SetConfigurationAsync(configuration, ct), PersonalizerStateJsonContext.Default.PersonalizerConfiguration);
    }

    [Function("PersonalizerGetPolicy")]
    public async Task<IActionResult> GetPolicy([HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = Base + "configurations/policy")] HttpRequest request, CancellationToken ct)
    {
        if (Unauthorized(request) is { } denied)
            return denied;
        return Json(await Store.GetPolicyAsync(ct), PersonalizerStateJsonContext.Default.PersonalizerPolicy);
    }

    [Function("PersonalizerUpdatePolicy")]
    public async Task<IActionResult> UpdatePolicy([HttpTrigger(AuthorizationLevel.Anonymous, "put", Route = Base + "configurations/policy")] HttpRequest request, CancellationToken ct)
    {
        if (Unauthorized(request) is { } denied)
            return denied;
        var (policy, error) = await ReadAsync(request, PersonalizerStateJsonContext.Default.PersonalizerPolicy, Errors.Personalizer, ct);
        if (error is not null)
            return error;
        if (policy!.Validate() is { } invalid)
            return Errors.Personalizer(StatusCodes.Status400BadRequest, invalid);
        await Store.SetPolicyAsync(policy, ct);
        return Json(policy, PersonalizerStateJsonContext.Default.PersonalizerPolicy);
    }

    [Function("PersonalizerResetPolicy")]
    public async Task<IActionResult> ResetPolicy([HttpTrigger(AuthorizationLevel.Anonymous, "delete", Route = Base + "configurations/policy")] HttpRequest request, CancellationToken ct)
    {
        if (Unauthorized(request) is { } denied)
            return denied;
        await Store.ResetPolicyAsync(ct);
        return Json(await Store.GetPolicyAsync(ct), PersonalizerStateJsonContext.Default.PersonalizerPolicy);
    }

    /// <summary>The learned model as an ONNX graph (<see cref="BanditOnnxExport"/>), the spec's <c>application/octet-stream</c>.</summary>
    [Function("PersonalizerGetModel")]
    public async Task<IActionResult> GetModel([HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = Base + "model")] HttpRequest request, CancellationToken ct)
    {
        if (Unauthorized(request) is { } denied)
            return denied;
        return new FileContentResult(await Store.ExportModelAsync(ct), "application/octet-stream");
    }

    [Function("PersonalizerResetModel")]
    public async Task<IActionResult> ResetModel([HttpTrigger(AuthorizationLevel.Anonymous, "delete", Route = Base + "model")] HttpRequest request, CancellationToken ct)
    {
        if (Unauthorized(request) is { } denied)
            return denied;
        await Store.ResetModelAsync(ct);
        return new StatusCodeResult(StatusCodes.Status204NoContent);
    }

    [Function("PersonalizerGetModelProperties")]
    public async Task<IActionResult> GetModelProperties([HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = Base + "model/properties")] HttpRequest request, CancellationToken ct)
    {
        if (Unauthorized(request) is { } denied)
            return denied;
        var (_, model, _) = await Store.GetModelAsync(cancellationToken: ct);
        return Json(new ModelProperties(model.CreatedAt, model.LastModifiedAt), PersonalizerApiJsonContext.Default.ModelProperties);
    }

    [Function("PersonalizerGetLogProperties")]
    public async Task<IActionResult> GetLogProperties([HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = Base + "logs/properties")] HttpRequest request, CancellationToken ct)
    {
        if (Unauthorized(request) is { } denied)
            return denied;
        var (from, to) = await log.DateRangeAsync(ct);
        return Json(new LogsProperties(new DateRange(from, to)), PersonalizerApiJsonContext.Default.LogsProperties);
    }

    [Function("PersonalizerDeleteLogs")]
    public async Task<IActionResult> DeleteLogs([HttpTrigger(AuthorizationLevel.Anonymous, "delete", Route = Base + "logs")] HttpRequest request, CancellationToken ct)
    {
        if (Unauthorized(request) is { } denied)
            return denied;
        await log.DeleteAllAsync(ct);
        return new StatusCodeResult(StatusCodes.Status204NoContent);
    }

    [Function("PersonalizerCreateEvaluation")]
    public async Task<IActionResult> CreateEvaluation([HttpTrigger(AuthorizationLevel.Anonymous, "post", Route = Base + "evaluations")] HttpRequest request, CancellationToken ct)
    {
        if (Unauthorized(request) is { } denied)
            return denied;
        var (body, error) = await ReadAsync(request, PersonalizerEvaluationJsonContext.Default.EvaluationRequest, Errors.Personalizer, ct);
        if (error is not null)
            return error;
        if (PersonalizerEvaluations.Validate(body!) is { } invalid)
            return Errors.Personalizer(StatusCodes.Status400BadRequest, invalid);
        var evaluation = await evaluations.CreateAsync(body!, ct);
        request.HttpContext.Response.Headers.Location = $"{request.Scheme}://{request.Host}/{Base}evaluations/{evaluation.Id}";
        return Json(evaluation, PersonalizerEvaluationJsonContext.Default.Evaluation, StatusCodes.Status201Created);
    }

    [Function("PersonalizerGetEvaluation")]
    public async Task<IActionResult> GetEvaluation([HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = Base + "evaluations/{evaluationId}")] HttpRequest request, string evaluationId, CancellationToken ct)
    {
        if (Unauthorized(request) is { } denied)
            return denied;
        return await evaluations.GetAsync(evaluationId, ct) is { } evaluation
            ? Json(evaluation, PersonalizerEvaluationJsonContext.Default.Evaluation)
            : Errors.Personalizer(StatusCodes.Status404NotFound, $"evaluation {evaluationId} not found");
    }

    [Function("PersonalizerListEvaluations")]
    public async Task<IActionResult> ListEvaluations([HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = Base + "evaluations")] HttpRequest request, CancellationToken ct)
    {
        if (Unauthorized(request) is { } denied)
            return denied;
        return Json(await evaluations.ListAsync(ct), PersonalizerEvaluationJsonContext.Default.ListEvaluation);
    }

    [Function("PersonalizerDeleteEvaluation")]
    public async Task<IActionResult> DeleteEvaluation([HttpTrigger(AuthorizationLevel.Anonymous, "delete", Route = Base + "evaluations/{evaluationId}")] HttpRequest request, string evaluationId, CancellationToken ct)
    {
        if (Unauthorized(request) is { } denied)
            return denied;
        await evaluations.DeleteAsync(evaluationId, ct);
        return new StatusCodeResult(StatusCodes.Status204NoContent);
    }

    [Function("PersonalizerMultiSlotRank")]
    public async Task<IActionResult> MultiSlotRank([HttpTrigger(AuthorizationLevel.Anonymous, "post", Route = PreviewBase + "multislot/rank")] HttpRequest request, CancellationToken ct)
    {
        if (Unauthorized(request) is { } denied)
            return denied;
        var (body, invalid) = await ReadAsync(request, PersonalizerMultiSlotJsonContext.Default.MultiSlotRankRequest, Errors.Personalizer, ct);
        if (invalid is not null)
            return invalid;
        return await Map(async () => Json(await personalizer.RankMultiSlotAsync(body!, ct), PersonalizerMultiSlotJsonContext.Default.MultiSlotRankResponse, StatusCodes.Status201Created), Errors.Personalizer);
    }

    [Function("PersonalizerMultiSlotReward")]
    public async Task<IActionResult> MultiSlotReward([HttpTrigger(AuthorizationLevel.Anonymous, "post", Route = PreviewBase + "multislot/events/{eventId}/reward")] HttpRequest request, string eventId, CancellationToken ct)
    {
        if (Unauthorized(request) is { } denied)
            return denied;
        var (body, invalid) = await ReadAsync(request, PersonalizerMultiSlotJsonContext.Default.MultiSlotRewardRequest, Errors.Personalizer, ct);
        if (invalid is not null)
            return invalid;
        return await Map(async () =>
        {
            await personalizer.RewardMultiSlotAsync(eventId, body!, ct);
            return new StatusCodeResult(StatusCodes.Status204NoContent);
        }, Errors.Personalizer);
    }

    [Function("PersonalizerMultiSlotActivate")]
    public async Task<IActionResult> MultiSlotActivate([HttpTrigger(AuthorizationLevel.Anonymous, "post", Route = PreviewBase + "multislot/events/{eventId}/activate")] HttpRequest request, string eventId, CancellationToken ct)
    {
        if (Unauthorized(request) is { } denied)
            return denied;
        return await Map(async () =>
        {
            await personalizer.ActivateMultiSlotAsync(eventId, ct);
            return new StatusCodeResult(StatusCodes.Status204NoContent);
        }, Errors.Personalizer);
    }

    [Function("PersonalizerGetLearningMetrics")]
    public async Task<IActionResult> GetLearningMetrics([HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = Base + "metrics/learning")] HttpRequest request, CancellationToken ct)
    {
        if (Unauthorized(request) is { } denied)
            return denied;
        var q = request.Query;
        var (query, invalid) = LearningMetricsQuery.Parse(q["StartDate"].FirstOrDefault(), q["EndDate"].FirstOrDefault(), q["AggregationInterval"].FirstOrDefault(),
            q["NumberOfRecentEvents"].FirstOrDefault(), q["AggregationEventCount"].FirstOrDefault());
        if (invalid is not null)
            return Errors.Personalizer(StatusCodes.Status400BadRequest, invalid);
        return Json(await learningMetrics.GetAsync(query!, ct), PersonalizerMetricsJsonContext.Default.ListListLearningMetric);
    }

    /// <summary>A Personalizer path's key check: 401 in the spec's error shape unless <see cref="SubscriptionKeys"/> allows the request's key.</summary>
    private IActionResult? Unauthorized(HttpRequest request) =>
        keys.Allows(request.Headers[SubscriptionKeys.Header].FirstOrDefault()) ? null
        : Errors.Personalizer(StatusCodes.Status401Unauthorized, $"access denied: a valid key is required in the {SubscriptionKeys.Header} header");

    private async Task<IActionResult> RankCore(HttpRequest request, ErrorResult error, CancellationToken ct)
    {
        var (body, invalid) = await ReadAsync(request, PersonalizerJsonContext.Default.RankRequest, error, ct);
        if (invalid is not null)
            return invalid;
        return await Map(async () => new ObjectResult(await personalizer.RankAsync(body!, ct)) { StatusCode = StatusCodes.Status201Created }, error);
    }

    private async Task<IActionResult> RewardCore(HttpRequest request, string eventId, ErrorResult error, CancellationToken ct)
    {
        var (body, invalid) = await ReadAsync(request, PersonalizerJsonContext.Default.RewardRequest, error, ct);
        if (invalid is not null)
            return invalid;
        return await Map(async () =>
        {
            await personalizer.RewardAsync(eventId, body!, ct);
            return new StatusCodeResult(StatusCodes.Status204NoContent);
        }, error);
    }

    private Task<IActionResult> ActivateCore(string eventId, ErrorResult error, CancellationToken ct) => Map(async () =>
    {
        await personalizer.ActivateAsync(eventId, ct);
        return new StatusCodeResult(StatusCodes.Status204NoContent);
    }, error);

    private static async Task<IActionResult> Map(Func<Task<IActionResult>> call, ErrorResult error)
    {
        try
        {
            return await call();
        }
        catch (InvalidRankRequestException ex)
        {
            return error(StatusCodes.Status400BadRequest, ex.Message);
        }
        catch (UnknownEventException ex)
        {
            return error(StatusCodes.Status404NotFound, ex.Message);
        }
    }

    private static async Task<(T? Value, IActionResult? Error)> ReadAsync<T>(HttpRequest request, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type, ErrorResult error, CancellationToken ct) where T : class
    {
        var bytes = await HttpEventBatch.ReadBoundedAsync(request.Body, MaxBodyBytes, ct);
        if (bytes is null)
            return (null, error(StatusCodes.Status413PayloadTooLarge, $"the body is limited to {MaxBodyBytes} bytes"));
        try
        {
            var value = JsonSerializer.Deserialize(bytes, type);
            return value is null ? (null, error(StatusCodes.Status400BadRequest, "the body must be a JSON object")) : (value, null);
        }
        catch (JsonException ex)
        {
            return (null, error(StatusCodes.Status400BadRequest, ex.Message.Split('.')[0]));
        }
    }

    private static ContentResult Json<T>(T value, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type, int status = StatusCodes.Status200OK) =>
        new() { Content = JsonSerializer.Serialize(value, type), ContentType = "application/json", StatusCode = status };

    private delegate IActionResult ErrorResult(int status, string message);

    private static class Errors
    {
        public static IActionResult Problem(int status, string message) => ProblemResults.Create(status, status switch
        {
            StatusCodes.Status404NotFound => "Unknown event",
            StatusCodes.Status413PayloadTooLarge => "Request body too large",
            _ => "Invalid request",
        }, message);

        /// <summary>The spec's <c>ErrorResponse</c>: its codes are BadRequest, ResourceNotFound and InternalServerError (an open enum: a refused key is Unauthorized).</summary>
        public static IActionResult Personalizer(int status, string message) =>
            new ObjectResult(new PersonalizerErrorResponse(new PersonalizerError(status switch
            {
                StatusCodes.Status404NotFound => "ResourceNotFound",
                StatusCodes.Status401Unauthorized => "Unauthorized",
                _ => "BadRequest",
            }, message)))
            {
                StatusCode = status,
                ContentTypes = { "application/json" },
            };
    }
}

public sealed record PersonalizerError(string Code, string Message);

public sealed record PersonalizerErrorResponse(PersonalizerError Error);

public sealed record ModelProperties(DateTimeOffset CreationTime, DateTimeOffset LastModifiedTime);

public sealed record DateRange(DateTimeOffset? From, DateTimeOffset? To);

public sealed record LogsProperties(DateRange DateRange);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(ModelProperties))]
[JsonSerializable(typeof(LogsProperties))]
[JsonSerializable(typeof(PersonalizerErrorResponse))]
public sealed partial class PersonalizerApiJsonContext : JsonSerializerContext;

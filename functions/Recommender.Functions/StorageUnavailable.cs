using System.Text.Json;
using Azure;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Azure.Functions.Worker;
using Microsoft.Azure.Functions.Worker.Middleware;

namespace Recommender.Functions;

/// <summary>
/// A storage failure that outlived the SDK's retries is the platform's, not the client's: it is answered 503 with
/// Retry-After in the route's error shape (Personalizer's <c>{"error": {...}}</c> under <c>/personalizer</c>, problem
/// details elsewhere), never an unhandled 500. The client sends the same request again; ingestion's delivery keys make
/// that retry exactly-once, whatever part of the first attempt was written.
/// </summary>
public static class StorageUnavailable
{
    public const int RetryAfterSeconds = 5;

    /// <summary>Whether <paramref name="exception"/> is storage being unreachable, throttled or failing (not a refused request such as 404 or 412).</summary>
    public static bool Is(Exception? exception) => exception switch
    {
        RequestFailedException failed => failed.Status is 0 or 408 or 429 or >= 500,
        AggregateException all => all.InnerExceptions.Count > 0 && all.InnerExceptions.All(Is),
        null => false,
        _ => Is(exception.InnerException),
    };

    /// <summary>Whether the 503 can answer <paramref name="exception"/>: it is storage's and the response has not started (otherwise the host's 500 stands).</summary>
    public static bool Answers(HttpContext http, Exception exception) => Is(exception) && !http.Response.HasStarted;

    /// <summary>The 503 with Retry-After, in the error shape of the request's route.</summary>
    public static async Task WriteAsync(HttpContext http)
    {
        var response = http.Response;
        response.Clear();
        response.StatusCode = StatusCodes.Status503ServiceUnavailable;
        response.Headers.RetryAfter = RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        const string message = "storage is unavailable; send the same request again";
        if (http.Request.Path.StartsWithSegments("/personalizer"))
        {
            response.ContentType = "application/json";
            await JsonSerializer.SerializeAsync(response.Body, new PersonalizerErrorResponse(new PersonalizerError("ServiceUnavailable", message)), PersonalizerApiJsonContext.Default.PersonalizerErrorResponse);
        }
        else
        {
            response.ContentType = "application/problem+json";
            await JsonSerializer.SerializeAsync(response.Body, new ProblemDetails
            {
                Status = StatusCodes.Status503ServiceUnavailable,
                Title = "Storage unavailable",
                Detail = message,
                Type = "https://httpstatuses.io/503",
            });
        }
    }
}

/// <summary><see cref="StorageUnavailable"/> in the Functions worker's pipeline, around every HTTP function.</summary>
public sealed class StorageUnavailableMiddleware : IFunctionsWorkerMiddleware
{
    public async Task Invoke(FunctionContext context, FunctionExecutionDelegate next)
    {
        try
        {
            await next(context);
        }
        catch (Exception ex) when (context.GetHttpContext() is { } http && StorageUnavailable.Answers(http, ex))
        {
            await StorageUnavailable.WriteAsync(http);
        }
    }
}

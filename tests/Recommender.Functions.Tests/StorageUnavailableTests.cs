using System.Text.Json;
using Azure;
using Microsoft.AspNetCore.Http;
using Recommender.Functions;

namespace Recommender.Functions.Tests;

/// <summary>Storage failing past the SDK's retries is answered 503 with Retry-After in the route's error shape; a refused storage request is not.</summary>
[Trait("Kind", "Unit")]
public sealed class StorageUnavailableTests
{
    // What the SDK throws when every retry failed (as the soak's injected outage logged it).
    private static Exception RetriesExhausted(int status) =>
        new AggregateException("Retry failed after 7 tries.", Enumerable.Range(0, 7).Select(_ => new RequestFailedException(status, "storage unreachable")));

    private static async Task<(DefaultHttpContext Http, JsonElement Body)> AnswerAsync(string path, Exception exception)
    {
        var http = new DefaultHttpContext();
        http.Request.Path = path;
        http.Response.Body = new MemoryStream();
        Assert.True(StorageUnavailable.Answers(http, exception));
        await StorageUnavailable.WriteAsync(http);
        http.Response.Body.Position = 0;
        return (http, JsonDocument.Parse(http.Response.Body).RootElement.Clone());
    }

    [Theory]
    [InlineData(0)]
    [InlineData(500)]
    [InlineData(503)]
    [InlineData(429)]
    public async Task Storage_down_is_a_503_problem_with_retry_after(int status)
    {
        var (http, body) = await AnswerAsync("/api/events", RetriesExhausted(status));

        Assert.Equal(StatusCodes.Status503ServiceUnavailable, http.Response.StatusCode);
        Assert.Equal(StorageUnavailable.RetryAfterSeconds.ToString(), http.Response.Headers.RetryAfter.ToString());
        Assert.Equal("application/problem+json", http.Response.ContentType);
        Assert.Equal(503, body.GetProperty("status").GetInt32());
    }

    [Fact]
    public async Task Under_personalizer_it_is_the_spec_error_shape()
    {
        var (http, body) = await AnswerAsync("/personalizer/v1.0/rank", new InvalidOperationException("wrapped", RetriesExhausted(0)));

        Assert.Equal(StatusCodes.Status503ServiceUnavailable, http.Response.StatusCode);
        Assert.Equal("ServiceUnavailable", body.GetProperty("error").GetProperty("code").GetString());
        Assert.False(string.IsNullOrEmpty(body.GetProperty("error").GetProperty("message").GetString()));
    }

    [Theory]
    [InlineData(404)]
    [InlineData(409)]
    [InlineData(412)]
    public void A_refused_storage_request_or_a_bug_is_not_storage_being_down(int status)
    {
        var http = new DefaultHttpContext();

        Assert.False(StorageUnavailable.Answers(http, new RequestFailedException(status, "refused")));
        Assert.False(StorageUnavailable.Answers(http, new AggregateException(new RequestFailedException(0, "down"), new NullReferenceException())));
        Assert.False(StorageUnavailable.Answers(http, new NullReferenceException()));
    }
}

using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.DurableTask.Testing;
using Microsoft.Extensions.DependencyInjection;
using Recommender.Orchestration;
using Recommender.Functions;
using Recommender.Ingestion;
using Recommender.Storage;
using Recommender.TestSupport;

namespace Recommender.Functions.Tests;

/// <summary>The HTTP functions called as the host would, with a DefaultHttpContext, over Azurite.</summary>
public sealed class HttpFunctionTests
{
    private static HttpRequest Request(string body, string method = "POST")
    {
        var context = new DefaultHttpContext();
        var bytes = Encoding.UTF8.GetBytes(body);
        context.Request.Method = method;
        context.Request.Body = new MemoryStream(bytes);
        context.Request.ContentLength = bytes.Length;
        context.Request.ContentType = "application/json";
        return context.Request;
    }

    private static string Batch(int count, int from = 0) =>
        "[" + string.Join(",", Enumerable.Range(from, count).Select(n => Encoding.UTF8.GetString(TestEvents.Interaction(n).ToUtf8Json()))) + "]";

    [Fact]
    public async Task A_valid_batch_is_accepted_with_counts_and_per_event_reasons()
    {
        var services = await Azurite.CreateServicesAsync();
        var body = Batch(3)[..^1] + """,{"userId":"u","itemId":"i","type":"teleport"},17]""";

        var result = Assert.IsType<ObjectResult>(await new IngestEventsOverHttp(services.Ingestor).Run(Request(body), default));

        Assert.Equal(StatusCodes.Status202Accepted, result.StatusCode);
        var response = Assert.IsType<IngestResponse>(result.Value);
        Assert.Equal((3, 2), (response.Accepted, response.Rejected));
        Assert.Equal([3, 4], response.Errors.Select(e => e.Index));
        Assert.Contains("teleport", response.Errors[0].Reason);
        Assert.Equal(2, (await services.DeadLetters.ReadAllAsync(EventIngestor.HttpSource)).Count);
    }

    [Theory]
    [InlineData("""{"not":"an array"}""")]
    [InlineData("""[{"userId":""")]
    [InlineData("")]
    public async Task A_malformed_body_is_a_400_problem(string body)
    {
        var services = await Azurite.CreateServicesAsync();

        var result = Assert.IsType<ObjectResult>(await new IngestEventsOverHttp(services.Ingestor).Run(Request(body), default));

        Assert.Equal(StatusCodes.Status400BadRequest, result.StatusCode);
        Assert.Contains("application/problem+json", result.ContentTypes);
        Assert.IsType<ProblemDetails>(result.Value);
    }

    [Fact]
    public async Task Too_many_events_or_bytes_is_a_413_problem()
    {
        var services = await Azurite.CreateServicesAsync();
        var function = new IngestEventsOverHttp(services.Ingestor);
        var tooBig = "[" + new string(' ', HttpIngestLimits.Default.MaxBodyBytes) + "]";
        var unannounced = Request(tooBig);
        unannounced.ContentLength = null; // chunked: the limit is enforced while reading

        var tooMany = Assert.IsType<ObjectResult>(await function.Run(Request(Batch(HttpIngestLimits.Default.MaxEvents + 1)), default));
        var tooLarge = Assert.IsType<ObjectResult>(await function.Run(Request(tooBig), default));
        var tooLargeChunked = Assert.IsType<ObjectResult>(await function.Run(unannounced, default));

        Assert.All([tooMany, tooLarge, tooLargeChunked], r => Assert.Equal(StatusCodes.Status413PayloadTooLarge, r.StatusCode));
        Assert.Empty(await services.SnapshotReader.ReadAsync());
    }

    [Fact]
    public async Task Deleting_a_user_answers_202_and_removes_their_state()
    {
        var services = await Azurite.CreateServicesAsync();
        await using var serving = await ServingFixture.CreateAsync(services, purge: new UserDataPurgeOptions { Grace = TimeSpan.Zero, ScheduleSlot = TimeSpan.FromSeconds(1) });
        await using var host = await DurableTaskTestHost.StartAsync(tasks => tasks.AddUserDataPurge(),
            new DurableTaskTestHostOptions { Port = InProcessSidecarPort.Free(), ConfigureServices = s => s.AddSingleton(serving) });
        await new IngestEventsOverHttp(services.Ingestor).Run(Request(Batch(7)), default);
        Assert.NotNull(await services.UserStates.GetAsync("u1"));
        var api = new DeleteUser(serving);
        Assert.Equal(StatusCodes.Status404NotFound, Assert.IsType<ObjectResult>(await api.Status(Request("", "GET"), "u1", default)).StatusCode);

        var result = Assert.IsType<ObjectResult>(await api.Run(Request("", "DELETE"), "u1", host.Client, default));

        Assert.Equal(StatusCodes.Status202Accepted, result.StatusCode);
        Assert.Equal("purgePending", Assert.IsType<DeletionStatus>(result.Value).State);
        // The deletion scheduled its own purge: with no grace period it runs at the end of its one-second slot.
        var purge = await host.Client.GetAllInstancesAsync(new Microsoft.DurableTask.Client.OrchestrationQuery { InstanceIdPrefix = UserDataPurgeOrchestration.InstancePrefix })
            .FirstAsync();
        await host.Client.WaitForInstanceCompletionAsync(purge.InstanceId);
        var status = Assert.IsType<OkObjectResult>(await api.Status(Request("", "GET"), "u1", default));
        Assert.Equal("purged", Assert.IsType<DeletionStatus>(status.Value).State);
        await foreach (var blob in services.EventLog.ListBlobsAsync())
            Assert.DoesNotContain(await services.EventLog.ReadBlobAsync(blob.Name), r => r.UserId == "u1");
        Assert.Null(await services.UserStates.GetAsync("u1"));
        Assert.DoesNotContain(await services.SnapshotReader.ReadAsync(), r => r.UserId == "u1");
    }

    [Fact]
    public void The_partition_comes_from_the_trigger_metadata()
    {
        var context = new FakeFunctionContext(new Dictionary<string, object?>
        {
            ["PartitionContext"] = """{"EventHubName":"interactions","ConsumerGroup":"$Default","PartitionId":"3"}""",
        });

        Assert.Equal("3", IngestEventsFromEventHubs.PartitionId(context));
        Assert.Throws<InvalidOperationException>(() => IngestEventsFromEventHubs.PartitionId(new FakeFunctionContext(new Dictionary<string, object?>())));
    }
}

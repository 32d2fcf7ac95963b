using System.Net;
using System.Text.Json.Nodes;
using Azure.Core;
using Azure.Core.Pipeline;

namespace Recommender.Orchestration.Tests;

[Trait("Kind", "Unit")]
public sealed class LauncherTests
{
    private static readonly TrainingJobRequest Request = new("snap123", "v-1");

    [Fact]
    public async Task The_local_launcher_reports_running_success_and_failure_with_the_jobs_last_output()
    {
        var logs = Path.Combine(Path.GetTempPath(), "launcher-" + Guid.NewGuid().ToString("N"));
        // bash -c '<script>' then the job's arguments ($0 = retrain, $1... = --snapshot snap123 ...).
        ITrainingJobLauncher Launcher(string script) => new LocalProcessJobLauncher(new LocalJobOptions { Command = ["bash", "-c", script], LogDirectory = logs });

        var ok = Launcher("echo \"$0 $1 $2\"; exit 0");
        var execution = await ok.StartAsync(Request);
        var status = await WaitAsync(ok, execution);
        Assert.Equal(TrainingJobState.Succeeded, status.State);
        Assert.Equal("retrain --snapshot snap123", File.ReadAllLines(Path.Combine(logs, execution + ".log")).Single());

        var failing = Launcher("echo training broke >&2; exit 3");
        status = await WaitAsync(failing, await failing.StartAsync(Request));
        Assert.Equal(TrainingJobState.Failed, status.State);
        Assert.Equal("exit code 3: training broke", status.Detail);

        var slow = Launcher("sleep 30");
        var sleeping = await slow.StartAsync(Request);
        Assert.Equal(TrainingJobState.Running, (await slow.GetStatusAsync(sleeping)).State);
        await slow.StopAsync(sleeping);
        Assert.Equal(TrainingJobState.Failed, (await WaitAsync(slow, sleeping)).State);

        // A host that restarted knows nothing of earlier executions: failed, so the orchestration retries.
        Assert.Equal(TrainingJobState.Failed, (await Launcher("true").GetStatusAsync(execution)).State);
    }

    [Fact]
    public async Task The_container_apps_launcher_starts_polls_and_stops_executions_through_the_ARM_API()
    {
        var arm = new FakeResourceManager();
        var launcher = new ContainerAppsJobLauncher(
            new ContainerAppsJobOptions { SubscriptionId = "sub", ResourceGroup = "rg", JobName = "trainer", Image = "acr.io/training-job:1", Settings = ["--epochs", "50"] },
            new StaticToken(), new ContainerAppsJobLauncher.ArmClientOptions { Transport = new HttpClientTransport(new HttpClient(arm)) });

        var execution = await launcher.StartAsync(Request);

        Assert.Equal("trainer-abc12", execution);
        var start = arm.Requests[0];
        Assert.Equal("POST https://management.azure.com/subscriptions/sub/resourceGroups/rg/providers/Microsoft.App/jobs/trainer/start?api-version=2024-03-01", start.Line);
        Assert.Equal("Bearer token-for-https://management.azure.com/.default", start.Authorization);
        var container = JsonNode.Parse(start.Body!)!["containers"]![0]!;
        Assert.Equal("acr.io/training-job:1", (string?)container["image"]);
        Assert.Equal(["retrain", "--snapshot", "snap123", "--version", "v-1", "--quiet", "--epochs", "50"], container["args"]!.AsArray().Select(a => (string)a!));

        arm.ExecutionStatus = "Running";
        Assert.Equal(TrainingJobState.Running, (await launcher.GetStatusAsync(execution)).State);
        arm.ExecutionStatus = "Succeeded";
        Assert.Equal(TrainingJobState.Succeeded, (await launcher.GetStatusAsync(execution)).State);
        arm.ExecutionStatus = "Failed";
        Assert.Equal(TrainingJobState.Failed, (await launcher.GetStatusAsync(execution)).State);
        Assert.EndsWith("/jobs/trainer/executions/trainer-abc12?api-version=2024-03-01", arm.Requests[^1].Line, StringComparison.Ordinal);

        await launcher.StopAsync(execution);
        Assert.Equal("POST https://management.azure.com/subscriptions/sub/resourceGroups/rg/providers/Microsoft.App/jobs/trainer/executions/trainer-abc12/stop?api-version=2024-03-01", arm.Requests[^1].Line);

        arm.ExecutionStatus = null; // the execution is unknown: 404 surfaces as an error the activity retries or fails on
        await Assert.ThrowsAsync<Azure.RequestFailedException>(() => launcher.GetStatusAsync("nope"));
    }

    private static async Task<TrainingJobStatus> WaitAsync(ITrainingJobLauncher launcher, string execution)
    {
        for (var i = 0; i < 200; i++)
        {
            var status = await launcher.GetStatusAsync(execution);
            if (status.State != TrainingJobState.Running)
                return status;
            await Task.Delay(50);
        }
        throw new TimeoutException(execution);
    }

    private sealed class StaticToken : TokenCredential
    {
        public override AccessToken GetToken(TokenRequestContext requestContext, CancellationToken cancellationToken) =>
            new("token-for-" + string.Join(",", requestContext.Scopes), DateTimeOffset.UtcNow.AddHours(1));

        public override ValueTask<AccessToken> GetTokenAsync(TokenRequestContext requestContext, CancellationToken cancellationToken) =>
            ValueTask.FromResult(GetToken(requestContext, cancellationToken));
    }

    /// <summary>Answers as Azure Resource Manager does for a Container Apps job, recording each request.</summary>
    private sealed class FakeResourceManager : HttpMessageHandler
    {
        public List<(string Line, string? Authorization, string? Body)> Requests { get; } = [];
        public string? ExecutionStatus { get; set; } = "Running";

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var body = request.Content is null ? null : await request.Content.ReadAsStringAsync(cancellationToken);
            Requests.Add(($"{request.Method} {request.RequestUri}", request.Headers.Authorization?.ToString(), body));
            var path = request.RequestUri!.AbsolutePath;
            if (path.EndsWith("/start", StringComparison.Ordinal))
                return Json(HttpStatusCode.Accepted, """{"id":"/subscriptions/sub/resourceGroups/rg/providers/Microsoft.App/jobs/trainer/executions/trainer-abc12","name":"trainer-abc12"}""");
            if (path.EndsWith("/stop", StringComparison.Ordinal))
                return new HttpResponseMessage(HttpStatusCode.OK);
            return ExecutionStatus is null || !path.EndsWith("/trainer-abc12", StringComparison.Ordinal)
                ? Json(HttpStatusCode.NotFound, """{"error":{"code":"ResourceNotFound","message":"not found"}}""")
                : Json(HttpStatusCode.OK, $$$"""{"name":"trainer-abc12","properties":{"status":"{{{ExecutionStatus}}}"}}""");
        }

        private static HttpResponseMessage Json(HttpStatusCode status, string json) =>
            new(status) { Content = new StringContent(json, System.Text.Encoding.UTF8, "application/json") };
    }
}

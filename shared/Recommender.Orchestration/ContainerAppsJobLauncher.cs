using System.Text.Json;
using System.Text.Json.Nodes;
using Azure;
using Azure.Core;
using Azure.Core.Pipeline;

namespace Recommender.Orchestration;

/// <summary>Which Container Apps job runs training, and the container it overrides per execution.</summary>
public sealed record ContainerAppsJobOptions
{
    public required string SubscriptionId { get; init; }
    public required string ResourceGroup { get; init; }
    public required string JobName { get; init; }
    /// <summary>The job's container name and image (an execution template replaces the container, so both are restated).</summary>
    public string ContainerName { get; init; } = "training-job";
    public required string Image { get; init; }
    public double Cpu { get; init; } = 4;
    public string Memory { get; init; } = "16Gi";
    /// <summary>Model settings passed to the job (e.g. <c>--epochs 200</c>).</summary>
    public IReadOnlyList<string> Settings { get; init; } = [];
    public string ApiVersion { get; init; } = "2024-03-01";
    public Uri ResourceManager { get; init; } = new("https://management.azure.com");
}

/// <summary>
/// Starts the training job as an Azure Container Apps job execution through the ARM REST API
/// (<c>POST .../jobs/{name}/start</c>, then <c>GET .../executions/{execution}</c>), authenticated with a
/// token credential (the Function App's managed identity via <c>DefaultAzureCredential</c>). The
/// management SDK for Container Apps is not served where this was built, so the three calls go through
/// Azure.Core's pipeline, which brings retries and bearer tokens.
/// </summary>
public sealed class ContainerAppsJobLauncher(ContainerAppsJobOptions options, TokenCredential credential, ClientOptions? clientOptions = null) : ITrainingJobLauncher
{
    private readonly HttpPipeline _pipeline = HttpPipelineBuilder.Build(clientOptions ?? new ArmClientOptions(),
        new BearerTokenAuthenticationPolicy(credential, options.ResourceManager.AbsoluteUri.TrimEnd('/') + "/.default"));

    private string JobPath => $"/subscriptions/{options.SubscriptionId}/resourceGroups/{options.ResourceGroup}/providers/Microsoft.App/jobs/{options.JobName}";

    public async Task<string> StartAsync(TrainingJobRequest request, CancellationToken cancellationToken = default)
    {
        var body = new JsonObject
        {
            ["containers"] = new JsonArray(new JsonObject
            {
                ["name"] = options.ContainerName,
                ["image"] = options.Image,
                ["args"] = new JsonArray([.. ITrainingJobLauncher.JobArguments(request, options.Settings).Select(a => JsonValue.Create(a))]),
                ["resources"] = new JsonObject { ["cpu"] = options.Cpu, ["memory"] = options.Memory },
            }),
        };
        var response = await SendAsync(RequestMethod.Post, $"{JobPath}/start", body, cancellationToken);
        return response["name"]?.GetValue<string>() ?? throw new RequestFailedException("the job start response names no execution");
    }

    public async Task<TrainingJobStatus> GetStatusAsync(string executionId, CancellationToken cancellationToken = default)
    {
        var response = await SendAsync(RequestMethod.Get, $"{JobPath}/executions/{executionId}", null, cancellationToken);
        var status = response["properties"]?["status"]?.GetValue<string>();
        return status switch
        {
            "Succeeded" => new TrainingJobStatus(TrainingJobState.Succeeded),
            "Failed" or "Stopped" or "Degraded" => new TrainingJobStatus(TrainingJobState.Failed, $"execution {executionId} {status}"),
            _ => new TrainingJobStatus(TrainingJobState.Running, status), // Running, Processing, Unknown
        };
    }

    public async Task StopAsync(string executionId, CancellationToken cancellationToken = default) =>
        await SendAsync(RequestMethod.Post, $"{JobPath}/executions/{executionId}/stop", null, cancellationToken);

    private async Task<JsonNode> SendAsync(RequestMethod method, string path, JsonNode? body, CancellationToken cancellationToken)
    {
        using var message = _pipeline.CreateMessage();
        message.Request.Method = method;
        message.Request.Uri.Reset(new Uri(options.ResourceManager, path + "?api-version=" + options.ApiVersion));
        message.Request.Headers.Add("Accept", "application/json");
        if (body is not null)
        {
            message.Request.Headers.Add("Content-Type", "application/json");
            message.Request.Content = RequestContent.Create(BinaryData.FromString(body.ToJsonString()));
        }
        await _pipeline.SendAsync(message, cancellationToken);
        var response = message.Response;
        if (response.IsError)
            throw new RequestFailedException(response);
        return response.Content.ToMemory().Length == 0 ? new JsonObject() : JsonNode.Parse(response.Content.ToMemory().Span) ?? new JsonObject();
    }

    /// <summary>Client options for the Resource Manager pipeline (retries as Azure.Core's defaults).</summary>
    public sealed class ArmClientOptions : ClientOptions;
}

using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Azure.Functions.Worker;
using Microsoft.DurableTask.Client;
using Recommender.Orchestration;
using Recommender.Serving;

namespace Recommender.Functions;

/// <summary>
/// <c>POST /api/training</c> starts a retraining run (202 with its id and status address; 409 with the
/// running one's when a run is in progress); <c>GET /api/training/{instanceId}</c> tells how it stands
/// and, once done, its outcome: promoted or not, and why.
/// </summary>
public sealed class TrainingApi(RetrainingTrigger trigger, ServingServices serving)
{
    [Function("StartTraining")]
    public async Task<IActionResult> Start(
        [HttpTrigger(AuthorizationLevel.Function, "post", Route = "api/training")] HttpRequest request,
        [DurableClient] DurableTaskClient client,
        CancellationToken cancellationToken)
    {
        // What this instance served a moment ago goes into the log before the snapshot is taken (other instances' sinks
        // write within their MaxDelay).
        await serving.FlushAsync(cancellationToken);
        var start = await trigger.StartAsync(client, "http", cancellationToken);
        var statusUri = $"{request.Scheme}://{request.Host}/api/training/{start.InstanceId}";
        if (!start.Started)
        {
            var conflict = ProblemResults.Create(StatusCodes.Status409Conflict, "A retraining run is in progress",
                $"run {start.InstanceId} is in progress or started since this request; its status is at {statusUri}");
            // A client follows the run it collided with, as it would its own.
            ((ProblemDetails)conflict.Value!).Extensions["instanceId"] = start.InstanceId;
            return conflict;
        }
        return new AcceptedResult(statusUri, new { instanceId = start.InstanceId, statusUri });
    }

    [Function("GetTrainingStatus")]
    public async Task<IActionResult> Status(
        [HttpTrigger(AuthorizationLevel.Function, "get", Route = "api/training/{instanceId}")] HttpRequest request,
        string instanceId,
        [DurableClient] DurableTaskClient client,
        CancellationToken cancellationToken)
    {
        var instance = await client.GetInstanceAsync(instanceId, getInputsAndOutputs: true, cancellationToken);
        if (instance is null || !instanceId.StartsWith(RetrainingTrigger.InstancePrefix, StringComparison.Ordinal))
            return ProblemResults.Create(StatusCodes.Status404NotFound, "No such retraining run", $"there is no retraining run '{instanceId}'");
        return new OkObjectResult(new
        {
            instanceId,
            status = instance.RuntimeStatus.ToString(),
            createdAt = instance.CreatedAt,
            lastUpdatedAt = instance.LastUpdatedAt,
            outcome = instance.IsCompleted && instance.RuntimeStatus == OrchestrationRuntimeStatus.Completed ? instance.ReadOutputAs<RetrainingOutcome>() : null,
            failure = instance.FailureDetails?.ErrorMessage,
        });
    }
}

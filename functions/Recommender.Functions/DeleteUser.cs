using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Azure.Functions.Worker;
using Microsoft.DurableTask;
using Microsoft.DurableTask.Client;
using Recommender.Events;
using Recommender.Orchestration;
using Recommender.Serving;
using Recommender.Storage;

namespace Recommender.Functions;

/// <summary>
/// <c>DELETE /api/users/{userId}</c>: removes the user's online state and profile now, leaves the user's events out of
/// training from now on, and schedules the purge that removes them from storage after the grace period;
/// <c>GET /api/users/{userId}/deletion</c> says where that stands. The purge also runs on <c>PurgeSchedule</c>.
/// </summary>
public sealed class DeleteUser(ServingServices serving)
{
    [Function(nameof(DeleteUser))]
    public async Task<IActionResult> Run(
        [HttpTrigger(AuthorizationLevel.Function, "delete", Route = "api/users/{userId}")] HttpRequest request,
        string userId,
        [DurableClient] DurableTaskClient client,
        CancellationToken cancellationToken)
    {
        if (InvalidUserId(userId) is { } invalid)
            return invalid;
        var deletedAt = await serving.DeleteUserAsync(userId, cancellationToken);
        await UserDataPurgeOrchestration.ScheduleAsync(client, deletedAt, serving.PurgeOptions, cancellationToken);
        var status = await serving.GetDeletionStatusAsync(userId, cancellationToken);
        return new ObjectResult(status) { StatusCode = StatusCodes.Status202Accepted };
    }

    [Function("GetUserDeletion")]
    public async Task<IActionResult> Status(
        [HttpTrigger(AuthorizationLevel.Function, "get", Route = "api/users/{userId}/deletion")] HttpRequest request,
        string userId,
        CancellationToken cancellationToken)
    {
        if (InvalidUserId(userId) is { } invalid)
            return invalid;
        return await serving.GetDeletionStatusAsync(userId, cancellationToken) is { } status
            ? new OkObjectResult(status)
            : ProblemResults.Create(StatusCodes.Status404NotFound, "No deletion of this user", $"user {userId} has not been deleted");
    }

    /// <summary>The purge a deletion scheduled (<see cref="UserDataPurgeOrchestration"/>).</summary>
    [Function(UserDataPurgeOrchestration.Name)]
    public static Task<PurgeRun> Orchestrate([OrchestrationTrigger] TaskOrchestrationContext context) =>
        new UserDataPurgeOrchestration().RunAsync(context, context.GetInput<DateTime>());

    [Function(UserDataPurgeOrchestration.PurgeActivity)]
    public Task<PurgeRun> Purge([ActivityTrigger] object? input) => serving.PurgeDeletedUsersAsync();

    /// <summary>The purge on a schedule (<c>PurgeSchedule</c>): every deletion past its grace period, whether or not its own purge ran.</summary>
    [Function("PurgeDeletedUsersOnSchedule")]
    public Task PurgeOnSchedule([TimerTrigger("%PurgeSchedule%")] TimerInfo timer, CancellationToken cancellationToken) =>
        serving.PurgeDeletedUsersAsync(cancellationToken);

    private static ObjectResult? InvalidUserId(string userId) =>
        EventLimits.Default.CheckId("userId", userId) is { } invalid ? ProblemResults.Create(StatusCodes.Status400BadRequest, "Invalid user id", invalid) : null;
}

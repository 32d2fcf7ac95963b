using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Azure.Functions.Worker;
using Recommender.Events;
using Recommender.Ingestion;

namespace Recommender.Functions;

/// <summary><c>DELETE /api/users/{userId}</c>: removes the user's online state and profile now; training snapshots skip the user's logged events.</summary>
public sealed class DeleteUser(UserDataDeletion deletion)
{
    [Function(nameof(DeleteUser))]
    public async Task<IActionResult> Run(
        [HttpTrigger(AuthorizationLevel.Function, "delete", Route = "api/users/{userId}")] HttpRequest request,
        string userId,
        CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(userId) || userId.Length > EventLimits.Default.MaxIdLength)
            return ProblemResults.Create(StatusCodes.Status400BadRequest, "Invalid user id",
                $"userId must be 1..{EventLimits.Default.MaxIdLength} characters");
        var deletedAt = await deletion.DeleteAsync(userId, cancellationToken);
        return new ObjectResult(new { userId, deletedAt }) { StatusCode = StatusCodes.Status202Accepted };
    }
}

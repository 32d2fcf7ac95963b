using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Azure.Functions.Worker;
using Recommender.Events;
using Recommender.Serving;

namespace Recommender.Functions;

/// <summary>
/// <c>GET /api/users/{userId}/recommendations?k=10&amp;sessionId=s1</c>: top-k items with scores, propensities and
/// explanations; <c>sessionId</c> (optional) names the client's session, whose earlier slates a learned policy reads.
/// </summary>
public sealed class GetRecommendations(RecommendationService recommendations)
{
    public const int MaxK = 100;

    [Function(nameof(GetRecommendations))]
    public async Task<IActionResult> Run(
        [HttpTrigger(AuthorizationLevel.Function, "get", Route = "api/users/{userId}/recommendations")] HttpRequest request,
        string userId,
        CancellationToken cancellationToken)
    {
        if (EventLimits.Default.CheckId("userId", userId) is { } invalidUser)
            return ProblemResults.Create(StatusCodes.Status400BadRequest, "Invalid user id", invalidUser);
        var k = 10;
        if (request.Query.TryGetValue("k", out var kText) && (!int.TryParse(kText, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out k) || k < 1 || k > MaxK))
            return ProblemResults.Create(StatusCodes.Status400BadRequest, "Invalid k", $"k must be an integer from 1 to {MaxK}");
        var sessionId = request.Query.TryGetValue("sessionId", out var session) ? session.ToString() : null;
        if (sessionId is not null && EventLimits.Default.CheckId("sessionId", sessionId) is { } invalidSession)
            return ProblemResults.Create(StatusCodes.Status400BadRequest, "Invalid session id", invalidSession);
        try
        {
            return new OkObjectResult(await recommendations.RecommendAsync(userId, k, sessionId, cancellationToken));
        }
        catch (NoModelException ex)
        {
            request.HttpContext.Response.Headers.RetryAfter = "60";
            return ProblemResults.Create(StatusCodes.Status503ServiceUnavailable, "No model yet", ex.Message);
        }
    }
}

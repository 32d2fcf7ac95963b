using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Azure.Functions.Worker;
using Recommender.ModelContract;

namespace Recommender.Functions;

/// <summary><c>GET /api/models/current</c>: the promoted model, when and why it was promoted, the data it was trained on and its metrics.</summary>
public sealed class GetCurrentModel(ModelRegistry registry)
{
    [Function(nameof(GetCurrentModel))]
    public async Task<IActionResult> Run(
        [HttpTrigger(AuthorizationLevel.Function, "get", Route = "api/models/current")] HttpRequest request,
        CancellationToken cancellationToken)
    {
        var current = await registry.GetCurrentAsync(cancellationToken);
        if (current is null)
            return ProblemResults.Create(StatusCodes.Status404NotFound, "No model yet", "no model has been published and promoted yet");
        var manifest = await registry.GetManifestAsync(current.Pointer.Version, cancellationToken);
        return new OkObjectResult(new
        {
            version = manifest.Version,
            promotedAt = current.Pointer.PromotedAt,
            reason = current.Pointer.Reason,
            created = manifest.Created,
            dataSnapshot = manifest.DataSnapshot,
            items = manifest.ItemIds.Count - 1,
            metrics = manifest.Metrics,
        });
    }
}

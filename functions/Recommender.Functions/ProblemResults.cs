using Microsoft.AspNetCore.Mvc;

namespace Recommender.Functions;

/// <summary>RFC 7807 problem details responses.</summary>
internal static class ProblemResults
{
    public static ObjectResult Create(int status, string title, string detail) =>
        new(new ProblemDetails { Status = status, Title = title, Detail = detail, Type = $"https://httpstatuses.io/{status}" })
        {
            StatusCode = status,
            ContentTypes = { "application/problem+json" },
        };
}

using System.Reflection;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.Abstractions;
using Microsoft.AspNetCore.Routing;
using Microsoft.Azure.Functions.Worker;
using Microsoft.DurableTask.Client;

namespace Recommender.LocalHost;

/// <summary>One HTTP function of the app: its name, HTTP method, route template and the method that handles it.</summary>
public sealed record HttpFunctionRoute(string Name, string Method, string Template, MethodInfo Handler);

/// <summary>
/// The app's route table, read from the same <c>[Function]</c> and <c>[HttpTrigger]</c> attributes the Functions host
/// reads: the local host serves exactly the app's HTTP functions, and a new one needs no line here.
/// </summary>
public static class HttpFunctionRoutes
{
    public static IReadOnlyList<HttpFunctionRoute> Of(Assembly functions) =>
        [.. from type in functions.GetExportedTypes()
            from method in type.GetMethods(BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static)
            let function = method.GetCustomAttribute<FunctionAttribute>()
            let trigger = method.GetParameters().Select(p => p.GetCustomAttribute<HttpTriggerAttribute>()).FirstOrDefault(a => a is not null)
            where function is not null && trigger is not null
            from verb in trigger.Methods ?? ["get"]
            orderby trigger.Route, verb
            select new HttpFunctionRoute(function.Name, verb.ToUpperInvariant(), trigger.Route!, method)];

    /// <summary>Registers each function class that handles a route, built from the services as the Functions worker builds it.</summary>
    public static IServiceCollection AddFunctionClasses(this IServiceCollection services, IEnumerable<HttpFunctionRoute> routes)
    {
        foreach (var type in routes.Select(r => r.Handler.DeclaringType!).Distinct())
            services.AddSingleton(type);
        return services;
    }

    /// <summary>
    /// Maps every route to its function: the request, its route values by parameter name, the Durable client and the
    /// cancellation token bound as the Functions host binds them; the returned <see cref="IActionResult"/> executed as it does.
    /// </summary>
    public static void MapFunctions(this IEndpointRouteBuilder app, IEnumerable<HttpFunctionRoute> routes)
    {
        foreach (var route in routes)
        {
            // Binders chosen at start, so a function with a parameter this host cannot bind stops the host at once, naming it.
            var binders = route.Handler.GetParameters().Select(Binder).ToArray();
            app.MapMethods("/" + route.Template, [route.Method], async (HttpContext http) =>
            {
                var arguments = binders.Select(bind => bind(http)).ToArray();
                var target = route.Handler.IsStatic ? null : http.RequestServices.GetRequiredService(route.Handler.DeclaringType!);
                var result = await (Task<IActionResult>)route.Handler.Invoke(target, arguments)!;
                await result.ExecuteResultAsync(new ActionContext(http, http.GetRouteData(), new ActionDescriptor()));
            }).WithName(route.Name + "-" + route.Method);
        }
    }

    private static Func<HttpContext, object?> Binder(ParameterInfo parameter) =>
        parameter.ParameterType == typeof(HttpRequest) ? http => http.Request
        : parameter.ParameterType == typeof(CancellationToken) ? http => http.RequestAborted
        : parameter.ParameterType == typeof(DurableTaskClient) ? http => http.RequestServices.GetRequiredService<DurableTaskClient>()
        : parameter.ParameterType == typeof(string) ? http => http.GetRouteValue(parameter.Name!)?.ToString()
        : throw new NotSupportedException($"the local host cannot bind parameter {parameter.Name} ({parameter.ParameterType.Name}) of {parameter.Member.DeclaringType?.Name}.{parameter.Member.Name}");
}

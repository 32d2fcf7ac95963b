#if !EVENTHUBS_EXTENSION
using Microsoft.Azure.Functions.Worker.Extensions.Abstractions;

namespace Microsoft.Azure.Functions.Worker;

/// <summary>
/// Stands in for the attribute of Microsoft.Azure.Functions.Worker.Extensions.EventHubs where that
/// package cannot be restored (development machines here). Same name, namespace and properties, so
/// the function compiles unchanged either way; the deploy build uses the real package.
/// </summary>
[AttributeUsage(AttributeTargets.Parameter)]
[BindingCapabilities(KnownBindingCapabilities.FunctionLevelRetry)]
public sealed class EventHubTriggerAttribute(string eventHubName) : TriggerBindingAttribute
{
    public string EventHubName { get; } = eventHubName;

    public string? Connection { get; set; }

    public string? ConsumerGroup { get; set; }

    [DefaultValue(true)]
    public bool IsBatched { get; set; } = true;
}
#endif

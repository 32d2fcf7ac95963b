using Recommender.Events;

namespace Recommender.Serving;

/// <summary>One event serving built whole and logs behind the request (a Personalizer reward).</summary>
public sealed record LoggedEvent(WireEvent Event) : ServingLogEntry
{
    public override IReadOnlyList<WireEvent> ToEvents() => [Event];
}

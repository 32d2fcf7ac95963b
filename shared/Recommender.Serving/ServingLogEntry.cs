using Recommender.Events;

namespace Recommender.Serving;

/// <summary>
/// Something serving logs behind the request, as the impression sink holds it: compact while it waits (a slate is one
/// entry, not an event per item), turned into events only when its batch is written.
/// </summary>
public abstract record ServingLogEntry
{
    /// <summary>The events this entry logs, as if posted to <c>POST /api/events</c>.</summary>
    public abstract IReadOnlyList<WireEvent> ToEvents();
}

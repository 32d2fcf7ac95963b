using System.Text;
using Recommender.Events;

namespace Recommender.TestSupport;

/// <summary>Builders of wire events for tests.</summary>
public static class TestEvents
{
    public static readonly DateTimeOffset Start = new(2026, 11, 1, 12, 0, 0, TimeSpan.Zero);

    public static WireEvent Interaction(int n, string? userId = null, string type = "click", string? itemId = null) => new()
    {
        SchemaVersion = 1,
        EventId = $"e{n}",
        UserId = userId ?? $"u{n % 7}",
        ItemId = itemId ?? $"i{n % 13}",
        Type = type,
        Timestamp = Start.AddSeconds(n),
    };

    public static ReadOnlyMemory<byte> Bytes(WireEvent e) => e.ToUtf8Json();

    public static ReadOnlyMemory<byte> Bytes(string json) => Encoding.UTF8.GetBytes(json);
}

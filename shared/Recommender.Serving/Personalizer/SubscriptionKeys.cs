using System.Security.Cryptography;
using System.Text;

namespace Recommender.Serving;

/// <summary>
/// The keys a Personalizer client may present in <c>Ocp-Apim-Subscription-Key</c>: the setting
/// <c>Personalizer:SubscriptionKeys</c> (keys separated by <c>;</c>, so one can be rotated while the other serves). In
/// Azure the setting is a Key Vault reference resolved by the app's identity (infra/resources.bicep), so no key is kept
/// in app settings. None configured is development mode: any key, or none, is accepted. A reference Key Vault could not
/// resolve arrives as its own text, and then no key is accepted: a deployment whose keys are missing stays closed.
/// </summary>
public sealed class SubscriptionKeys
{
    public const string Header = "Ocp-Apim-Subscription-Key";
    private readonly byte[][] _keys;

    private SubscriptionKeys(byte[][] keys, bool closed) => (_keys, Closed) = (keys, closed);

    public static SubscriptionKeys From(string? setting)
    {
        if (string.IsNullOrWhiteSpace(setting))
            return new([], closed: false);
        if (setting.TrimStart().StartsWith("@Microsoft.KeyVault(", StringComparison.OrdinalIgnoreCase))
            return new([], closed: true);
        return new(setting.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(Encoding.UTF8.GetBytes).ToArray(), closed: false);
    }

    /// <summary>True when no key is configured (and none is missing): every request is let in.</summary>
    public bool DevelopmentMode => _keys.Length == 0 && !Closed;

    /// <summary>True when the keys were configured by a Key Vault reference that did not resolve.</summary>
    public bool Closed { get; }

    public bool Allows(string? presented)
    {
        if (DevelopmentMode)
            return true;
        if (string.IsNullOrEmpty(presented))
            return false;
        var bytes = Encoding.UTF8.GetBytes(presented);
        var allowed = false;
        foreach (var key in _keys)
            allowed |= CryptographicOperations.FixedTimeEquals(key, bytes); // every key compared: the time says nothing about which matched
        return allowed;
    }
}

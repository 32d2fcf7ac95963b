using System.Globalization;
using System.Text.Json.Serialization;
using System.Xml;

namespace Recommender.Serving;

/// <summary>How Rank serves: Online learns and serves the learned policy; Apprentice serves the baseline (the first action given) while learning; LoggingOnly serves the baseline and only logs.</summary>
public static class LearningModes
{
    public const string Online = "Online";
    public const string Apprentice = "Apprentice";
    public const string LoggingOnly = "LoggingOnly";
    public static readonly string[] All = [Online, Apprentice, LoggingOnly];
}

/// <summary>
/// Personalizer's service configuration (<c>ServiceConfiguration</c> of the spec, v1.1's fields included), kept as the
/// client sent it so GET returns what PUT set; <see cref="Validate"/> checks the spec's ranges and reads the durations.
/// Durations are ISO 8601 (<c>PT10M</c>, v1.1's examples) or <c>hh:mm:ss</c> (v1.0's).
/// </summary>
public sealed record PersonalizerConfiguration
{
    public string RewardWaitTime { get; init; } = "PT10M";
    public double DefaultReward { get; init; }
    public string RewardAggregation { get; init; } = "earliest";
    public double ExplorationPercentage { get; init; } = 0.2;
    public string ModelExportFrequency { get; init; } = "PT5M";
    public bool? LogMirrorEnabled { get; init; }
    public string? LogMirrorSasUri { get; init; }
    public int LogRetentionDays { get; init; } = 90;
    public bool? ModelAutoPublish { get; init; }
    public int? StagedModelHistoryLength { get; init; }
    public DateTimeOffset? LastConfigurationEditDate { get; init; }
    /// <summary>v1.1's; absent (v1.0's clients) means Online.</summary>
    public string? LearningMode { get; init; }

    public const string Earliest = "earliest";
    public const string Sum = "sum";

    [JsonIgnore] public string Mode => LearningMode ?? LearningModes.Online;
    [JsonIgnore] public TimeSpan RewardWait => Duration(RewardWaitTime);
    [JsonIgnore] public TimeSpan ExportFrequency => Duration(ModelExportFrequency);

    /// <summary>The first thing wrong with this configuration, in the words of the field it is about, or null.</summary>
    public string? Validate()
    {
        if (!TryDuration(RewardWaitTime, out var wait) || wait < TimeSpan.Zero)
            return $"rewardWaitTime '{RewardWaitTime}' is not a duration (PT10M or 00:10:00)";
        if (!TryDuration(ModelExportFrequency, out var export) || export <= TimeSpan.Zero)
            return $"modelExportFrequency '{ModelExportFrequency}' is not a positive duration (PT5M or 00:05:00)";
        if (!double.IsFinite(DefaultReward) || DefaultReward is < -1 or > 1)
            return "defaultReward must be from -1 to 1";
        if (!double.IsFinite(ExplorationPercentage) || ExplorationPercentage is < 0 or > 1)
            return "explorationPercentage must be from 0 to 1";
        if (RewardAggregation is not (Earliest or Sum))
            return $"rewardAggregation must be '{Earliest}' or '{Sum}'";
        if (LogRetentionDays is < -1 or 0)
            return "logRetentionDays must be a positive number of days, or -1 to keep logs forever";
        if (StagedModelHistoryLength is < 0)
            return "stagedModelHistoryLength must not be negative";
        if (LearningMode is not null && !LearningModes.All.Contains(LearningMode, StringComparer.Ordinal))
            return $"learningMode must be one of {string.Join(", ", LearningModes.All)}";
        return null;
    }

    private static TimeSpan Duration(string text) => TryDuration(text, out var value) ? value : throw new FormatException($"'{text}' is not a duration");

    /// <summary>An ISO 8601 duration (PT10M) or a TimeSpan (00:10:00), as Personalizer's settings take them.</summary>
    internal static bool TryDuration(string? text, out TimeSpan value)
    {
        value = default;
        if (string.IsNullOrWhiteSpace(text))
            return false;
        if (text.StartsWith('P') || text.StartsWith("-P", StringComparison.Ordinal))
        {
            try
            {
                value = XmlConvert.ToTimeSpan(text);
                return true;
            }
            catch (FormatException)
            {
                return false;
            }
        }
        return TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out value);
    }
}

/// <summary>Personalizer's learning policy (<c>PolicyContract</c>): a name and Vowpal Wabbit-style arguments, kept and returned (exploration is the configuration's <c>explorationPercentage</c>).</summary>
public sealed record PersonalizerPolicy(string Name, string Arguments)
{
    public static readonly PersonalizerPolicy Default = new("default", "--cb_explore_adf --epsilon 0.2 --dsjson --cb_type mtr -q ::");

    public string? Validate() =>
        string.IsNullOrWhiteSpace(Name) ? "name is required"
        : Arguments is null ? "arguments is required"
        : Arguments.Length > 4096 ? "arguments must be at most 4,096 characters"
        : null;
}

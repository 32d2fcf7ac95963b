using Azure.Core;
using Microsoft.Extensions.Configuration;

namespace Recommender.Orchestration;

/// <summary>
/// Reads the learning loop's settings from configuration (app settings in Azure, <c>local.settings.json</c>
/// or command-line switches locally), so the Functions app and the local host start it the same way.
/// </summary>
/// <remarks>
/// <c>Retraining:*</c> binds <see cref="RetrainingSettings"/> (e.g. <c>Retraining:PollInterval</c>,
/// <c>Retraining:Snapshot:MinEngagements</c>) and <c>Retraining:NewEventsThreshold</c>.
/// <c>TrainingJob:Launcher</c> is <c>containerapps</c> (with <c>TrainingJob:SubscriptionId</c>,
/// <c>ResourceGroup</c>, <c>JobName</c>, <c>Image</c>) or <c>local</c> (with <c>TrainingJob:Command</c>,
/// e.g. <c>dotnet training-job.dll</c>); <c>TrainingJob:Settings</c> passes model settings to the job.
/// </remarks>
public static class RetrainingConfiguration
{
    public static RetrainingTriggerOptions TriggerOptions(IConfiguration configuration)
    {
        var section = configuration.GetSection("Retraining");
        var defaults = new RetrainingTriggerOptions();
        return new RetrainingTriggerOptions
        {
            Settings = section.Get<RetrainingSettings>() ?? defaults.Settings,
            NewEventsThreshold = section.GetValue("NewEventsThreshold", defaults.NewEventsThreshold),
        };
    }

    /// <param name="jobSettings">Settings the host adds before <c>TrainingJob:Settings</c> (where its containers are).</param>
    public static ITrainingJobLauncher Launcher(IConfiguration configuration, string storageConnection, TokenCredential? credential = null, IReadOnlyList<string>? jobSettings = null)
    {
        var job = configuration.GetSection("TrainingJob");
        string[] settings = [.. jobSettings ?? [], .. (job["Settings"] ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries)];
        return job["Launcher"]?.ToLowerInvariant() switch
        {
            "containerapps" => new ContainerAppsJobLauncher(new ContainerAppsJobOptions
            {
                SubscriptionId = Required(job, "SubscriptionId"),
                ResourceGroup = Required(job, "ResourceGroup"),
                JobName = Required(job, "JobName"),
                Image = Required(job, "Image"),
                Settings = settings,
            }, credential ?? throw new InvalidOperationException("the containerapps launcher needs a credential")),
            "local" or null => new LocalProcessJobLauncher(new LocalJobOptions
            {
                Command = Required(job, "Command").Split(' ', StringSplitOptions.RemoveEmptyEntries),
                Storage = storageConnection,
                Settings = settings,
            }),
            var other => throw new InvalidOperationException($"TrainingJob:Launcher '{other}' is neither 'containerapps' nor 'local'"),
        };
    }

    private static string Required(IConfiguration section, string key) =>
        section[key] is { Length: > 0 } value ? value : throw new InvalidOperationException($"TrainingJob:{key} is not set");
}

using System.Reflection;
using System.Text.Json.Nodes;
using Recommender.Storage;
using Recommender.TestSupport;

namespace Recommender.Infrastructure.Tests;

/// <summary>
/// infra/ compiles and lints clean with the bicep CLI (warnings fail), and the compiled template gives the
/// code every setting it reads, by identity rather than keys.
/// </summary>
public sealed class BicepTests
{
    private static readonly string Root = Path.GetFullPath(Metadata("RepositoryRoot"));
    /// <summary>JSON text with quotes and apostrophes as they are, so template expressions read as written.</summary>
    private static readonly System.Text.Json.JsonSerializerOptions Raw = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    private static readonly Lazy<JsonNode> Template = new(() => JsonNode.Parse(Bicep("build", "infra/main.bicep", "--stdout").Standard)!);

    [Theory]
    [InlineData("infra/main.bicep")]
    [InlineData("infra/resources.bicep")]
    public void The_templates_lint_without_warnings(string file)
    {
        var (exitCode, _, output) = Bicep("lint", file);
        Assert.True(exitCode == 0 && output.Trim().Length == 0, $"bicep lint {file} (exit {exitCode}):\n{output}");
    }

    [Fact]
    public void Storage_and_event_hubs_accept_identities_only_and_no_app_setting_holds_a_key()
    {
        var storage = Single("Microsoft.Storage/storageAccounts");
        Assert.False(storage["properties"]!["allowSharedKeyAccess"]!.GetValue<bool>());
        Assert.True(Single("Microsoft.EventHub/namespaces")["properties"]!["disableLocalAuth"]!.GetValue<bool>());
        var settings = AppSettings();
        Assert.All(settings.Values, value => Assert.DoesNotMatch("(?i)accountkey|sharedaccesskey|listkeys", value));
        Assert.DoesNotContain("AzureWebJobsStorage", settings.Keys); // the identity-based form instead
    }

    [Fact]
    public void Personalizer_keys_are_a_key_vault_reference_the_app_identity_may_read()
    {
        var setting = AppSettings()["Personalizer__SubscriptionKeys"];
        Assert.Contains("@Microsoft.KeyVault(VaultName=", setting, StringComparison.Ordinal);
        Assert.True(Single("Microsoft.KeyVault/vaults")["properties"]!["enableRbacAuthorization"]!.GetValue<bool>());
        Assert.Contains("userAssignedIdentities", Single("Microsoft.Web/sites")["properties"]!["keyVaultReferenceIdentity"]!.GetValue<string>());
        Assert.Contains(Resources("Microsoft.Authorization/roleAssignments"), r => r["properties"]!["roleDefinitionId"]!.ToJsonString().Contains("keyVaultSecretsUser", StringComparison.Ordinal));
    }

    [Fact]
    public void The_function_app_has_every_setting_the_code_reads()
    {
        var settings = AppSettings().Keys;
        string[] read =
        [
            "AzureWebJobsStorage__accountName",          // StorageAccount.FromFunctionsSetting
            "EventHubConnection__fullyQualifiedNamespace", "EventHubName", "EventHubConsumerGroup", // IngestEventsFromEventHubs
            "RetrainingSchedule", "NewEventsCheckSchedule", // RetrainingFunctions timers
            "PersonalizerModelUpdateSchedule", "Personalizer__SubscriptionKeys", // PersonalizerModelUpdate, SubscriptionKeys
            "TrainingJob__Launcher", "TrainingJob__SubscriptionId", "TrainingJob__ResourceGroup", "TrainingJob__JobName", "TrainingJob__Image", // RetrainingConfiguration
            "APPLICATIONINSIGHTS_CONNECTION_STRING",
        ];
        Assert.All(read, key => Assert.Contains(key, settings));
        var functionsCode = File.ReadAllText(Path.Combine(Root, "functions/Recommender.Functions/IngestEventsFromEventHubs.cs"));
        Assert.Contains("%EventHubName%", functionsCode, StringComparison.Ordinal);
        Assert.Contains("%EventHubConsumerGroup%", functionsCode, StringComparison.Ordinal);
    }

    [Fact]
    public void The_blob_containers_are_those_of_the_storage_layout_and_the_model_registry()
    {
        var containers = Resources("Microsoft.Storage/storageAccounts/blobServices/containers").ToList();
        var names = Template.Value.ToJsonString(Raw);
        var layout = StorageLayout.Default;
        foreach (var name in new[] { layout.EventLogContainer, layout.DeadLetterContainer, layout.IngestStateContainer, layout.TrainingContainer, "models" })
            Assert.Contains($"\"{name}\"", names, StringComparison.Ordinal);
        Assert.Single(containers); // one copy-loop resource over the names
    }

    [Fact]
    public void The_training_job_is_manual_pulls_by_identity_and_the_app_may_only_start_watch_and_stop_it()
    {
        var job = Single("Microsoft.App/jobs");
        Assert.Equal("Manual", (string?)job["properties"]!["configuration"]!["triggerType"]);
        Assert.NotNull(job["properties"]!["configuration"]!["registries"]![0]!["identity"]);
        var role = Single("Microsoft.Authorization/roleDefinitions");
        var actions = role["properties"]!["permissions"]![0]!["actions"]!.AsArray().Select(a => (string)a!).ToList();
        Assert.All(actions, a => Assert.StartsWith("Microsoft.App/jobs/", a, StringComparison.Ordinal));
        Assert.Contains("Microsoft.App/jobs/start/action", actions);
        // Role ids sit in the 'roles' variable; assignments name them.
        var assignments = Resources("Microsoft.Authorization/roleAssignments").Select(r => r.ToJsonString(Raw)).ToList();
        var template = Template.Value.ToJsonString(Raw);
        Assert.Contains("7f951dda-4ed3-4680-a7ca-43fe172d538d", template, StringComparison.Ordinal); // AcrPull
        Assert.Contains(assignments, a => a.Contains("roles').acrPull", StringComparison.Ordinal));
        Assert.Contains(assignments, a => a.Contains("roles').eventHubsDataReceiver", StringComparison.Ordinal));
        Assert.DoesNotContain("b24988ac-6180-42a0-ab88-20f7382dd24c", template, StringComparison.Ordinal); // no Contributor
        Assert.DoesNotContain("8e3af657-a8ff-443c-a75c-2fe8c4bcb635", template, StringComparison.Ordinal); // no Owner
    }

    [Fact]
    public void Azd_deploys_the_two_services_the_template_tags()
    {
        var azure = File.ReadAllText(Path.Combine(Root, "azure.yaml"));
        var tagged = Template.Value.ToJsonString(Raw);
        foreach (var service in new[] { "functions", "training-job" })
        {
            Assert.Contains($"  {service}:", azure, StringComparison.Ordinal);
            Assert.Contains($"'azd-service-name', '{service}'", tagged, StringComparison.Ordinal);
        }
    }

    private static Dictionary<string, string> AppSettings() =>
        Single("Microsoft.Web/sites")["properties"]!["siteConfig"]!["appSettings"]!.AsArray()
            .ToDictionary(s => (string)s!["name"]!, s => s!["value"]!.ToJsonString(Raw));

    private static JsonObject Single(string type) => Assert.Single(Resources(type));

    /// <summary>Resources of a type anywhere in the compiled template, nested deployments included.</summary>
    private static IEnumerable<JsonObject> Resources(string type)
    {
        var found = new List<JsonObject>();
        void Walk(JsonNode? node)
        {
            switch (node)
            {
                case JsonObject o:
                    if (o["type"] is JsonValue t && t.TryGetValue<string>(out var name) && name == type && o.ContainsKey("apiVersion"))
                        found.Add(o);
                    foreach (var (_, child) in o)
                        Walk(child);
                    break;
                case JsonArray a:
                    foreach (var child in a)
                        Walk(child);
                    break;
            }
        }
        Walk(Template.Value);
        return found;
    }

    /// <summary>Runs the bicep CLI: its exit code, standard output (a built template) and everything it printed (diagnostics included).</summary>
    private static (int ExitCode, string Standard, string Output) Bicep(params string[] arguments)
    {
        var bicep = Metadata("BicepPath");
        if (!OperatingSystem.IsWindows() && !File.GetUnixFileMode(bicep).HasFlag(UnixFileMode.UserExecute))
            File.SetUnixFileMode(bicep, File.GetUnixFileMode(bicep) | UnixFileMode.UserExecute);
        // Synchronous because the compiled template is a Lazy shared by the tests; the CLI takes seconds, never minutes.
        var (exitCode, output, error) = ChildProcess.RunAsync(bicep, arguments, TimeSpan.FromMinutes(5), Root,
            new Dictionary<string, string> { ["BICEP_TRACING_ENABLED"] = "false" }).GetAwaiter().GetResult();
        return (exitCode, output, output + error);
    }

    private static string Metadata(string key) =>
        typeof(BicepTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == key).Value!;
}

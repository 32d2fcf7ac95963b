using System.CommandLine;
using System.Globalization;
using Recommender.Training;
using Recommender.Training.Reinforcement;
using Recommender.Training.Pipeline;
using static Recommender.TrainingJob.CommandOptions;

namespace Recommender.TrainingJob;

/// <summary>
/// The training job's commands (System.CommandLine: typed options, <c>--help</c> on every command, a wrong or missing
/// option refused by name with exit code 2). <c>retrain</c> is what the orchestration launches; <c>train</c>,
/// <c>evaluate</c>, <c>publish</c> and <c>promote</c> are the same steps by hand; <c>simulate</c> fills a development event log.
/// The research runs have a command of their own (<c>experiments</c>).
/// </summary>
public static class TrainingJobCommand
{
    public static RootCommand Create()
    {
        var root = new RootCommand("The recommender's training job: train, evaluate, retrain on a snapshot, publish and promote.");
        root.Add(Train());
        root.Add(Evaluate());
        root.Add(Retrain());
        root.Add(Publish());
        root.Add(Promote());
        root.Add(Simulate());
        return root;
    }

    private static Command Train()
    {
        var command = new Command("train", "Pretrain the sequence model on a data source and write the run folder");
        var (data, output, storage, quiet, model) = (DataSource(), Out(), StorageConnection(), Quiet(), new TrainingSettings());
        foreach (var option in new Option[] { data, output, storage, quiet })
            command.Add(option);
        model.AddTo(command);
        command.SetAction(Guarded(async parse =>
        {
            var dataset = await DataSources.OpenAsync(parse.GetRequiredValue(data), StorageOf(parse, storage));
            await WithProgressAsync(parse, quiet, async progress =>
            {
                var metrics = await model.TrainAsync(parse, dataset, parse.GetRequiredValue(output), progress);
                if (progress is null)
                    Console.WriteLine(metrics.ToJsonString());
            });
            return 0;
        }));
        return command;
    }

    private static Command Evaluate()
    {
        var command = new Command("evaluate", "Evaluate a run folder's model on a data source (the protocol printed with the result)");
        var modelFolder = new Option<string>("--model") { Required = true, Description = "The run folder" };
        var (data, storage, quiet) = (DataSource(), StorageConnection(), Quiet());
        foreach (var option in new Option[] { modelFolder, data, storage, quiet })
            command.Add(option);
        command.SetAction(Guarded(async parse =>
        {
            var result = SavedModel.Evaluate(parse.GetRequiredValue(modelFolder), await DataSources.OpenAsync(parse.GetRequiredValue(data), StorageOf(parse, storage)), new EvaluationProtocol());
            Console.WriteLine(TrainingRun.Describe(result));
            return 0;
        }));
        return command;
    }

    // retrain runs every stage unless the settings turn one off: a warm start from the champion, refit on train + validation, the item generator and the user adaptation.
    private static readonly IReadOnlyDictionary<string, string> RetrainDefaults =
        new Dictionary<string, string> { ["refit"] = "true", ["itemGenerator"] = "true", ["userAdaptation"] = "true", ["warmStart"] = "true" };

    private static Command Retrain()
    {
        var command = new Command("retrain", "One run of the learning loop on a frozen snapshot (what the orchestration launches): the whole pipeline, then publish the candidate, not promoted");
        var snapshot = new Option<string>("--snapshot") { Required = true, Description = "The training snapshot's id" };
        var version = new Option<string>("--version") { Required = true, Description = "The candidate's version" };
        var snapshotContainer = new Option<string>("--snapshot-container") { Description = "The snapshots' container, when not the default one" };
        var (output, storage, container, quiet, model) = (Out(required: false), StorageConnection(), Container(), Quiet(), new TrainingSettings());
        var policy = new SettingOptions(typeof(PolicyStageConfig), new PolicyStageConfig(), prefix: "policy.");
        foreach (var option in new Option[] { snapshot, version, snapshotContainer, output, storage, container, quiet })
            command.Add(option);
        model.AddTo(command);
        foreach (var option in policy.Options)
            command.Add(option);
        command.SetAction(Guarded(async parse =>
        {
            // Exit 0 only when the candidate is published: the orchestration's gate decides on promotion.
            var (id, candidate) = (parse.GetRequiredValue(snapshot), parse.GetRequiredValue(version));
            var runFolder = parse.GetValue(output) ?? Path.Combine(Path.GetTempPath(), "retrain-" + candidate);
            var prefix = parse.GetValue(snapshotContainer) is { } c ? c + "/" : "";
            var policyConfig = PolicyStageConfig.Load(policy.Given(parse), model.Section(parse, "policy"));
            var account = StorageOf(parse, storage);
            var (data, logs) = await DataSources.OpenProductSnapshotAsync(account, prefix + id, policyConfig.MaxSessionSteps);
            var registry = Registry(account, parse.GetRequiredValue(container)!);
            var modelConfig = model.Config(parse, RetrainDefaults);
            await WithProgressAsync(parse, quiet, progress => new RetrainPipeline(modelConfig, policyConfig, model.Protocol(parse, modelConfig), progress, model.Meta(parse, modelConfig))
                .RunAsync(data, logs, registry, runFolder));
            await RunPublisher.PublishAsync(registry, runFolder, candidate, "snapshot:" + id, promote: false);
            Console.WriteLine($"published candidate {candidate} (trained on snapshot {id})");
            return 0;
        }));
        return command;
    }

    private static Command Publish()
    {
        var command = new Command("publish", "Publish a run folder's model to the registry, and with --promote make it current");
        var run = new Option<string>("--run") { Required = true, Description = "The run folder" };
        var version = new Option<string>("--version") { Description = "The version to publish as (default: the time now, yyyyMMddTHHmmssZ)" };
        var snapshot = new Option<string>("--snapshot") { Description = "What it was trained on", DefaultValueFactory = _ => "unknown" };
        var promote = new Option<bool>("--promote") { Description = "Also point current.json at it, unless another version was promoted meanwhile (exit 3)" };
        var (storage, container) = (StorageConnection(), Container());
        foreach (var option in new Option[] { run, version, snapshot, promote, storage, container })
            command.Add(option);
        command.SetAction(Guarded(async parse =>
        {
            var name = parse.GetValue(version) ?? DateTime.UtcNow.ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture);
            var andPromote = parse.GetValue(promote);
            var promoted = await RunPublisher.PublishAsync(Registry(StorageOf(parse, storage), parse.GetRequiredValue(container)!), parse.GetRequiredValue(run), name, parse.GetRequiredValue(snapshot)!, andPromote);
            Console.WriteLine(andPromote
                ? promoted ? $"published and promoted {name}" : $"published {name}; not promoted: another version was promoted meanwhile"
                : $"published {name}");
            return promoted ? 0 : 3;
        }));
        return command;
    }

    private static Command Promote()
    {
        var command = new Command("promote", "Roll back or forward by hand: point current.json at a published version, unless someone promoted in between (exit 3: run again)");
        var version = new Option<string>("--version") { Required = true, Description = "A published version" };
        var reason = new Option<string>("--reason") { Description = "Recorded with the promotion", DefaultValueFactory = _ => "promoted by hand" };
        var (storage, container) = (StorageConnection(), Container());
        foreach (var option in new Option[] { version, reason, storage, container })
            command.Add(option);
        command.SetAction(Guarded(async parse =>
        {
            var registry = Registry(StorageOf(parse, storage), parse.GetRequiredValue(container)!);
            var target = parse.GetRequiredValue(version);
            var current = await registry.GetCurrentAsync();
            var promoted = await registry.PromoteAsync(target, current, parse.GetRequiredValue(reason)!);
            Console.WriteLine(promoted ? $"promoted {target} (was {current?.Pointer.Version ?? "none"})" : "not promoted: the pointer changed meanwhile; run again");
            return promoted ? 0 : 3;
        }));
        return command;
    }

    private static Command Simulate()
    {
        var command = new Command("simulate", "Development: send the synthetic world's traffic (or a data source's interactions) through ingestion into the event log (Azurite by default)");
        var world = new Option<string>("--world") { Description = "The synthetic world (SyntheticWorldOptions)", DefaultValueFactory = _ => "" };
        var (data, storage) = (DataSource(required: false), StorageConnection());
        foreach (var option in new Option[] { world, data, storage })
            command.Add(option);
        command.SetAction(Guarded(async parse =>
        {
            var account = StorageOf(parse, storage);
            var services = Recommender.Ingestion.IngestionServices.Connect(account);
            if (parse.GetValue(data) is { } source)
                await IngestionTraffic.SendDatasetAsync(services, await DataSources.OpenAsync(source, account), Console.Out);
            else
                await IngestionTraffic.SendAsync(services, Recommender.Data.SyntheticWorldOptions.Parse(parse.GetValue(world)!), Console.Out);
            return 0;
        }));
        return command;
    }
}

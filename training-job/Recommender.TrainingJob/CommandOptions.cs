using System.CommandLine;
using System.Text.Json.Nodes;
using Recommender.Storage;
using Recommender.Training;
using Recommender.Training.Pipeline;

namespace Recommender.TrainingJob;

/// <summary>The options and the action wrapper the training job's commands share with the experiments' commands.</summary>
public static class CommandOptions
{
    public static Option<string> StorageConnection() => new("--storage")
    {
        Description = "The storage account of the event log, snapshots and models: a connection string, or with a managed identity an account name (default: TRAINING_STORAGE, else Azurite)",
    };

    public static Option<string> Container() => new("--container") { Description = "The models' blob container", DefaultValueFactory = _ => "models" };

    public static Option<bool> Quiet() => new("--quiet") { Description = "No progress lines: only the final result (for CI and the orchestration)" };

    public static Option<string> DataSource(bool required = true) => new("--data")
    {
        Required = required,
        Description = "sasrec:<file> | movielens:<dir> | synthetic:users=1000,items=500,seed=7 | eventlog:dev (Azurite) or eventlog:<connection string> | snapshot:<id> (in --storage)",
    };

    public static Option<string> Out(bool required = true) => new("--out") { Required = required, Description = "The run folder: model, manifest, metrics.json, reports" };

    public static Option<string> Pretrained() => new("--pretrained") { Description = "A run folder to start from instead of pretraining first" };

    public static string StorageOf(ParseResult parse, Option<string> storage) =>
        parse.GetValue(storage) ?? Environment.GetEnvironmentVariable("TRAINING_STORAGE") ?? DataSources.DevelopmentStorage;

    public static Recommender.ModelContract.ModelRegistry Registry(string storage, string container) =>
        new(StorageAccount.Connect(storage).Blobs.GetBlobContainerClient(container));

    /// <summary>
    /// Runs a command line: one that does not parse is refused before anything runs, each error naming its option, exit
    /// code 2; otherwise the command's action decides.
    /// </summary>
    public static async Task<int> RunAsync(RootCommand root, string[] args)
    {
        var parse = root.Parse(args);
        if (parse.Errors.Count == 0)
            return await parse.InvokeAsync();
        var name = parse.RootCommandResult.Command.Name;
        foreach (var error in parse.Errors)
            Console.Error.WriteLine($"{name}: {error.Message}");
        Console.Error.WriteLine($"{name} --help lists the commands; {name} <command> --help a command's options");
        return 2;
    }

    /// <summary>Runs a command's work with its progress: bars on a terminal, plain lines when redirected, none with <c>--quiet</c>.</summary>
    public static Task WithProgressAsync(ParseResult parse, Option<bool> quiet, Func<JobProgress?, Task> job) =>
        ConsoleJobProgress.RunAsync(Spectre.Console.AnsiConsole.Console, parse.GetValue(quiet), job);

    /// <summary>A bad value found only once the command runs (an unknown data source, a missing file) is a usage error: one line, exit code 2.</summary>
    public static Func<ParseResult, Task<int>> Guarded(Func<ParseResult, Task<int>> action) => async parse =>
    {
        try
        {
            return await action(parse);
        }
        catch (Exception ex) when (ex is ArgumentException or FileNotFoundException or DirectoryNotFoundException or FormatException)
        {
            parse.InvocationConfiguration.Error.WriteLine($"{parse.RootCommandResult.Command.Name}: {ex.Message}");
            return 2;
        }
    };

    // Adds a stage's keys to the run's metrics.json (replacing keys of the same name).
    public static void MergeMetrics(string output, JsonObject stage)
    {
        Directory.CreateDirectory(output);
        RetrainPipeline.Merge(output, stage);
        Console.WriteLine($"wrote {Path.Combine(output, "metrics.json")}");
    }
}

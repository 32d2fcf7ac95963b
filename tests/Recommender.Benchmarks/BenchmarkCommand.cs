using System.CommandLine;

/// <summary>
/// Every benchmark is a command of its own: typed options with defaults and help (System.CommandLine), so a misspelt or
/// malformed option is refused before anything runs instead of silently measuring the default, plus the folder its
/// JSON goes to.
/// </summary>
internal static class BenchmarkCommand
{
    /// <summary>The storage the benchmark runs against (its own option instance: an option belongs to one command).</summary>
    public static Option<string> StorageConnection() => new("--storage") { Description = "Storage connection string", DefaultValueFactory = _ => "UseDevelopmentStorage=true" };

    /// <summary>The name of the result file, so runs of one benchmark with different settings sit side by side.</summary>
    public static Option<string> ResultName(string benchmark) => new("--name") { Description = "Name of the result file (without .json)", DefaultValueFactory = _ => benchmark };

    /// <summary>Games, SASRec's preprocessing, the data set the training benchmarks compare on.</summary>
    public static Option<string> GamesData() => new("--data") { Description = "SASRec-format sequence file", DefaultValueFactory = _ => "../shared/data/sasrec/Video.txt" };

    public static Command Create(string name, string description, Func<ParseResult, string, Task> run, params Option[] options) =>
        Create(name, description, async (parse, outDir) => { await run(parse, outDir); return 0; }, options);

    public static Command Create(string name, string description, Func<ParseResult, string, Task<int>> run, params Option[] options)
    {
        var output = new Option<string>("--out") { Description = "The folder the JSON result (and any report) is written to", DefaultValueFactory = _ => "artifacts/benchmarks" };
        var command = new Command(name, description) { output };
        foreach (var option in options)
            command.Options.Add(option);
        command.SetAction(parse =>
        {
            var outDir = parse.GetValue(output)!;
            Directory.CreateDirectory(outDir);
            return run(parse, outDir);
        });
        return command;
    }
}

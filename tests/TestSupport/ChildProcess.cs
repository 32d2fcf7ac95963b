using System.Diagnostics;

namespace Recommender.TestSupport;

/// <summary>A program a test runs to its end: the training job as the orchestration launches it, a headless browser, the bicep CLI.</summary>
public static class ChildProcess
{
    /// <summary>Runs <paramref name="program"/> and returns its exit code and what it printed; past <paramref name="timeout"/> the wait throws.</summary>
    /// <param name="workingDirectory">Where it runs (the test's own directory when null).</param>
    /// <param name="environment">Variables set for it on top of the test process's own.</param>
    public static async Task<(int ExitCode, string Output, string Error)> RunAsync(string program, IEnumerable<string> arguments, TimeSpan timeout,
        string? workingDirectory = null, IReadOnlyDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = workingDirectory ?? "" };
        foreach (var argument in arguments)
            start.ArgumentList.Add(argument);
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
            start.Environment[name] = value;
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var cancel = new CancellationTokenSource(timeout);
        await process.WaitForExitAsync(cancel.Token);
        return (process.ExitCode, await output, await error);
    }
}

using System.Diagnostics;

namespace Recommender.TestSupport;

/// <summary>A program a test runs to its end: the training job as the orchestration launches it, a headless browser.</summary>
public static class ChildProcess
{
    /// <summary>Runs <paramref name="program"/> and returns its exit code and what it printed; past <paramref name="timeout"/> the wait throws.</summary>
    public static async Task<(int ExitCode, string Output, string Error)> RunAsync(string program, IEnumerable<string> arguments, TimeSpan timeout)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in arguments)
            start.ArgumentList.Add(argument);
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var cancel = new CancellationTokenSource(timeout);
        await process.WaitForExitAsync(cancel.Token);
        return (process.ExitCode, await output, await error);
    }
}

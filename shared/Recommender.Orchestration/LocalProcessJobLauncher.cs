using System.Collections.Concurrent;
using System.Diagnostics;

namespace Recommender.Orchestration;

/// <summary>How to run the training job as a local process.</summary>
public sealed record LocalJobOptions
{
    /// <summary>The program and its leading arguments, e.g. <c>["dotnet", "/path/training-job.dll"]</c>.</summary>
    public required IReadOnlyList<string> Command { get; init; }
    /// <summary>Storage connection string passed to the job (<c>--storage</c>).</summary>
    public string Storage { get; init; } = "UseDevelopmentStorage=true";
    /// <summary>Model settings passed through (e.g. <c>--epochs 20</c>); the job's defaults otherwise.</summary>
    public IReadOnlyList<string> Settings { get; init; } = [];
    /// <summary>Where each execution's output goes, as <c>{executionId}.log</c>.</summary>
    public string LogDirectory { get; init; } = Path.Combine(Path.GetTempPath(), "training-job-logs");
}

/// <summary>
/// Runs <c>training-job retrain</c> as a child process of this host (a developer machine, the demo, the
/// tests). Executions live as long as the host: after a restart an execution id is unknown and reported
/// failed, and the orchestration's retry starts a new one.
/// </summary>
public sealed class LocalProcessJobLauncher(LocalJobOptions options) : ITrainingJobLauncher
{
    private readonly ConcurrentDictionary<string, Process> _executions = new();

    public Task<string> StartAsync(TrainingJobRequest request, CancellationToken cancellationToken = default)
    {
        Directory.CreateDirectory(options.LogDirectory);
        var executionId = $"{request.CandidateVersion}-{Guid.NewGuid().ToString("N")[..6]}";
        var start = new ProcessStartInfo(options.Command[0])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in options.Command.Skip(1).Concat(ITrainingJobLauncher.JobArguments(request, ["--storage", options.Storage, .. options.Settings])))
            start.ArgumentList.Add(argument);
        var log = new StreamWriter(LogPath(executionId)) { AutoFlush = true };
        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.WriteLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.WriteLine(e.Data); };
        process.Exited += (_, _) => { process.WaitForExit(); lock (log) log.Dispose(); };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _executions[executionId] = process;
        return Task.FromResult(executionId);
    }

    public Task<TrainingJobStatus> GetStatusAsync(string executionId, CancellationToken cancellationToken = default)
    {
        if (!_executions.TryGetValue(executionId, out var process))
            return Task.FromResult(new TrainingJobStatus(TrainingJobState.Failed, $"execution {executionId} is unknown to this host (it restarted?)"));
        if (!process.HasExited)
            return Task.FromResult(new TrainingJobStatus(TrainingJobState.Running));
        process.WaitForExit(); // drains the output readers
        return Task.FromResult(process.ExitCode == 0
            ? new TrainingJobStatus(TrainingJobState.Succeeded)
            : new TrainingJobStatus(TrainingJobState.Failed, $"exit code {process.ExitCode}: {LastLines(executionId)}"));
    }

    public Task StopAsync(string executionId, CancellationToken cancellationToken = default)
    {
        if (_executions.TryGetValue(executionId, out var process) && !process.HasExited)
            process.Kill(entireProcessTree: true);
        return Task.CompletedTask;
    }

    private string LogPath(string executionId) => Path.Combine(options.LogDirectory, executionId + ".log");

    private string LastLines(string executionId)
    {
        try
        {
            using var stream = new FileStream(LogPath(executionId), FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            var lines = new StreamReader(stream).ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries);
            return string.Join(" | ", lines.TakeLast(3));
        }
        catch (IOException)
        {
            return "(no output)";
        }
    }
}

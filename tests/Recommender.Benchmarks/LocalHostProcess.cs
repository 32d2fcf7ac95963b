using System.Diagnostics;
using System.Globalization;

/// <summary>
/// The Release local host as a child process: started with settings, probed until it answers, stopped as a platform
/// stops it (SIGTERM, so it flushes what its sinks hold), its output in a log file.
/// </summary>
internal sealed class LocalHostProcess : IAsyncDisposable
{
    private readonly Process _process;

    private LocalHostProcess(Process process, Uri url)
    {
        _process = process;
        Url = url;
    }

    public Uri Url { get; }
    public int ProcessId => _process.Id;
    public bool HasExited => _process.HasExited;

    public static string HostDll
    {
        get
        {
            var dll = Path.GetFullPath("functions/Recommender.LocalHost/bin/Release/net10.0/linux-x64/Recommender.LocalHost.dll");
            return File.Exists(dll) ? dll : throw new FileNotFoundException($"build the local host first: dotnet build -c Release functions/Recommender.LocalHost ({dll} is missing)");
        }
    }

    /// <summary>Starts the host on <paramref name="url"/> (a random loopback port when null) with <c>--name value</c> <paramref name="settings"/>.</summary>
    public static async Task<LocalHostProcess> StartAsync(IEnumerable<string> settings, string logPath, Uri? url = null)
    {
        url ??= new Uri($"http://127.0.0.1:{7100 + Random.Shared.Next(800)}");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in new[] { HostDll, "--urls", url.ToString() }.Concat(settings))
            start.ArgumentList.Add(argument);
        var process = Process.Start(start)!;
        var writer = new StreamWriter(logPath, append: true) { AutoFlush = true };
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (writer) writer.WriteLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (writer) writer.WriteLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        using var probe = new HttpClient { BaseAddress = url };
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                (await probe.GetAsync("/")).EnsureSuccessStatusCode();
                return new LocalHostProcess(process, url);
            }
            catch (HttpRequestException) when (attempt < 300 && !process.HasExited)
            {
                await Task.Delay(200);
            }
        }
    }

    /// <summary>The host's peak resident memory (VmHWM), while it runs.</summary>
    public double? PeakRssMegabytes()
    {
        var status = $"/proc/{_process.Id}/status";
        if (_process.HasExited || !File.Exists(status))
            return null;
        var line = File.ReadLines(status).FirstOrDefault(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
        return line is null ? null : Math.Round(long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024.0);
    }

    /// <summary>
    /// Stops the host as a platform does (SIGTERM), so that it flushes what its sinks hold; returns how long that took.
    /// A host still writing after <paramref name="within"/> (default 60 s) is killed, and that is an error.
    /// </summary>
    public async Task<TimeSpan> StopAsync(TimeSpan? within = null)
    {
        var stopping = Stopwatch.StartNew();
        if (_process.HasExited)
            return TimeSpan.Zero;
        using (var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(CultureInfo.InvariantCulture)]))
            await kill.WaitForExitAsync();
        var limit = within ?? TimeSpan.FromSeconds(60);
        using var timeout = new CancellationTokenSource(limit);
        try
        {
            await _process.WaitForExitAsync(timeout.Token);
            return stopping.Elapsed;
        }
        catch (OperationCanceledException)
        {
            _process.Kill(entireProcessTree: true);
            throw new InvalidOperationException($"the host did not stop within {limit.TotalSeconds:F0} s of SIGTERM");
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
    }
}

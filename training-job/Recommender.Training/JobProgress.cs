using System.Diagnostics;
using System.Globalization;

namespace Recommender.Training;

/// <summary>
/// How a long job tells what it is doing: lines (what it loaded, found and wrote) and the steps of its stages (epochs,
/// iterations), each with its figures (loss, throughput) and the time left at the stage's pace so far. This class writes
/// plain lines, for logs and redirected output; the command line draws the stages as progress bars on a terminal
/// (<c>ConsoleJobProgress</c>, Spectre.Console). A quiet job is given none (null).
/// </summary>
public class JobProgress(TextWriter output)
{
    /// <summary>A line of its own.</summary>
    public virtual void Line(string text) => output.WriteLine(text);

    /// <summary>
    /// A stage of <paramref name="total"/> steps begins; dispose it when the stage ends, early or not. As lines, the
    /// first step, the last and every <paramref name="lineEvery"/>-th are written (a bar shows every step).
    /// </summary>
    public virtual JobStage Begin(string name, int total, int lineEvery = 1) => new PlainStage(output, name, total, lineEvery);

    private sealed class PlainStage(TextWriter output, string name, int total, int lineEvery) : JobStage(total)
    {
        public override void Step(int step, string figures)
        {
            if (step == 1 || step % lineEvery == 0 || step == Total)
                output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{name} {step,4}/{Total}  {figures}  ETA {Remaining(step):hh\\:mm\\:ss}"));
        }
    }
}

/// <summary>One stage of a job (the epochs of a training, the iterations of PPO); its clock starts when it begins.</summary>
public abstract class JobStage(int total) : IDisposable
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();

    public int Total { get; } = total;

    /// <summary>Step <paramref name="step"/> of <see cref="Total"/> is done; <paramref name="figures"/> say how it went.</summary>
    public abstract void Step(int step, string figures);

    /// <summary>The time the remaining steps take at the mean pace of the steps so far.</summary>
    public TimeSpan Remaining(int step) =>
        step <= 0 ? TimeSpan.Zero : TimeSpan.FromSeconds(Math.Max(0, Total - step) * _clock.Elapsed.TotalSeconds / step);

    public virtual void Dispose() => GC.SuppressFinalize(this);
}

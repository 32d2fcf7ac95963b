using Recommender.Training;
using Spectre.Console;

namespace Recommender.TrainingJob;

/// <summary>
/// A job's progress on a terminal: each stage a Spectre.Console progress bar with its latest figures, time spent and time
/// left; lines are written above the bars. Where output is not a terminal (a log, CI, the container) the job gets plain
/// lines instead (<see cref="RunAsync"/> decides), and with <c>--quiet</c> nothing.
/// </summary>
public sealed class ConsoleJobProgress(IAnsiConsole console, ProgressContext context) : JobProgress(TextWriter.Null)
{
    /// <summary>
    /// Runs <paramref name="job"/> with the progress its console can show: none when quiet, bars when the console is
    /// interactive, plain lines otherwise.
    /// </summary>
    public static Task RunAsync(IAnsiConsole console, bool quiet, Func<JobProgress?, Task> job)
    {
        if (quiet)
            return job(null);
        if (!console.Profile.Capabilities.Interactive)
            return job(new JobProgress(console.Profile.Out.Writer));
        return console.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .StartAsync(context => job(new ConsoleJobProgress(console, context)));
    }

    public override void Line(string text) => console.WriteLine(text);

    public override JobStage Begin(string name, int total, int lineEvery = 1) => new BarStage(context.AddTask(Markup.Escape(name), maxValue: total), name, total);

    private sealed class BarStage(ProgressTask task, string name, int total) : JobStage(total)
    {
        public override void Step(int step, string figures)
        {
            task.Description = Markup.Escape($"{name} {step}/{Total}  {figures}");
            task.Value = step;
        }

        /// <summary>A stage that ended early (early stopping, a time budget) is shown as finished where it ended.</summary>
        public override void Dispose()
        {
            task.MaxValue = Math.Max(1, task.Value);
            task.StopTask();
            base.Dispose();
        }
    }
}

using Recommender.TrainingJob;
using Spectre.Console.Testing;

namespace Recommender.Training.Tests;

/// <summary>How a job shows its progress: bars on a terminal (Spectre.Console), plain lines when redirected, nothing when quiet.</summary>
[Trait("Kind", "Unit")]
public sealed class JobProgressTests
{
    private static async Task Job(JobProgress? progress)
    {
        progress?.Line("loaded 10 users");
        using var stage = progress?.Begin("epoch", total: 20, lineEvery: 5);
        for (var epoch = 1; epoch <= 12; epoch++) // stops early, as early stopping does
            stage?.Step(epoch, $"loss {1.0 / epoch:F3}");
        await Task.CompletedTask;
    }

    [Fact]
    public async Task Redirected_output_gets_the_first_step_every_nth_and_an_eta_as_plain_lines()
    {
        var console = new TestConsole();
        await ConsoleJobProgress.RunAsync(console, quiet: false, Job);
        var lines = console.Lines.Where(l => l.Length > 0).ToList();
        Assert.Equal("loaded 10 users", lines[0]);
        Assert.Equal(["epoch    1/20", "epoch    5/20", "epoch   10/20"], lines.Skip(1).Select(l => l[..13]));
        Assert.All(lines.Skip(1), l => Assert.Matches(@"loss \d\.\d{3}  ETA \d\d:\d\d:\d\d$", l));
    }

    [Fact]
    public async Task A_terminal_gets_a_bar_per_stage_that_ends_where_the_stage_ended()
    {
        var console = new TestConsole().Interactive().EmitAnsiSequences();
        await ConsoleJobProgress.RunAsync(console, quiet: false, Job);
        var screen = System.Text.RegularExpressions.Regex.Replace(console.Output, @"\x1b\[[0-9;?]*[A-Za-z]", "");
        Assert.Contains("loaded 10 users", screen);
        Assert.Contains("epoch 12/20  loss 0.083", screen); // the last step's figures, in the bar's description
        Assert.Contains("100%", screen);                    // stopped early and shown finished, not stuck at 60%
        Assert.DoesNotContain("epoch    5/20", screen);     // no plain lines on a terminal
    }

    [Fact]
    public async Task Quiet_shows_nothing()
    {
        var console = new TestConsole();
        await ConsoleJobProgress.RunAsync(console, quiet: true, Job);
        Assert.Equal("", console.Output);
    }
}

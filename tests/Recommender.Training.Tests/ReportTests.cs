using Recommender.Data;
using Recommender.TestSupport;

namespace Recommender.Training.Tests;

/// <summary>The reports as a reader sees them: opened in headless Chromium, their charts laid out and drawn.</summary>
public sealed class ReportTests
{
    [Fact]
    public async Task A_training_runs_report_shows_its_learning_curves_in_a_browser()
    {
        // A diverged epoch's loss and epochs without validation are left out of the curves, not drawn as zeros.
        var curve = Enumerable.Range(1, 8).Select(e => new EpochRecord(e, e == 3 ? double.NaN : 1.0 / e, 1, 100, e % 2 == 0 ? 0.1 * e : null, null)).ToList();
        var metrics = new MetricSet(0.5, 0.3, 0.2, 0.1, 100);
        var html = RunReport.Html("synthetic", "leave-one-out", new SequenceModelConfig(), [new EvaluationResult("sasrec", EvaluationStage.Test, metrics, metrics, 1)], curve);

        var charts = await HeadlessChromium.RenderChartsAsync(html);

        Assert.Equal(["training loss", "validation NDCG@10"], charts.Select(c => c.Label));
        Assert.All(charts, c =>
        {
            Assert.True(c.Width >= 600 && c.Height >= 250, $"{c.Label}: laid out {c.Width}x{c.Height}");
            Assert.True(c.Paths >= 5, $"{c.Label}: {c.Paths} paths drawn");
        });
    }

    [Fact]
    public async Task A_chart_without_a_single_finite_point_is_still_a_chart_with_its_title()
    {
        var charts = await HeadlessChromium.RenderChartsAsync(new HtmlReport("empty").LineChart("nothing yet", [(1, double.NaN), (2, null)], "epoch").ToString());
        Assert.Equal("nothing yet", Assert.Single(charts).Label);
        Assert.True(charts[0].Width >= 600);
    }
}

namespace Recommender.Training;

/// <summary>A training run's report (<c>report.html</c> in the run folder): the test metrics, the learning curves and the configuration.</summary>
public static class RunReport
{
    public static string Html(string dataset, string protocol, SequenceModelConfig config, IReadOnlyList<EvaluationResult> results, IReadOnlyList<EpochRecord> curve) =>
        new HtmlReport("Training run")
            .Field("Data", dataset)
            .Field("Protocol", protocol)
            .Heading("Test metrics")
            .Table(["model", "HR@10", "NDCG@10", "full HR@10", "full NDCG@10", "cold users NDCG@10"],
                results.Select(r => (IReadOnlyList<string>)[r.Model, HtmlReport.Number(r.All.HitRate), HtmlReport.Number(r.All.Ndcg),
                    HtmlReport.Number(r.All.FullHitRate), HtmlReport.Number(r.All.FullNdcg), HtmlReport.Number(r.ColdUsers.Ndcg)]))
            .Heading("Learning curves")
            .LineChart("training loss", curve.Select(e => ((double)e.Epoch, (double?)e.Loss)), "epoch")
            .LineChart("validation NDCG@10", curve.Select(e => ((double)e.Epoch, e.ValidationNdcg)), "epoch")
            .Heading("Configuration")
            .Preformatted(config.ToJson())
            .ToString();
}

using System.Globalization;
using System.Net;
using System.Text;

namespace Recommender.Training;

/// <summary>A self-contained HTML report of a run: the learning curves as inline SVG and the metric table.</summary>
public static class RunReport
{
    public static string Html(string dataset, string protocol, SequenceModelConfig config, IReadOnlyList<EvaluationResult> results, IReadOnlyList<EpochRecord> curve)
    {
        var html = new StringBuilder();
        html.Append("<!doctype html><html><head><meta charset=\"utf-8\"><title>Training run</title><style>")
            .Append("body{font-family:system-ui,sans-serif;margin:2em;max-width:60em}table{border-collapse:collapse}td,th{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:right}th:first-child,td:first-child{text-align:left}")
            .Append("</style></head><body>")
            .Append("<h1>Training run</h1><p><b>Data:</b> ").Append(WebUtility.HtmlEncode(dataset)).Append("</p>")
            .Append("<p><b>Protocol:</b> ").Append(WebUtility.HtmlEncode(protocol)).Append("</p>")
            .Append("<h2>Test metrics</h2><table><tr><th>model</th><th>HR@10</th><th>NDCG@10</th><th>full HR@10</th><th>full NDCG@10</th><th>cold users NDCG@10</th></tr>");
        foreach (var r in results)
        {
            html.Append(CultureInfo.InvariantCulture, $"<tr><td>{WebUtility.HtmlEncode(r.Model)}</td><td>{r.All.HitRate:F4}</td><td>{r.All.Ndcg:F4}</td><td>{r.All.FullHitRate:F4}</td><td>{r.All.FullNdcg:F4}</td><td>{r.ColdUsers.Ndcg:F4}</td></tr>");
        }
        html.Append("</table><h2>Learning curves</h2>")
            .Append(Chart("training loss", curve.Select(e => ((double)e.Epoch, double.IsFinite(e.Loss) ? e.Loss : (double?)null)).ToList(), "#1f77b4"))
            .Append(Chart("validation NDCG@10", curve.Select(e => ((double)e.Epoch, e.ValidationNdcg)).ToList(), "#d62728"))
            .Append("<h2>Configuration</h2><pre>").Append(WebUtility.HtmlEncode(config.ToJson())).Append("</pre></body></html>");
        return html.ToString();
    }

    /// <summary>A line chart of (epoch, value) as SVG; points without a value are skipped.</summary>
    public static string Chart(string title, IReadOnlyList<(double X, double? Y)> points, string colour, string xLabel = "epoch")
    {
        var data = points.Where(p => p.Y is { } y && double.IsFinite(y)).Select(p => (p.X, Y: p.Y!.Value)).ToList();
        const int width = 560, height = 220, left = 55, bottom = 30, top = 25, right = 15;
        var svg = new StringBuilder();
        svg.Append(CultureInfo.InvariantCulture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" role=\"img\" aria-label=\"{WebUtility.HtmlEncode(title)}\">");
        svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{left}\" y=\"16\" font-size=\"13\">{WebUtility.HtmlEncode(title)}</text>");
        if (data.Count == 0)
            return svg.Append("</svg>").ToString();
        var (minX, maxX) = (data.Min(p => p.X), Math.Max(data.Max(p => p.X), data.Min(p => p.X) + 1));
        var (minY, maxY) = (data.Min(p => p.Y), data.Max(p => p.Y));
        if (maxY - minY < 1e-12)
            (minY, maxY) = (minY - 0.5, maxY + 0.5);
        double Px(double x) => left + (x - minX) / (maxX - minX) * (width - left - right);
        double Py(double y) => top + (maxY - y) / (maxY - minY) * (height - top - bottom);
        svg.Append(CultureInfo.InvariantCulture, $"<line x1=\"{left}\" y1=\"{height - bottom}\" x2=\"{width - right}\" y2=\"{height - bottom}\" stroke=\"#888\"/>");
        svg.Append(CultureInfo.InvariantCulture, $"<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{height - bottom}\" stroke=\"#888\"/>");
        foreach (var y in new[] { minY, (minY + maxY) / 2, maxY })
            svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{left - 5}\" y=\"{Py(y) + 4:F1}\" font-size=\"10\" text-anchor=\"end\">{y:G3}</text>");
        foreach (var (x, anchor) in new[] { (minX, "start"), (maxX, "end") })
            svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{Px(x):F1}\" y=\"{height - bottom + 14}\" font-size=\"10\" text-anchor=\"{anchor}\">{WebUtility.HtmlEncode(xLabel)} {x:G4}</text>");
        svg.Append(CultureInfo.InvariantCulture, $"<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"");
        foreach (var (x, y) in data)
            svg.Append(CultureInfo.InvariantCulture, $"{Px(x):F1},{Py(y):F1} ");
        svg.Append("\"/>");
        foreach (var (x, y) in data)
            svg.Append(CultureInfo.InvariantCulture, $"<circle cx=\"{Px(x):F1}\" cy=\"{Py(y):F1}\" r=\"2.5\" fill=\"{colour}\"/>");
        return svg.Append("</svg>").ToString();
    }
}

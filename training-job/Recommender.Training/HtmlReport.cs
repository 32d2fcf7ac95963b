using System.Globalization;
using System.Net;
using System.Text;

namespace Recommender.Training;

/// <summary>
/// The one writer of the project's HTML reports (a training run, the RL run, the closed loop): a self-contained page of
/// headings, paragraphs, tables and charts. Charts are drawn by ScottPlot and inlined as SVG, so a report opens from a
/// file with nothing to fetch. Text given here is HTML-encoded.
/// </summary>
public sealed class HtmlReport
{
    private const string Style = "body{font-family:system-ui,sans-serif;margin:2em;max-width:60em}table{border-collapse:collapse;margin:.5em 0}"
        + "td,th{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:right}th:first-child,td:first-child{text-align:left}figure{margin:1em 0}";

    private static readonly string[] Palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];
    private readonly StringBuilder _body = new();
    private readonly string _title;
    private int _charts;

    public HtmlReport(string title, string? summary = null)
    {
        _title = title;
        _body.Append("<h1>").Append(Encode(title)).Append("</h1>");
        if (summary is not null)
            Paragraph(summary);
    }

    public HtmlReport Heading(string text)
    {
        _body.Append("<h2>").Append(Encode(text)).Append("</h2>");
        return this;
    }

    public HtmlReport Paragraph(string text)
    {
        _body.Append("<p>").Append(Encode(text)).Append("</p>");
        return this;
    }

    /// <summary>A labelled line, as "Data: ml-100k".</summary>
    public HtmlReport Field(string label, string value)
    {
        _body.Append("<p><b>").Append(Encode(label)).Append(":</b> ").Append(Encode(value)).Append("</p>");
        return this;
    }

    public HtmlReport Table(IReadOnlyList<string> header, IEnumerable<IReadOnlyList<string>> rows)
    {
        _body.Append("<table><tr>");
        foreach (var cell in header)
            _body.Append("<th>").Append(Encode(cell)).Append("</th>");
        _body.Append("</tr>");
        foreach (var row in rows)
        {
            _body.Append("<tr>");
            foreach (var cell in row)
                _body.Append("<td>").Append(Encode(cell)).Append("</td>");
            _body.Append("</tr>");
        }
        _body.Append("</table>");
        return this;
    }

    public HtmlReport Preformatted(string text)
    {
        _body.Append("<pre>").Append(Encode(text)).Append("</pre>");
        return this;
    }

    /// <summary>A line chart of (x, y); points without a finite value are left out (a diverged loss, an epoch not validated).</summary>
    public HtmlReport LineChart(string title, IEnumerable<(double X, double? Y)> points, string xLabel, string? yLabel = null) =>
        Chart(title, points, xLabel, yLabel, lines: true);

    /// <summary>Points alone, for values whose order along x is not a sequence (one point per setting tried).</summary>
    public HtmlReport PointChart(string title, IEnumerable<(double X, double? Y)> points, string xLabel, string? yLabel = null) =>
        Chart(title, points, xLabel, yLabel, lines: false);

    private HtmlReport Chart(string title, IEnumerable<(double X, double? Y)> points, string xLabel, string? yLabel, bool lines)
    {
        var data = points.Where(p => p.Y is { } y && double.IsFinite(y) && double.IsFinite(p.X)).Select(p => (p.X, Y: p.Y!.Value)).ToArray();
        var plot = new ScottPlot.Plot();
        plot.Font.Set("DejaVu Sans");
        plot.Title(title, size: 14);
        plot.XLabel(xLabel, size: 12);
        if (yLabel is not null)
            plot.YLabel(yLabel, size: 12);
        if (data.Length > 0)
        {
            var series = plot.Add.Scatter(data.Select(p => p.X).ToArray(), data.Select(p => p.Y).ToArray());
            series.Color = ScottPlot.Color.FromHex(Palette[_charts % Palette.Length]);
            series.LineWidth = lines ? 2 : 0;
            series.MarkerSize = lines ? 4 : 8;
        }
        _charts++;
        var svg = plot.GetSvgXml(640, 280);
        // Inlined in the page: the XML declaration belongs to a standalone file only.
        var start = svg.IndexOf("<svg", StringComparison.Ordinal);
        _body.Append("<figure role=\"img\" aria-label=\"").Append(Encode(title)).Append("\">").Append(start < 0 ? svg : svg[start..]).Append("</figure>");
        return this;
    }

    /// <summary>A number as the reports write them: invariant culture, in the given format.</summary>
    public static string Number(double value, string format = "F4") => value.ToString(format, CultureInfo.InvariantCulture);

    public override string ToString() =>
        $"<!doctype html><html><head><meta charset=\"utf-8\"><title>{Encode(_title)}</title><style>{Style}</style></head><body>{_body}</body></html>";

    private static string Encode(string text) => WebUtility.HtmlEncode(text);
}

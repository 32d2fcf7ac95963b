using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Recommender.TestSupport;

/// <summary>A chart as the browser laid it out: its label, its drawn size, and how many SVG paths it drew (axes, grid, data).</summary>
public sealed record RenderedChart(string Label, double Width, double Height, int Paths);

/// <summary>
/// Opens an HTML report in headless Chromium (Debian's <c>chromium</c>; <c>.ci/run</c> installs it) and reads back, after
/// the page is laid out, every chart in it (<c>figure[role=img]</c>, as the training library's <c>HtmlReport</c>
/// writes them): so a test sees what a reader would, not the markup alone.
/// </summary>
public static partial class HeadlessChromium
{
    // Appended to a copy of the report: measures each chart once the page has loaded and writes the result into the page.
    private const string Probe = """
        <script>
        const charts = [...document.querySelectorAll('figure[role=img]')].map(f => {
          const svg = f.querySelector('svg'), box = svg ? svg.getBoundingClientRect() : { width: 0, height: 0 };
          return { label: f.getAttribute('aria-label'), width: box.width, height: box.height, paths: svg ? svg.querySelectorAll('path').length : 0 };
        });
        const out = document.createElement('pre'); out.id = 'rendered-charts'; out.textContent = JSON.stringify(charts); document.body.append(out);
        </script>
        """;

    public static async Task<IReadOnlyList<RenderedChart>> RenderChartsAsync(string html)
    {
        var browser = new[] { "/usr/bin/chromium", "/usr/bin/chromium-browser" }.FirstOrDefault(File.Exists)
            ?? throw new InvalidOperationException("headless Chromium is needed to check the reports: apt-get install -y chromium");
        var page = Path.Combine(Path.GetTempPath(), $"report-{Guid.NewGuid():N}.html");
        await File.WriteAllTextAsync(page, html.Replace("</body>", Probe + "</body>", StringComparison.Ordinal));
        try
        {
            var (exitCode, dom, errors) = await ChildProcess.RunAsync(browser,
                ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", $"--user-data-dir={page}.profile", "--dump-dom", new Uri(page).AbsoluteUri], TimeSpan.FromMinutes(1));
            var result = RenderedCharts().Match(dom);
            if (!result.Success)
                throw new InvalidOperationException($"Chromium did not run the report's probe (exit {exitCode}): {errors}");
            return JsonSerializer.Deserialize<List<RenderedChart>>(WebUtility.HtmlDecode(result.Groups[1].Value), new JsonSerializerOptions(JsonSerializerDefaults.Web))!;
        }
        finally
        {
            File.Delete(page);
            if (Directory.Exists(page + ".profile"))
                Directory.Delete(page + ".profile", recursive: true);
        }
    }

    [GeneratedRegex("<pre id=\"rendered-charts\">(.*?)</pre>", RegexOptions.Singleline)]
    private static partial Regex RenderedCharts();
}

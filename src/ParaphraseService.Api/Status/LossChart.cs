using System.Globalization;
using System.Text;
using ParaphraseService.Api.FineTuning;

namespace ParaphraseService.Api.Status;

/// <summary>
/// A fine-tune job's loss curves as a small standalone SVG: the train loss as a line, the eval loss as dots (joined by a
/// dashed line), a frame with the lowest and highest loss on the left and the first and last step below. Pure string
/// building, so the page needs no script or chart library to show it.
/// </summary>
public static class LossChart
{
    public const string TrainColor = "#2563eb", EvalColor = "#d97706";

    private const double Left = 52, Right = 12, Top = 14, Bottom = 26;

    public static string Svg(IReadOnlyList<LossPoint> train, IReadOnlyList<LossPoint> eval, int width = 420, int height = 180)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(width, (int)(Left + Right) + 10);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, (int)(Top + Bottom) + 10);
        // Losses are finite by construction; dropping any that are not keeps one bad value from emptying the chart.
        var t = train.Where(p => double.IsFinite(p.Loss)).ToList();
        var e = eval.Where(p => double.IsFinite(p.Loss)).ToList();
        var all = t.Concat(e).ToList();
        double plotWidth = width - Left - Right, plotHeight = height - Top - Bottom;

        var svg = new StringBuilder(256 + 16 * all.Count);
        svg.Append(CultureInfo.InvariantCulture,
            $"""<svg xmlns="http://www.w3.org/2000/svg" class="loss-chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" font-family="system-ui, sans-serif" font-size="11">""");
        svg.Append(CultureInfo.InvariantCulture, $"<title>Loss: {t.Count} train points, {e.Count} eval points</title>");
        svg.Append(CultureInfo.InvariantCulture,
            $"""<rect class="frame" x="{N(Left)}" y="{N(Top)}" width="{N(plotWidth)}" height="{N(plotHeight)}" fill="none" stroke="#cbd5e1"/>""");
        if (all.Count == 0)
        {
            svg.Append(CultureInfo.InvariantCulture,
                $"""<text x="{N(Left + plotWidth / 2)}" y="{N(Top + plotHeight / 2)}" text-anchor="middle" fill="#64748b">no loss recorded yet</text>""");
            return svg.Append("</svg>").ToString();
        }

        int firstStep = all.Min(p => p.Step), lastStep = all.Max(p => p.Step);
        double low = all.Min(p => p.Loss), high = all.Max(p => p.Loss);
        // A single step or a flat curve has no range to scale by: its points sit in the middle of that axis.
        double X(int step) => lastStep == firstStep ? Left + plotWidth / 2 : Left + (step - firstStep) * plotWidth / (lastStep - firstStep);
        double Y(double loss) => high == low ? Top + plotHeight / 2 : Top + (high - loss) * plotHeight / (high - low);

        // Axis labels: highest loss at the top, lowest at the bottom, first and last step under the frame.
        svg.Append(CultureInfo.InvariantCulture, $"""<text class="y-max" x="{N(Left - 4)}" y="{N(Top + 4)}" text-anchor="end" fill="#475569">{Loss(high)}</text>""");
        svg.Append(CultureInfo.InvariantCulture, $"""<text class="y-min" x="{N(Left - 4)}" y="{N(Top + plotHeight)}" text-anchor="end" fill="#475569">{Loss(low)}</text>""");
        svg.Append(CultureInfo.InvariantCulture, $"""<text class="x-min" x="{N(Left)}" y="{N(height - 8)}" text-anchor="start" fill="#475569">step {firstStep}</text>""");
        if (lastStep != firstStep)
            svg.Append(CultureInfo.InvariantCulture, $"""<text class="x-max" x="{N(Left + plotWidth)}" y="{N(height - 8)}" text-anchor="end" fill="#475569">{lastStep}</text>""");

        if (t.Count > 0)
        {
            svg.Append($"<polyline class=\"train\" fill=\"none\" stroke-width=\"1.5\" stroke-linejoin=\"round\" stroke=\"{TrainColor}\" points=\"");
            Points(svg, t, X, Y);
            svg.Append("\"/>");
            if (t.Count == 1) // a one-point line draws nothing
                Dot(svg, "train-dot", X(t[0].Step), Y(t[0].Loss), TrainColor);
        }
        if (e.Count > 1)
        {
            svg.Append($"<polyline class=\"eval\" fill=\"none\" stroke-width=\"1\" stroke-dasharray=\"4 3\" stroke=\"{EvalColor}\" points=\"");
            Points(svg, e, X, Y);
            svg.Append("\"/>");
        }
        foreach (var p in e)
            Dot(svg, "eval-dot", X(p.Step), Y(p.Loss), EvalColor);

        // Legend, top right inside the frame.
        var legendX = Left + plotWidth - 86;
        svg.Append(CultureInfo.InvariantCulture, $"""<g class="legend"><line x1="{N(legendX)}" y1="{N(Top + 10)}" x2="{N(legendX + 14)}" y2="{N(Top + 10)}" stroke="{TrainColor}" stroke-width="1.5"/>""");
        svg.Append(CultureInfo.InvariantCulture, $"""<text x="{N(legendX + 18)}" y="{N(Top + 14)}" fill="#334155">train</text>""");
        svg.Append(CultureInfo.InvariantCulture, $"""<circle cx="{N(legendX + 52)}" cy="{N(Top + 10)}" r="3" fill="{EvalColor}"/>""");
        svg.Append(CultureInfo.InvariantCulture, $"""<text x="{N(legendX + 58)}" y="{N(Top + 14)}" fill="#334155">eval</text></g>""");
        return svg.Append("</svg>").ToString();
    }

    private static void Points(StringBuilder svg, List<LossPoint> points, Func<int, double> x, Func<double, double> y)
    {
        for (var i = 0; i < points.Count; i++)
        {
            if (i > 0) svg.Append(' ');
            svg.Append(N(x(points[i].Step))).Append(',').Append(N(y(points[i].Loss)));
        }
    }

    private static void Dot(StringBuilder svg, string cls, double x, double y, string color) =>
        svg.Append(CultureInfo.InvariantCulture, $"""<circle class="{cls}" cx="{N(x)}" cy="{N(y)}" r="2.5" fill="{color}"/>""");

    private static string N(double v) => v.ToString("0.##", CultureInfo.InvariantCulture);

    private static string Loss(double v) => v.ToString(Math.Abs(v) >= 100 ? "0" : "0.###", CultureInfo.InvariantCulture);
}

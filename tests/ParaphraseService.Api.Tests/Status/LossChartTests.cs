using System.Globalization;
using System.Xml.Linq;
using ParaphraseService.Api.FineTuning;
using ParaphraseService.Api.Status;

namespace ParaphraseService.Api.Tests.Status;

public class LossChartTests
{
    private static readonly XNamespace Svg = "http://www.w3.org/2000/svg";

    // The chart's frame for 420 x 180: left 52, right 12, top 14, bottom 26.
    private const double Left = 52, Right = 420 - 12, Top = 14, Bottom = 180 - 26;

    private static XElement Parse(string svg)
    {
        Assert.DoesNotContain("NaN", svg, StringComparison.Ordinal);
        Assert.DoesNotContain("Infinity", svg, StringComparison.Ordinal);
        var root = XDocument.Parse(svg).Root!; // well-formed XML, or this throws
        Assert.Equal(Svg + "svg", root.Name);
        return root;
    }

    private static List<(double X, double Y)> Points(XElement polyline) => polyline.Attribute("points")!.Value
        .Split(' ')
        .Select(p => p.Split(','))
        .Select(p => (double.Parse(p[0], CultureInfo.InvariantCulture), double.Parse(p[1], CultureInfo.InvariantCulture)))
        .ToList();

    private static XElement? ByClass(XElement root, string name, string cls) =>
        root.Descendants(Svg + name).SingleOrDefault(e => (string?)e.Attribute("class") == cls);

    private static string Text(XElement root, string cls) => ByClass(root, "text", cls)!.Value;

    [Fact]
    public void NoPointsGiveAnEmptyFrameWithANote()
    {
        var root = Parse(LossChart.Svg([], []));
        Assert.Empty(root.Descendants(Svg + "polyline"));
        Assert.Empty(root.Descendants(Svg + "circle"));
        Assert.Contains("no loss", root.Value, StringComparison.Ordinal);
    }

    [Fact]
    public void OnePointSitsInTheMiddleAsADot()
    {
        var root = Parse(LossChart.Svg([new LossPoint(1, 2.5)], []));
        var train = ByClass(root, "polyline", "train")!;
        var (x, y) = Assert.Single(Points(train));
        Assert.Equal((Left + Right) / 2, x, precision: 2);
        Assert.Equal((Top + Bottom) / 2, y, precision: 2);
        Assert.NotNull(ByClass(root, "circle", "train-dot")); // a one-point line draws nothing
        Assert.Equal("2.5", Text(root, "y-max"));
        Assert.Equal("step 1", Text(root, "x-min"));
    }

    [Fact]
    public void ManyPointsAreScaledIntoTheFrameWithMinAndMaxLabels()
    {
        var train = Enumerable.Range(1, 500).Select(s => new LossPoint(s, 10.0 / s + 0.5)).ToList();
        var eval = new[] { 100, 200, 300, 400, 500 }.Select(s => new LossPoint(s, 12.0 / s + 0.6)).ToList();
        var root = Parse(LossChart.Svg(train, eval));

        var points = Points(ByClass(root, "polyline", "train")!);
        Assert.Equal(500, points.Count);
        Assert.All(points, p => Assert.InRange(p.X, Left, Right));
        Assert.All(points, p => Assert.InRange(p.Y, Top, Bottom));
        Assert.Equal(Left, points[0].X, precision: 2);
        Assert.Equal(Right, points[^1].X, precision: 2);
        Assert.Equal(Top, points[0].Y, precision: 2);         // the highest loss (step 1: 10.5) at the top
        Assert.Equal(Bottom, points[^1].Y, precision: 2);     // the lowest (step 500: 0.52) at the bottom
        Assert.True(points.Zip(points.Skip(1)).All(p => p.First.X < p.Second.X && p.First.Y <= p.Second.Y), "a falling loss rises down the chart");

        Assert.Equal(5, root.Descendants(Svg + "circle").Count(c => (string?)c.Attribute("class") == "eval-dot"));
        Assert.Equal(5, Points(ByClass(root, "polyline", "eval")!).Count);
        Assert.Equal("10.5", Text(root, "y-max"));
        Assert.Equal("0.52", Text(root, "y-min"));
        Assert.Equal("step 1", Text(root, "x-min"));
        Assert.Equal("500", Text(root, "x-max"));
    }

    [Fact]
    public void AFlatCurveAndOddCulturesStayWellFormed()
    {
        var culture = CultureInfo.CurrentCulture;
        CultureInfo.CurrentCulture = new CultureInfo("de-DE"); // decimal commas would break the points list
        try
        {
            var root = Parse(LossChart.Svg([new LossPoint(3, 1.25), new LossPoint(4, 1.25)], [new LossPoint(4, 1.25)]));
            var points = Points(ByClass(root, "polyline", "train")!);
            Assert.Equal([(Left, (Top + Bottom) / 2), (Right, (Top + Bottom) / 2)], points);
            Assert.Equal("1.25", Text(root, "y-max"));
        }
        finally
        {
            CultureInfo.CurrentCulture = culture;
        }
    }

    [Fact]
    public void NonFiniteLossesAreLeftOut()
    {
        var root = Parse(LossChart.Svg([new LossPoint(1, 3), new LossPoint(2, double.NaN), new LossPoint(3, 1)], [new LossPoint(3, double.PositiveInfinity)]));
        Assert.Equal(2, Points(ByClass(root, "polyline", "train")!).Count);
        Assert.DoesNotContain(root.Descendants(Svg + "circle"), c => (string?)c.Attribute("class") == "eval-dot");
    }
}

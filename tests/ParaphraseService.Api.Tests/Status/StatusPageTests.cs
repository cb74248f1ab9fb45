using System.Text.RegularExpressions;
using ParaphraseService.Api.FineTuning;
using ParaphraseService.Api.Status;

namespace ParaphraseService.Api.Tests.Status;

public class StatusPageTests
{
    private const string Attack = "<script>alert('x')</script>";

    private static StatusSnapshot Snapshot(string adapterName = "formal", string? jobError = null, string? adapterProblem = null, string? modelError = null) => new(
        new DateTimeOffset(2026, 11, 30, 12, 34, 56, TimeSpan.Zero),
        modelError is null
            ? new ModelStatus("ready", "EleutherAI/gpt-j-6b", "cpu", "float32", "int8", false, 28, 4096)
            : new ModelStatus("failed", "EleutherAI/gpt-j-6b", Error: modelError),
        new ServingStatus(3, 64, 5, 8, 123.45, 6L << 30, 7L << 30, 1),
        [new AdapterStatus(adapterName, 16, 32, "q_proj, v_proj", 3_100_000, null, "upload", true, 12, adapterProblem)],
        [
            new FineTuneStatus("ft-0123456789ab", "paws", jobError is null ? FineTuneState.Running : FineTuneState.Failed, 40, 100, 1, 140.2, 75,
                DateTimeOffset.UnixEpoch, null, null, null, jobError, 1.234, 1.5, "jsonl", 900, 100, new Dictionary<string, double>())
            {
                TrainCurve = [new LossPoint(1, 3), new LossPoint(2, 2), new LossPoint(3, 1.5)],
                EvalCurve = [new LossPoint(3, 1.6)],
            },
        ],
        OlderFineTunes: 0);

    [Fact]
    public void ValuesFromUsersAreHtmlEncoded()
    {
        var html = StatusPage.Render(Snapshot(adapterName: Attack, jobError: Attack, adapterProblem: "<img src=x onerror=alert(1)>"));
        Assert.Single(Regex.Matches(html, "<script", RegexOptions.IgnoreCase)); // the page's own script only
        Assert.DoesNotContain("<img", html, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("&lt;script&gt;", html, StringComparison.Ordinal);
        Assert.Contains("&lt;img src=x onerror=alert(1)&gt;", html, StringComparison.Ordinal);

        var failed = StatusPage.Render(Snapshot(modelError: Attack));
        Assert.Single(Regex.Matches(failed, "<script", RegexOptions.IgnoreCase));
        Assert.Contains("failed to load", failed, StringComparison.Ordinal);
    }

    [Fact]
    public void ShowsTheModelServingNumbersAdaptersAndJobs()
    {
        var s = Snapshot();
        var html = StatusPage.Render(s);
        Assert.Contains("28 layers, hidden size 4096 · cpu · float32 · int8 weights", html, StringComparison.Ordinal);
        Assert.Contains("""<dd data-field="tokensPerSecond">123.5</dd>""", html, StringComparison.Ordinal);
        Assert.Contains("""<dd data-field="residentBytes">6.00 GiB</dd>""", html, StringComparison.Ordinal);
        Assert.Contains("""<tr data-adapter="formal">""", html, StringComparison.Ordinal);
        Assert.Contains("""<dd data-field="step">40 / 100</dd>""", html, StringComparison.Ordinal);
        Assert.Contains("""<dd data-field="eta">1m 15s</dd>""", html, StringComparison.Ordinal);
        Assert.Contains("<polyline class=\"train\"", html, StringComparison.Ordinal);
        Assert.Contains("""href="/swagger">""", html, StringComparison.Ordinal);
        Assert.Contains("""href="/metrics">""", html, StringComparison.Ordinal);
        // The script compares each snapshot's shape with this one to know when to reload.
        Assert.Contains($"data-shape=\"{StatusPage.Shape(s)}\"", html, StringComparison.Ordinal);
        Assert.Equal("ready|formal|ft-0123456789ab:running", StatusPage.Shape(s));
    }

    [Theory]
    [InlineData(null, "–")]
    [InlineData(0.4, "0s")]
    [InlineData(59.0, "59s")]
    [InlineData(61.0, "1m 1s")]
    [InlineData(7325.0, "2h 2m")]
    public void TimeLeftReadsLikeAClock(double? seconds, string shown) => Assert.Equal(shown, StatusPage.Eta(seconds));

    [Theory]
    [InlineData(300L << 20, "300 MiB")]
    [InlineData(3L << 30, "3.00 GiB")]
    [InlineData(200_000L, "195 KiB")]
    public void SizesInTheirUnit(long bytes, string shown) => Assert.Equal(shown, StatusPage.Bytes(bytes));
}

using ParaphraseService.Cli.Commands;

namespace ParaphraseService.Cli.Tests;

public class ProgressBarTests
{
    [Fact]
    public void PlainOutputIsALinePerIntervalAndAlwaysTheLast()
    {
        var writer = new StringWriter();
        var bar = new ProgressBar("file", 100, "lines", writer, interactive: false) { PlainInterval = TimeSpan.Zero };
        bar.Report(40);
        bar.Complete(100, "1 failed, 0 empty");
        bar.Complete(100); // only once
        bar.Report(100); // nothing after the end

        var lines = writer.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2, lines.Length);
        Assert.StartsWith("file: 40/100 lines (40%)", lines[0]);
        Assert.Contains("left", lines[0]);
        Assert.StartsWith("file: 100/100 lines (100%)", lines[1]);
        Assert.EndsWith("; 1 failed, 0 empty", lines[1]);
        Assert.DoesNotContain('\r', writer.ToString());
        Assert.DoesNotContain('\u001b', writer.ToString());
    }

    [Fact]
    public void AShortRunLogsOnlyItsLastLine()
    {
        var writer = new StringWriter();
        var bar = new ProgressBar("quantize", 100, "tensors", writer, interactive: false) { PlainInterval = TimeSpan.FromHours(1) };
        for (var done = 1; done < 100; done++)
            bar.Report(done);
        bar.Complete(100);

        Assert.StartsWith("quantize: 100/100 tensors (100%)", Assert.Single(writer.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries)));
    }

    [Fact]
    public void OnATerminalTheBarIsRedrawnInPlaceAndEndsWithANewline()
    {
        var writer = new StringWriter();
        var bar = new ProgressBar("quantize", 4, "tensors", writer, interactive: true);

        bar.Report(2);
        bar.Complete(4);

        var text = writer.ToString();
        Assert.StartsWith("\r[############------------] quantize: 2/4 tensors (50%)", text);
        Assert.Contains("\r[########################] quantize: 4/4 tensors (100%)", text);
        Assert.Contains("\u001b[K", text);
        Assert.EndsWith(Environment.NewLine, text);
    }

    [Fact]
    public void UnknownTotalShowsCountAndRateOnly()
    {
        var bar = new ProgressBar("file", 0, "lines", new StringWriter(), interactive: false);
        Assert.Matches(@"^file: 12 lines, [\d.]+ lines/s, \d+ s$", bar.Line(12, null, final: true));
    }
}

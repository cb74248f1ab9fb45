using System.Diagnostics;
using System.Globalization;

namespace ParaphraseService.Cli.Commands;

/// <summary>
/// Progress of one piece of work on stderr, so stdout stays clean for results. On a terminal: one bar redrawn in
/// place (at most ten times a second). Otherwise (a log, a pipe, CI): a plain line at most every
/// <see cref="PlainInterval"/>, and always one when the work completes.
/// </summary>
internal sealed class ProgressBar
{
    private const int BarWidth = 24;
    private static readonly TimeSpan s_redrawInterval = TimeSpan.FromMilliseconds(100);

    private readonly string _label;
    private readonly string _unit;
    private readonly TextWriter _writer;
    private readonly Func<long, string> _format;
    private readonly Func<double, string> _formatRate;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly Lock _lock = new();
    private TimeSpan? _lastWrite;
    private int _drawnLength;
    private bool _completed;

    /// <param name="label">What is being done, first on every line ("download config.json").</param>
    /// <param name="total">How many units in all; 0 or less when unknown (no bar, no percentage).</param>
    /// <param name="unit">The unit's name ("lines", "tensors"); empty with <paramref name="format"/> for sizes.</param>
    /// <param name="interactive">Whether to redraw in place; default: stderr is a terminal.</param>
    /// <param name="format">How amounts are shown (default: the number).</param>
    public ProgressBar(string label, long total, string unit, TextWriter? writer = null, bool? interactive = null, Func<long, string>? format = null)
    {
        _label = label;
        Total = total;
        _unit = unit;
        _writer = writer ?? Console.Error;
        Interactive = interactive ?? !Console.IsErrorRedirected;
        _format = format ?? (n => n.ToString(CultureInfo.InvariantCulture));
        _formatRate = format is null
            ? rate => rate.ToString(rate < 10 ? "0.0" : "0", CultureInfo.InvariantCulture)
            : rate => format((long)rate);
    }

    public bool Interactive { get; }

    public long Total { get; set; }

    /// <summary>How often a plain (non-terminal) line is written while the work goes on.</summary>
    public TimeSpan PlainInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Reports <paramref name="done"/> units so far; <paramref name="detail"/> is appended (loss, errors, ...).</summary>
    public void Report(long done, string? detail = null)
    {
        lock (_lock)
        {
            if (_completed)
                return;
            var now = _clock.Elapsed;
            // A terminal gets the bar at once; a log its first line only after an interval, so a short run logs
            // just its last line.
            var interval = Interactive ? s_redrawInterval : PlainInterval;
            var last = _lastWrite ?? (Interactive ? TimeSpan.MinValue : TimeSpan.Zero);
            if (last != TimeSpan.MinValue && now - last < interval)
                return;
            _lastWrite = now;
            Write(done, detail, final: false);
        }
    }

    /// <summary>The last line: written always (once), ending the bar on a terminal.</summary>
    public void Complete(long done, string? detail = null)
    {
        lock (_lock)
        {
            if (_completed)
                return;
            _completed = true;
            Write(done, detail, final: true);
        }
    }

    /// <summary>Ends a drawn bar's line so that other output starts on a line of its own.</summary>
    public void Interrupt()
    {
        lock (_lock)
        {
            if (Interactive && _drawnLength > 0)
            {
                _writer.WriteLine();
                _writer.Flush();
                _drawnLength = 0;
            }
        }
    }

    /// <summary>The text of one progress line (without the bar), e.g. "file: 40/100 lines (40%), 12.5 lines/s, 5 s left".</summary>
    internal string Line(long done, string? detail, bool final)
    {
        var seconds = Math.Max(_clock.Elapsed.TotalSeconds, 1e-3);
        var rate = done / seconds;
        var text = Total > 0
            ? string.Create(CultureInfo.InvariantCulture, $"{_label}: {_format(done)}/{_format(Total)}{Unit} ({100.0 * done / Total:F0}%)")
            : $"{_label}: {_format(done)}{Unit}";
        if (done > 0)
            text += $", {_formatRate(rate)}{Unit}/s";
        if (final)
            text += string.Create(CultureInfo.InvariantCulture, $", {Duration(_clock.Elapsed)}");
        else if (Total > 0 && done > 0 && done < Total)
            text += $", {Duration(TimeSpan.FromSeconds((Total - done) / rate))} left";
        return detail is null ? text : $"{text}; {detail}";
    }

    private string Unit => _unit.Length == 0 ? "" : " " + _unit;

    private void Write(long done, string? detail, bool final)
    {
        var line = Line(done, detail, final);
        if (!Interactive)
        {
            _writer.WriteLine(line);
            _writer.Flush();
            return;
        }
        var drawn = Total > 0 ? $"{Bar(done)} {line}" : line;
        var width = TerminalWidth();
        if (drawn.Length > width - 1)
            drawn = drawn[..Math.Max(0, width - 1)];
        // Carriage return, the line, and erase to its end (shorter than the last one drawn).
        _writer.Write($"\r{drawn}\u001b[K");
        _drawnLength = drawn.Length;
        if (final)
        {
            _writer.WriteLine();
            _drawnLength = 0;
        }
        _writer.Flush();
    }

    private string Bar(long done)
    {
        var filled = (int)Math.Clamp(BarWidth * done / Math.Max(Total, 1), 0, BarWidth);
        return $"[{new string('#', filled)}{new string('-', BarWidth - filled)}]";
    }

    private static int TerminalWidth()
    {
        try
        {
            return Console.WindowWidth is > 20 and var width ? width : 120;
        }
        catch (IOException)
        {
            return 120;
        }
    }

    internal static string Duration(TimeSpan span) => span.TotalSeconds switch
    {
        < 60 => string.Create(CultureInfo.InvariantCulture, $"{span.TotalSeconds:F0} s"),
        < 3600 => string.Create(CultureInfo.InvariantCulture, $"{(int)span.TotalMinutes}m{span.Seconds:D2}s"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{(int)span.TotalHours}h{span.Minutes:D2}m"),
    };
}

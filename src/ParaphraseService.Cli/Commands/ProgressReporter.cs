using System.Globalization;
using ParaphraseService.Model.Checkpoints.Hub;

namespace ParaphraseService.Cli.Commands;

/// <summary>
/// Download progress on stderr (stdout stays clean for --json): a bar per file on a terminal, else a line about once a
/// second per file, and one when each file is complete.
/// </summary>
internal sealed class ProgressReporter(TextWriter? writer = null, bool? interactive = null) : IProgress<HubDownloadProgress>
{
    private readonly Dictionary<string, ProgressBar> _bars = [];
    private ProgressBar? _current;

    public static ProgressReporter ForDownloads() => new();

    public void Report(HubDownloadProgress value)
    {
        lock (_bars)
        {
            if (!_bars.TryGetValue(value.FileName, out var bar))
            {
                // A new file: the previous one's bar (if still drawn) keeps its own line.
                _current?.Interrupt();
                bar = new ProgressBar($"download {value.FileName}", value.TotalBytes, "", writer, interactive, Mb)
                {
                    PlainInterval = TimeSpan.FromSeconds(1),
                };
                _bars[value.FileName] = bar;
            }
            _current = bar;
            bar.Total = value.TotalBytes;
            if (value.TotalBytes > 0 && value.BytesDownloaded >= value.TotalBytes)
                bar.Complete(value.BytesDownloaded);
            else
                bar.Report(value.BytesDownloaded);
        }
    }

    private static string Mb(long bytes) => (bytes / 1048576.0).ToString("F1", CultureInfo.InvariantCulture) + " MB";
}

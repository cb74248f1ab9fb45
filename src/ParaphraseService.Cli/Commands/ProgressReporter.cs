using System.Diagnostics;
using ParaphraseService.Model.Checkpoints.Hub;

namespace ParaphraseService.Cli.Commands;

/// <summary>Download progress on stderr (stdout stays clean for --json), at most about once a second per file.</summary>
internal sealed class ProgressReporter : IProgress<HubDownloadProgress>
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly Dictionary<string, TimeSpan> _lastReport = [];

    public static ProgressReporter ForDownloads() => new();

    public void Report(HubDownloadProgress value)
    {
        lock (_lastReport)
        {
            var done = value.TotalBytes > 0 && value.BytesDownloaded >= value.TotalBytes;
            if (!done && _lastReport.TryGetValue(value.FileName, out var last) && _clock.Elapsed - last < TimeSpan.FromSeconds(1))
                return;
            _lastReport[value.FileName] = _clock.Elapsed;
            var percent = value.TotalBytes > 0 ? $"{100.0 * value.BytesDownloaded / value.TotalBytes,5:F1}%" : "     ";
            Console.Error.WriteLine($"download {value.FileName}: {percent} {Mb(value.BytesDownloaded)}/{Mb(value.TotalBytes)} MB");
        }
    }

    private static string Mb(long bytes) => (bytes / 1048576.0).ToString("F1");
}

using Microsoft.Extensions.Logging;

namespace ParaphraseService.Model.Checkpoints.Hub;

/// <summary>The client's log lines, compiled once. CDN URLs are never logged whole: their query holds signatures.</summary>
internal static partial class HubLog
{
    [LoggerMessage(1, LogLevel.Information, "Resolved {Model} to commit {Commit}")]
    public static partial void Resolved(ILogger logger, HubModelId model, string commit);

    [LoggerMessage(2, LogLevel.Information, "Downloading {File} ({Size} bytes) from {Host}, starting at byte {Offset}")]
    public static partial void Downloading(ILogger logger, string file, long size, string host, long offset);

    [LoggerMessage(3, LogLevel.Information, "Stored {File} as blob {Etag}")]
    public static partial void Stored(ILogger logger, string file, string etag);

    [LoggerMessage(4, LogLevel.Warning, "Attempt {Attempt} of {MaxAttempts} failed, retrying in {Delay}: {Reason}")]
    public static partial void Retrying(ILogger logger, int attempt, int maxAttempts, TimeSpan delay, string reason);

    [LoggerMessage(5, LogLevel.Information, "Download of {File} was cut at byte {Offset} after progress; resuming with a fresh set of attempts")]
    public static partial void ResumingAfterProgress(ILogger logger, string file, long offset);

    [LoggerMessage(6, LogLevel.Warning, "The Hub is unreachable ({Reason}); serving {Model} from the cache at {Snapshot}")]
    public static partial void ServingCachedBecauseUnreachable(ILogger logger, string reason, HubModelId model, string snapshot);

    [LoggerMessage(7, LogLevel.Information, "Offline mode: serving {Model} from the cache at {Snapshot}")]
    public static partial void ServingCachedOffline(ILogger logger, HubModelId model, string snapshot);

    [LoggerMessage(8, LogLevel.Information, "Waiting for another download of {File} to finish")]
    public static partial void WaitingForLock(ILogger logger, string file);

    [LoggerMessage(9, LogLevel.Warning, "Cached blob {Path} has {Actual} bytes instead of {Expected}; downloading it again")]
    public static partial void ReplacingBadBlob(ILogger logger, string path, long actual, long expected);

    [LoggerMessage(10, LogLevel.Information, "The server ignored the resume request for {File}; downloading it from the start")]
    public static partial void RangeIgnored(ILogger logger, string file);
}

namespace ParaphraseService.Model.Checkpoints.Hub;

/// <summary>
/// A failure worth another attempt (connection lost, timeout, 408, 429, 5xx). Network errors are converted to this at
/// the point they happen so that a local disk error (an IOException too) is never mistaken for one and retried.
/// </summary>
internal sealed class HubTransientException(string message, int? statusCode = null, TimeSpan? retryAfter = null, Exception? inner = null)
    : Exception(message, inner)
{
    public int? StatusCode { get; } = statusCode;

    /// <summary>The server's Retry-After, when it sent one.</summary>
    public TimeSpan? RetryAfter { get; } = retryAfter;
}

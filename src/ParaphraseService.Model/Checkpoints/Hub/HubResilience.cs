using Microsoft.Extensions.Logging;
using Polly;
using Polly.Retry;
using Polly.Timeout;

namespace ParaphraseService.Model.Checkpoints.Hub;

/// <summary>The Polly pipelines every Hub request runs in, and what counts as worth retrying.</summary>
internal static class HubResilience
{
    /// <summary>
    /// Retries transient failures with exponential backoff and jitter (or the server's Retry-After), at most
    /// <see cref="HubOptions.MaxAttempts"/> attempts in all. With <paramref name="perAttemptTimeout"/> each attempt is
    /// also cut off after <see cref="HubOptions.AttemptTimeout"/>; downloads go without it and time out on stalls
    /// instead, because a multi-gigabyte body legitimately takes longer than any fixed limit.
    /// </summary>
    public static ResiliencePipeline Create(HubOptions options, ILogger logger, bool perAttemptTimeout)
    {
        var builder = new ResiliencePipelineBuilder { TimeProvider = options.TimeProvider };
        if (options.MaxAttempts > 1)
        {
            builder.AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = args => ValueTask.FromResult(args.Outcome.Exception is { } e && IsTransient(e, options)),
                MaxRetryAttempts = options.MaxAttempts - 1,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = options.BaseDelay,
                MaxDelay = options.MaxDelay,
                DelayGenerator = args => ValueTask.FromResult(args.Outcome.Exception is HubTransientException { RetryAfter: { } wait } ? (TimeSpan?)wait : null),
                OnRetry = args =>
                {
                    HubLog.Retrying(logger, args.AttemptNumber + 1, options.MaxAttempts, args.RetryDelay, args.Outcome.Exception?.Message ?? "");
                    return default;
                },
            });
        }

        if (perAttemptTimeout)
            builder.AddTimeout(options.AttemptTimeout);
        return builder.Build();
    }

    /// <summary>
    /// Connection errors, timeouts, 408, 429 and 5xx. A Retry-After longer than <see cref="HubOptions.MaxDelay"/> is not
    /// waited out: the caller gets an error saying so at once instead of a silent long hang.
    /// </summary>
    public static bool IsTransient(Exception e, HubOptions options) => e switch
    {
        HubTransientException { RetryAfter: { } wait } => wait <= options.MaxDelay,
        HubTransientException or TimeoutRejectedException => true,
        _ => false,
    };

    /// <summary>Whether <paramref name="e"/> is one of the failures the pipelines retry (whatever its Retry-After).</summary>
    public static bool IsRetryable(Exception e) => e is HubTransientException or TimeoutRejectedException;

    /// <summary>The error reported once the attempts are used up.</summary>
    public static HubException GiveUp(Exception last, string what, HubOptions options)
    {
        if (last is HubTransientException { RetryAfter: { } wait } transient && wait > options.MaxDelay)
            return new HubException(HubErrorKind.Unavailable,
                $"{what}: the Hub is rate limiting (HTTP {transient.StatusCode}) and asked to wait {wait}, longer than the "
                + $"{options.MaxDelay} this client waits; try again later{(options.Token is null ? " or set HF_TOKEN for higher limits" : "")}.", last)
            {
                StatusCode = transient.StatusCode,
            };

        var reason = last is TimeoutRejectedException ? $"no answer within {options.AttemptTimeout}" : last.Message;
        return new HubException(HubErrorKind.Unavailable, $"{what} failed after {options.MaxAttempts} attempt(s); last error: {reason}", last)
        {
            StatusCode = (last as HubTransientException)?.StatusCode,
        };
    }
}

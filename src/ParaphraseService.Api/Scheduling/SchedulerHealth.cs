namespace ParaphraseService.Api.Scheduling;

/// <summary>
/// Whether the scheduler's batched steps work. One failed step fails its rows and the loop goes on; a failure that
/// repeats on every step (the model, not a request, is broken) makes the service not ready until a step succeeds
/// again, so a load balancer sends requests elsewhere meanwhile.
/// </summary>
public sealed class SchedulerHealth(ILogger<SchedulerHealth> logger)
{
    /// <summary>Consecutive failed steps that make the service not ready.</summary>
    public const int FailuresBeforeNotReady = 3;

    private readonly Lock _gate = new();
    private int _consecutiveFailures;
    private string? _lastError;
    private string? _stopped;

    /// <summary>Null while steps work; otherwise why the service is not ready.</summary>
    public string? Problem
    {
        get
        {
            lock (_gate)
                return _stopped ?? (_consecutiveFailures >= FailuresBeforeNotReady
                    ? $"The last {_consecutiveFailures} decode steps failed; the last error: {_lastError}"
                    : null);
        }
    }

    internal void StepSucceeded()
    {
        lock (_gate)
        {
            if (_consecutiveFailures >= FailuresBeforeNotReady)
                logger.LogWarning("Decode steps work again after {Failures} failures in a row; ready again", _consecutiveFailures);
            _consecutiveFailures = 0;
        }
    }

    /// <summary>The scheduler cannot run at all (it could not start, or its loop ended): not ready for good.</summary>
    internal void Stopped(Exception error)
    {
        lock (_gate)
            _stopped = $"The scheduler stopped: {error.GetType().Name}: {error.Message}";
    }

    internal void StepFailed(Exception error)
    {
        lock (_gate)
        {
            _consecutiveFailures++;
            _lastError = $"{error.GetType().Name}: {error.Message}";
            if (_consecutiveFailures == FailuresBeforeNotReady)
                logger.LogError(error, "{Failures} decode steps failed in a row; the service reports not ready until one succeeds", _consecutiveFailures);
        }
    }
}

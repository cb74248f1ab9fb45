namespace ParaphraseService.Api.Scheduling;

/// <summary>
/// Tokens per second over a sliding window of whole-second buckets. The scheduler adds once per decode step, readers
/// (the status page) ask from other threads; a lock is cheaper here than it sounds, as it is taken a few hundred times a
/// second at most and never contended for long.
/// </summary>
public sealed class TokenRate
{
    private readonly TimeProvider _time;
    private readonly long _start;
    private readonly long[] _seconds;
    private readonly long[] _counts;
    private readonly Lock _gate = new();

    /// <param name="windowSeconds">How far back the rate looks, 2 or more: long enough to smooth single steps, short
    /// enough to fall to zero soon after the service goes idle.</param>
    public TokenRate(TimeProvider? time = null, int windowSeconds = 10)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(windowSeconds, 2);
        _time = time ?? TimeProvider.System;
        _start = _time.GetTimestamp();
        _seconds = new long[windowSeconds];
        _counts = new long[windowSeconds];
        Array.Fill(_seconds, -1);
    }

    public void Add(int tokens)
    {
        if (tokens <= 0) return;
        var second = Second(_time.GetTimestamp());
        var i = (int)(second % _seconds.Length);
        lock (_gate)
        {
            if (_seconds[i] != second)
            {
                _seconds[i] = second;
                _counts[i] = 0;
            }
            _counts[i] += tokens;
        }
    }

    /// <summary>Tokens added in the window that ends now, divided by its length (shorter while the counter is young).</summary>
    public double PerSecond()
    {
        var now = _time.GetTimestamp();
        var second = Second(now);
        long total = 0;
        lock (_gate)
        {
            for (var i = 0; i < _seconds.Length; i++)
                if (_seconds[i] > second - _seconds.Length)
                    total += _counts[i];
        }
        // The buckets cover the whole seconds before this one and the part of this one that has passed.
        var elapsed = _time.GetElapsedTime(_start, now).TotalSeconds;
        var window = Math.Min(_seconds.Length - 1 + (elapsed - Math.Floor(elapsed)), elapsed);
        return total / Math.Max(window, 1.0);
    }

    // Seconds since the counter started, so bucket boundaries do not depend on the timestamp's origin.
    private long Second(long timestamp) => (long)_time.GetElapsedTime(_start, timestamp).TotalSeconds;
}

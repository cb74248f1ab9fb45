using System.Collections.Concurrent;

namespace ParaphraseService.Model.Tests.Hub;

/// <summary>
/// Records every timer Polly asks for and fires the short ones (retry delays) at once, so a test can check the delays
/// without waiting them out. Timers at or beyond <see cref="LongerThan"/> (per-attempt timeouts) run on the real clock.
/// </summary>
internal sealed class InstantTimeProvider(TimeSpan longerThan) : TimeProvider
{
    public TimeSpan LongerThan { get; } = longerThan;

    public ConcurrentQueue<TimeSpan> Delays { get; } = new();

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        if (dueTime == Timeout.InfiniteTimeSpan || dueTime >= LongerThan)
            return System.CreateTimer(callback, state, dueTime, period);
        Delays.Enqueue(dueTime);
        return System.CreateTimer(callback, state, TimeSpan.Zero, period);
    }
}

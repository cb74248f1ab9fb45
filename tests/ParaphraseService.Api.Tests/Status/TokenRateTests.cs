using ParaphraseService.Api.Scheduling;

namespace ParaphraseService.Api.Tests.Status;

public class TokenRateTests
{
    /// <summary>A clock the test moves by hand.</summary>
    private sealed class ManualTime : TimeProvider
    {
        public long Ticks { get; set; } = 1_000_000;
        public override long TimestampFrequency => TimeSpan.TicksPerSecond;
        public override long GetTimestamp() => Ticks;
        public void Advance(double seconds) => Ticks += (long)(seconds * TimeSpan.TicksPerSecond);
    }

    [Fact]
    public void CountsTokensOverTheWindowAndFallsToZeroWhenIdle()
    {
        var time = new ManualTime();
        var rate = new TokenRate(time, windowSeconds: 10);
        Assert.Equal(0, rate.PerSecond());

        // 20 seconds at 50 tokens per second, added as five steps of 10 tokens each second.
        for (var i = 0; i < 100; i++)
        {
            rate.Add(10);
            time.Advance(0.2);
        }
        Assert.InRange(rate.PerSecond(), 45, 55);

        time.Advance(5); // half the window idle
        Assert.InRange(rate.PerSecond(), 20, 30);
        time.Advance(10);
        Assert.Equal(0, rate.PerSecond());
    }

    [Fact]
    public void AYoungCounterDividesByTheTimeItHasRun()
    {
        var time = new ManualTime();
        var rate = new TokenRate(time, windowSeconds: 10);
        time.Advance(2);
        rate.Add(100);
        Assert.Equal(50, rate.PerSecond(), precision: 6); // 100 tokens in 2 s, not in 10
    }

    [Fact]
    public async Task IsSafeToAddFromOneThreadWhileOthersRead()
    {
        var rate = new TokenRate();
        using var stop = new CancellationTokenSource();
        var readers = Enumerable.Range(0, 2).Select(_ => Task.Run(() =>
        {
            while (!stop.IsCancellationRequested) Assert.True(rate.PerSecond() >= 0);
        })).ToArray();
        for (var i = 0; i < 100_000; i++) rate.Add(1);
        stop.Cancel();
        await Task.WhenAll(readers);
        Assert.True(rate.PerSecond() > 0);
    }
}

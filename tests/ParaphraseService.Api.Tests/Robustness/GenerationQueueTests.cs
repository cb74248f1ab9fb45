using Microsoft.Extensions.Options;
using ParaphraseService.Api.Scheduling;
using ParaphraseService.Model.Generation;

namespace ParaphraseService.Api.Tests.Robustness;

/// <summary>The line in front of the scheduler: whole requests, jobs that leave when they end, nothing lost.</summary>
public class GenerationQueueTests
{
    private static GenerationQueue Queue(int capacity) => new(Options.Create(new SchedulerOptions { MaxQueuedRequests = capacity }));

    private static GenerationJob Job(CancellationToken client = default, TimeSpan? timeout = null, bool background = false) =>
        new([1, 2], [new GenerationOptions { Greedy = true, MaxNewTokens = 2 }], null, timeout ?? TimeSpan.FromMinutes(5), client) { Background = background };

    [Fact]
    public void AnInteractiveJobIsPeekedBeforeBackgroundJobsThatCameFirst()
    {
        var queue = Queue(4);
        using var b1 = Job(background: true);
        using var b2 = Job(background: true);
        queue.TryEnqueue([b1, b2]);
        Assert.True(queue.TryPeek(out var head));
        Assert.Same(b1, head); // nothing interactive waits: the background lane's head

        using var interactive = Job();
        queue.TryEnqueue([interactive]);
        Assert.True(queue.TryPeek(out head));
        Assert.Same(interactive, head);
        Assert.True(queue.TryTake(head));
        Assert.True(queue.TryPeek(out head));
        Assert.Same(b1, head); // the background lane keeps its own order
        Assert.Equal((0, 2), (queue.Count, queue.BackgroundCount));
    }

    [Fact]
    public void BackgroundJobsNeverCountAgainstTheInteractiveLimit()
    {
        var queue = Queue(2);
        var background = Enumerable.Range(0, 10).Select(_ => Job(background: true)).ToList();
        Assert.Equal(EnqueueResult.Queued, queue.TryEnqueue(background));
        using var a = Job();
        using var b = Job();
        Assert.Equal(EnqueueResult.Queued, queue.TryEnqueue([a, b])); // the interactive lane is still empty: 2 fit
        using var c = Job();
        Assert.Equal(EnqueueResult.Full, queue.TryEnqueue([c]));
        Assert.Equal((2, 10), (queue.Count, queue.BackgroundCount));

        // A background job that ends while waiting leaves its lane; closing hands back both lanes.
        background[3].Dispose();
        Assert.Equal(9, queue.BackgroundCount);
        Assert.Equal(11, queue.Close().Count);
        foreach (var job in background) job.Dispose();
    }

    [Fact]
    public void ARequestIsQueuedWholeOrNotAtAll()
    {
        var queue = Queue(3);
        using var a = Job();
        Assert.Equal(EnqueueResult.Queued, queue.TryEnqueue([a]));
        using var b = Job();
        using var c = Job();
        using var d = Job();
        Assert.Equal(EnqueueResult.Full, queue.TryEnqueue([b, c, d]));
        Assert.Equal(1, queue.Count);
        Assert.Equal(EnqueueResult.Queued, queue.TryEnqueue([b, c]));
        Assert.Equal(3, queue.Count);
    }

    [Fact]
    public async Task AJobWhoseClientGoesAwayLeavesTheLineAndIsAnsweredAtOnce()
    {
        var queue = Queue(4);
        using var client = new CancellationTokenSource();
        using var a = Job(client.Token);
        using var b = Job();
        queue.TryEnqueue([a, b]);
        client.Cancel();
        Assert.Equal(1, queue.Count);
        var failure = await Assert.ThrowsAsync<JobFailedException>(() => a.Completion);
        Assert.Equal(JobFailure.Cancelled, failure.Failure);
    }

    [Fact]
    public void TakingAPeekedJobThatLeftMeanwhileNeverTakesTheNextOne()
    {
        // The scheduler peeks at the head, decides, then takes it; if the head's client went away in between, the job
        // now at the head must stay queued (taking "the head" would lose it: nobody would admit or answer it).
        var queue = Queue(4);
        using var client = new CancellationTokenSource();
        using var a = Job(client.Token);
        using var b = Job();
        queue.TryEnqueue([a]);
        queue.TryEnqueue([b]);
        Assert.True(queue.TryPeek(out var head));
        Assert.Same(a, head);
        client.Cancel();
        Assert.False(queue.TryTake(head));
        Assert.True(queue.TryPeek(out var next));
        Assert.Same(b, next);
        Assert.True(queue.TryTake(next));
        Assert.Equal(0, queue.Count);
    }

    [Fact]
    public async Task ADeadlineEndsAJobWhileItWaits()
    {
        var queue = Queue(2);
        using var a = Job(timeout: TimeSpan.FromMilliseconds(50));
        queue.TryEnqueue([a]);
        var failure = await Assert.ThrowsAsync<JobFailedException>(() => a.Completion.WaitAsync(TimeSpan.FromMinutes(1)));
        Assert.Equal(JobFailure.Timeout, failure.Failure);
        Assert.Equal(0, queue.Count);
    }

    [Fact]
    public async Task DisposingAJobThatHasNotEndedEndsItAndFreesItsPlace()
    {
        var queue = Queue(1);
        var a = Job();
        queue.TryEnqueue([a]);
        a.Dispose();
        Assert.Equal(0, queue.Count);
        await Assert.ThrowsAsync<JobFailedException>(() => a.Completion);
        using var b = Job();
        Assert.Equal(EnqueueResult.Queued, queue.TryEnqueue([b]));
    }

    [Fact]
    public void AClosedQueueTakesNothingAndHandsBackWhatWaited()
    {
        var queue = Queue(2);
        using var a = Job();
        queue.TryEnqueue([a]);
        Assert.Equal([a], queue.Close());
        using var b = Job();
        Assert.Equal(EnqueueResult.Closed, queue.TryEnqueue([b]));
    }
}

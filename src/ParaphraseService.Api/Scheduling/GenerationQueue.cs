using Microsoft.Extensions.Options;

namespace ParaphraseService.Api.Scheduling;

/// <summary>
/// The bounded line of jobs in front of the scheduler. A request's jobs (one per text) go in together or not at all,
/// so a full queue never leaves part of a request decoding for nobody; a job that ends while waiting (deadline,
/// client gone) leaves the line at once. Full means "try again later" (429), never waiting.
/// Two lanes: interactive requests, and background ones (batch lines, <see cref="GenerationJob.Background"/>), which
/// the scheduler takes only when no interactive job waits. The background lane is not bounded here (its producer, the
/// batch runner, keeps a bounded number of lines in it) and never counts against the interactive limit: a batch never
/// makes an interactive request see 429.
/// </summary>
public sealed class GenerationQueue(IOptions<SchedulerOptions> options)
{
    private readonly LinkedList<GenerationJob> _jobs = [];
    private readonly LinkedList<GenerationJob> _background = [];
    private readonly Dictionary<GenerationJob, LinkedListNode<GenerationJob>> _nodes = new(ReferenceEqualityComparer.Instance);
    private readonly Lock _gate = new();
    private readonly SemaphoreSlim _arrived = new(0, 1);
    private bool _closed;

    public int Capacity { get; } = options.Value.MaxQueuedRequests;

    /// <summary>Interactive jobs waiting (what <see cref="Capacity"/> bounds).</summary>
    public int Count
    {
        get
        {
            lock (_gate) return _jobs.Count;
        }
    }

    /// <summary>Background jobs (batch lines) waiting.</summary>
    public int BackgroundCount
    {
        get
        {
            lock (_gate) return _background.Count;
        }
    }

    /// <summary>Whether the queue takes no more jobs (the service is stopping).</summary>
    public bool IsClosed
    {
        get
        {
            lock (_gate) return _closed;
        }
    }

    /// <summary>Enqueues every job, or none when the interactive ones do not all fit or the queue is closed.</summary>
    public EnqueueResult TryEnqueue(IReadOnlyList<GenerationJob> jobs)
    {
        lock (_gate)
        {
            if (_closed)
                return EnqueueResult.Closed;
            if (_jobs.Count + jobs.Count(j => !j.Background) > Capacity)
                return EnqueueResult.Full;
            foreach (var job in jobs)
            {
                _nodes[job] = (job.Background ? _background : _jobs).AddLast(job);
                job.OnAbandoned = Remove;
                if (job.IsEnded) Remove(job);
            }
            Signal();
            return EnqueueResult.Queued;
        }
    }

    /// <summary>The job at the head, without taking it: the interactive lane's, else the background lane's.</summary>
    internal bool TryPeek(out GenerationJob job)
    {
        lock (_gate)
        {
            job = (_jobs.First ?? _background.First)?.Value!;
            return job is not null;
        }
    }

    /// <summary>
    /// Takes <paramref name="job"/> (one <see cref="TryPeek"/> returned) out of the line; false when it left meanwhile
    /// (its deadline passed or its client went away). Never another job: the head may have changed since the peek.
    /// </summary>
    internal bool TryTake(GenerationJob job)
    {
        lock (_gate)
        {
            if (!_nodes.ContainsKey(job)) return false;
            Remove(job);
        }
        Taken?.Invoke(job);
        return true;
    }

    /// <summary>A job left the line for a batch slot, in the order the scheduler takes them (tests watch the lanes' order).</summary>
    internal event Action<GenerationJob>? Taken;

    /// <summary>Completes when a job may be waiting (or at once when one is).</summary>
    internal async Task WaitAsync(CancellationToken cancellationToken)
    {
        lock (_gate)
            if (_jobs.Count + _background.Count > 0) return;
        await _arrived.WaitAsync(cancellationToken);
    }

    /// <summary>Takes no more jobs and hands back those still waiting.</summary>
    internal IReadOnlyList<GenerationJob> Close()
    {
        lock (_gate)
        {
            _closed = true;
            var left = _jobs.Concat(_background).ToList();
            foreach (var job in left) Remove(job);
            Signal();
            return left;
        }
    }

    private void Remove(GenerationJob job)
    {
        lock (_gate)
        {
            if (!_nodes.Remove(job, out var node)) return;
            node.List!.Remove(node);
            job.OnAbandoned = null;
        }
    }

    private void Signal()
    {
        if (_arrived.CurrentCount == 0) _arrived.Release();
    }
}

public enum EnqueueResult
{
    Queued,
    /// <summary>Not all of the request's jobs fit: none was queued (429).</summary>
    Full,
    /// <summary>The service is stopping (503).</summary>
    Closed,
}

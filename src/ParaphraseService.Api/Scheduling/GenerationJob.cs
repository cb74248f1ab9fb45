using System.Diagnostics;
using System.Threading.Channels;
using ParaphraseService.Api.Adapters;
using ParaphraseService.Model.Generation;

namespace ParaphraseService.Api.Scheduling;

/// <summary>A token produced for one candidate of a job.</summary>
public readonly record struct CandidateToken(int Candidate, int Token);

/// <summary>How a job ended, with one result per candidate when it completed.</summary>
public sealed record JobOutcome(IReadOnlyList<GenerationResult> Results, TimeSpan Queued, TimeSpan Generating);

/// <summary>
/// One text for the scheduler: a tokenized prompt, one set of options per candidate (each its own batch row), the
/// adapter to use, and when it must end. Tokens stream out through <see cref="Tokens"/>; the outcome, or why it
/// failed, through <see cref="Completion"/>. A job ends exactly once: completed by the scheduler, or failed by it, by
/// its deadline, or by its client going away; the last two end it at once from any thread, waiting in the queue or
/// running, and the scheduler frees its rows at its next step (<see cref="IsEnded"/>).
/// </summary>
public sealed class GenerationJob : IDisposable
{
    private readonly Channel<CandidateToken> _tokens = Channel.CreateUnbounded<CandidateToken>(new() { SingleWriter = true, SingleReader = true });
    private readonly TaskCompletionSource<JobOutcome> _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _deadline;
    private readonly CancellationToken _client;
    private readonly CancellationTokenRegistration _onEnd;
    private readonly long _enqueued = Stopwatch.GetTimestamp();
    private long _started;
    private bool _anyToken;

    /// <param name="timeout">From now until the job must have ended (504 after it).</param>
    /// <param name="client">The client's request: it going away ends the job.</param>
    public GenerationJob(IReadOnlyList<int> promptIds, IReadOnlyList<GenerationOptions> candidates, ResolvedAdapter? adapter,
        TimeSpan timeout, CancellationToken client)
    {
        PromptIds = promptIds;
        Candidates = candidates;
        Adapter = adapter;
        _client = client;
        _deadline = CancellationTokenSource.CreateLinkedTokenSource(client);
        _deadline.CancelAfter(timeout);
        _onEnd = _deadline.Token.Register(static state => ((GenerationJob)state!).Abandon(), this);
    }

    public IReadOnlyList<int> PromptIds { get; }
    public IReadOnlyList<GenerationOptions> Candidates { get; }
    public ResolvedAdapter? Adapter { get; }

    /// <summary>The request's trace id, logged with any failure so an operator can find what a client reports.</summary>
    public string TraceId { get; init; } = "";

    /// <summary>
    /// A batch line's job: it waits in the queue's background lane, is admitted only when no interactive job waits,
    /// and its rows stay within <see cref="SchedulerOptions.BackgroundRowShare"/>.
    /// </summary>
    public bool Background { get; init; }

    /// <summary>Whether the scheduler admitted the job (a background job that timed out still waiting is retried).</summary>
    internal bool HasStarted => Interlocked.Read(ref _started) != 0;

    public ChannelReader<CandidateToken> Tokens => _tokens.Reader;
    public Task<JobOutcome> Completion => _completion.Task;

    /// <summary>Completed, failed, past its deadline or given up by its client: nothing more is done for it.</summary>
    public bool IsEnded => _completion.Task.IsCompleted;

    /// <summary>Time since the job was created (it is enqueued right after).</summary>
    public TimeSpan Age => Stopwatch.GetElapsedTime(_enqueued);

    private volatile Action<GenerationJob>? _onAbandoned;

    /// <summary>
    /// Called after the job ended by its deadline or its client, so the queue it waits in removes it. Set by the queue,
    /// which checks <see cref="IsEnded"/> after setting it: a job ending meanwhile is removed by one or the other.
    /// </summary>
    internal Action<GenerationJob>? OnAbandoned { get => _onAbandoned; set => _onAbandoned = value; }

    internal void MarkStarted() => Interlocked.Exchange(ref _started, Stopwatch.GetTimestamp());

    /// <summary>Hands a token to the reader; true for the job's first token.</summary>
    internal bool Publish(CandidateToken token)
    {
        _tokens.Writer.TryWrite(token);
        var first = !_anyToken;
        _anyToken = true;
        return first;
    }

    internal void Succeed(IReadOnlyList<GenerationResult> results)
    {
        if (_completion.TrySetResult(new JobOutcome(results, Stopwatch.GetElapsedTime(_enqueued, _started == 0 ? _enqueued : _started),
                _started == 0 ? TimeSpan.Zero : Stopwatch.GetElapsedTime(_started))))
            _tokens.Writer.TryComplete();
    }

    internal void Fail(JobFailedException reason)
    {
        if (_completion.TrySetException(reason))
            _tokens.Writer.TryComplete(reason);
    }

    private void Abandon() => Abandon(_client.IsCancellationRequested
        ? new JobFailedException(JobFailure.Cancelled, "The client went away.")
        : new JobFailedException(JobFailure.Timeout, "The request did not finish before its deadline (Scheduler:RequestTimeoutSeconds)."));

    private void Abandon(JobFailedException reason)
    {
        Fail(reason);
        OnAbandoned?.Invoke(this);
    }

    /// <summary>
    /// The HTTP layer is done with the job (its response is written, or its handler ended early): a job still queued
    /// or running ends now, so no row decodes for nobody; the deadline's timer stops.
    /// </summary>
    public void Dispose()
    {
        _onEnd.Dispose();
        if (!IsEnded)
            Abandon(new JobFailedException(JobFailure.Cancelled, "The request ended before the job did."));
        _deadline.Dispose();
    }
}

/// <summary>Why the scheduler did not finish a job; the HTTP layer maps it to a status code.</summary>
public sealed class JobFailedException(JobFailure failure, string message, Exception? inner = null, string? field = null) : Exception(message, inner)
{
    public JobFailure Failure { get; } = failure;

    /// <summary>The request's field at fault, where one is (e.g. <c>avoid</c>); null otherwise.</summary>
    public string? Field { get; } = field;
}

public enum JobFailure
{
    /// <summary>The client went away (499).</summary>
    Cancelled,
    /// <summary>Past its deadline, queued or running (504).</summary>
    Timeout,
    /// <summary>The request itself is at fault (400).</summary>
    InvalidRequest,
    /// <summary>The service is stopping (503).</summary>
    ShuttingDown,
    /// <summary>No model is loaded, or it failed to load (503).</summary>
    ModelUnavailable,
    /// <summary>The job's adapter made the model's output not finite for its text (422): its numbers overflow.</summary>
    AdapterFailed,
    /// <summary>Something failed on the server's side while serving this job (500, logged with the trace id).</summary>
    Internal,
}

using System.Diagnostics;
using System.Threading.Channels;
using ParaphraseService.Model.Generation;

namespace ParaphraseService.Api.Scheduling;

/// <summary>A token produced for one candidate of a job.</summary>
public readonly record struct CandidateToken(int Candidate, int Token);

/// <summary>How a job ended, with one result per candidate when it completed.</summary>
public sealed record JobOutcome(IReadOnlyList<GenerationResult> Results, TimeSpan Queued, TimeSpan Generating);

/// <summary>
/// One request for the scheduler: a tokenized prompt, one set of options per candidate (each its own row), the adapter
/// to use, a deadline and the client's cancellation. Tokens stream out through <see cref="Tokens"/>; the outcome
/// (or the reason it failed) through <see cref="Completion"/>.
/// </summary>
public sealed class GenerationJob(IReadOnlyList<int> promptIds, IReadOnlyList<GenerationOptions> candidates, string? adapter,
    DateTimeOffset deadline, CancellationToken cancellation)
{
    private readonly Channel<CandidateToken> _tokens = Channel.CreateUnbounded<CandidateToken>(new() { SingleWriter = true, SingleReader = true });
    private readonly TaskCompletionSource<JobOutcome> _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly long _enqueued = Stopwatch.GetTimestamp();
    private long _started;

    public IReadOnlyList<int> PromptIds { get; } = promptIds;
    public IReadOnlyList<GenerationOptions> Candidates { get; } = candidates;
    public string? Adapter { get; } = adapter;
    public DateTimeOffset Deadline { get; } = deadline;
    public CancellationToken Cancellation { get; } = cancellation;

    public ChannelReader<CandidateToken> Tokens => _tokens.Reader;
    public Task<JobOutcome> Completion => _completion.Task;

    private bool _anyToken;

    /// <summary>Time since the job was enqueued.</summary>
    public TimeSpan Age => Stopwatch.GetElapsedTime(_enqueued);

    internal void MarkStarted() => _started = Stopwatch.GetTimestamp();

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
        _tokens.Writer.TryComplete();
        _completion.TrySetResult(new JobOutcome(results, Stopwatch.GetElapsedTime(_enqueued, _started), Stopwatch.GetElapsedTime(_started)));
    }

    internal void Fail(Exception reason)
    {
        _tokens.Writer.TryComplete(reason);
        _completion.TrySetException(reason);
    }
}

/// <summary>Why the scheduler did not finish a job; the HTTP layer maps it to a status code.</summary>
public sealed class JobFailedException(JobFailure failure, string message) : Exception(message)
{
    public JobFailure Failure { get; } = failure;
}

public enum JobFailure
{
    Cancelled,
    Timeout,
    UnknownAdapter,
    InvalidRequest,
    ShuttingDown,
    ModelUnavailable,
}

using System.Threading.Channels;
using ParaphraseService.Model.Loading;

namespace ParaphraseService.Api.Scheduling;

/// <summary>
/// Small pieces of work that need the model but come from other threads (an admin loading an adapter): the scheduler
/// owns the model, so it runs them on its own thread between two decode steps, and the caller awaits the result.
/// </summary>
public sealed class ModelThreadCommands
{
    private readonly Channel<Command> _pending = Channel.CreateUnbounded<Command>();

    /// <summary>Runs <paramref name="action"/> on the scheduler's thread; its exception, if any, is the task's.</summary>
    public Task<T> RunAsync<T>(Func<ModelThreadContext, T> action)
    {
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        var command = new Command(model => done.TrySetResult(action(model)), e => done.TrySetException(e));
        if (!_pending.Writer.TryWrite(command))
            done.TrySetException(new JobFailedException(JobFailure.ShuttingDown, "The service is shutting down."));
        return done.Task;
    }

    internal bool HasPending => _pending.Reader.Count > 0;

    internal Task WaitAsync(CancellationToken cancellationToken) => _pending.Reader.WaitToReadAsync(cancellationToken).AsTask();

    /// <summary>Runs what is waiting (on the scheduler's thread).</summary>
    internal void RunPending(ModelThreadContext context)
    {
        while (_pending.Reader.TryRead(out var command))
        {
            try
            {
                command.Run(context);
            }
            catch (Exception e)
            {
                command.Fail(e);
            }
        }
    }

    /// <summary>The scheduler is stopping: what waits, and what comes later, fails.</summary>
    internal void Close()
    {
        _pending.Writer.TryComplete();
        while (_pending.Reader.TryRead(out var command))
            command.Fail(new JobFailedException(JobFailure.ShuttingDown, "The service is shutting down."));
    }

    private sealed record Command(Action<ModelThreadContext> Run, Action<Exception> Fail);
}

/// <summary>What a command sees on the scheduler's thread: the model, and the adapters running sequences use.</summary>
public sealed record ModelThreadContext(LoadedModel Model, IReadOnlySet<string> AdaptersInUse);

using ParaphraseService.Model.Loading;

namespace ParaphraseService.Api.Scheduling;

/// <summary>
/// Work that needs the model but is not a request (fine-tunes), run by the <see cref="Scheduler"/> on its own thread in
/// bounded slices between decode steps: the scheduler owns the model, so nothing else may touch it.
/// </summary>
public interface IModelBackgroundWork
{
    /// <summary>Whether a slice is waiting to run (read on the scheduler's thread).</summary>
    bool HasWork { get; }

    /// <summary>Completes when work may have arrived, to wake an idle scheduler.</summary>
    Task WaitForWorkAsync(CancellationToken cancellationToken);

    /// <summary>Runs one bounded piece of work on the model. Must not throw.</summary>
    void RunSlice(LoadedModel model);

    /// <summary>The scheduler is stopping: release what the work holds on the model (on the scheduler's thread).</summary>
    void Stop();
}

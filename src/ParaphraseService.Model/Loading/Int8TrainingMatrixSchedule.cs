using ParaphraseService.Model.Checkpoints;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Loading;

/// <summary>What one call of <see cref="Int8TrainingMatrixSchedule.BeforeTraining"/> did.</summary>
public enum Int8TrainingPreparation
{
    /// <summary>Nothing to do: jobs may train now (every int8 layer passes gradients), or no job waits to start.</summary>
    Ready,

    /// <summary>The checkpoint was opened and the first layer's matrix derived; more follow on later calls.</summary>
    Started,

    /// <summary>One more layer's matrix was derived; jobs wait until <see cref="Ready"/>.</summary>
    Derived,
}

/// <summary>
/// When the int8 matrices for training (<see cref="Int8TrainingMatrices"/>) exist on a model that serves: derived from
/// the checkpoint before the first job's first step, one layer per call so whoever shares the model (the service's
/// scheduler) runs its own work between calls; released as soon as no job is left, because serving alone needs one
/// byte per int8 weight and training two. Not thread-safe: the owner of the model calls it between forward passes.
/// </summary>
/// <param name="openCheckpoint">Opens the checkpoint the model was loaded from (<see cref="LoadedModel.OpenCheckpoint"/>);
/// null when there is none, which only matters if some layer needs a matrix.</param>
public sealed class Int8TrainingMatrixSchedule(nn.Module model, Func<ICheckpointSource>? openCheckpoint) : IDisposable
{
    // Open from the first layer derived until the last, so a 169-layer model opens its shards once.
    private ICheckpointSource? _checkpoint;

    /// <summary>The int8 layers that cannot pass gradients yet.</summary>
    public int LayersMissing => Int8TrainingMatrices.Missing(model).Count;

    /// <summary>
    /// Call once per slice before a job would take a step. With jobs waiting to start and none running, derives the
    /// matrix of one more layer that lacks it (the slice is then used up: no job trains in it); otherwise, or once every
    /// layer has its matrix, does nothing and returns <see cref="Int8TrainingPreparation.Ready"/>.
    /// </summary>
    /// <exception cref="Int8TrainingMatricesException">The matrices cannot be derived (no checkpoint, or it changed since
    /// loading); every matrix derived so far is released first. A later call starts over.</exception>
    public Int8TrainingPreparation BeforeTraining(bool jobsRunning, bool jobsWaiting)
    {
        if (jobsRunning || !jobsWaiting) return Int8TrainingPreparation.Ready;
        var missing = Int8TrainingMatrices.Missing(model);
        if (missing.Count == 0)
        {
            CloseCheckpoint();
            return Int8TrainingPreparation.Ready;
        }
        var started = _checkpoint is null;
        try
        {
            _checkpoint ??= openCheckpoint?.Invoke()
                ?? throw new InvalidOperationException("The model has no checkpoint to derive the int8 matrices for training from.");
            var (key, layer) = missing[0];
            Int8TrainingMatrices.Attach(layer, key, _checkpoint);
        }
        catch (Exception e) when (e is CheckpointException or IOException or InvalidOperationException or UnauthorizedAccessException)
        {
            CloseCheckpoint();
            Int8TrainingMatrices.Release(model);
            throw new Int8TrainingMatricesException($"The base weights could not be prepared for training: {e.Message}", e);
        }
        return started ? Int8TrainingPreparation.Started : Int8TrainingPreparation.Derived;
    }

    /// <summary>
    /// Releases every matrix derived for training when <paramref name="jobsLeft"/> is false (none running, none
    /// waiting): call it whenever a job ends, before its end is made known, so whoever sees the end sees the memory
    /// back. Returns the count released.
    /// </summary>
    public int AfterTraining(bool jobsLeft)
    {
        if (jobsLeft) return 0;
        CloseCheckpoint();
        return Int8TrainingMatrices.Release(model);
    }

    /// <summary>Closes the checkpoint if open; the matrices stay as they are (a stopping service frees the model anyway).</summary>
    public void Dispose() => CloseCheckpoint();

    private void CloseCheckpoint()
    {
        _checkpoint?.Dispose();
        _checkpoint = null;
    }
}

/// <summary>The int8 matrices a fine-tune needs cannot be derived; the message says why.</summary>
public sealed class Int8TrainingMatricesException(string message, Exception? inner = null) : Exception(message, inner);

using Microsoft.Extensions.Options;
using ParaphraseService.Api.Adapters;
using ParaphraseService.Api.Hosting;
using ParaphraseService.Model.Generation;
using ParaphraseService.Model.Loading;

namespace ParaphraseService.Api.Scheduling;

/// <summary>
/// The one component that runs the model. Each iteration it admits queued jobs into free batch slots (continuous
/// batching: a job joins at the next step, not after the current batch), runs one decode step for every running
/// sequence, hands each new token to its job, and retires sequences that finish or whose job ended (deadline, client
/// gone). Requests for different adapters share one batch; the <see cref="AdapterManager"/> says which adapters sit
/// on the model. When nothing is decoded, background work (a fine-tune) gets the model in bounded slices.
/// Nothing a job carries can stop the loop: a failure fails the jobs it concerns (one row's sampling: that job; a
/// batched forward pass: the jobs of that pass), is logged with their trace ids, and the loop goes on.
/// HTTP code never touches tensors: it enqueues a <see cref="GenerationJob"/> and reads its tokens and outcome.
/// </summary>
public sealed class Scheduler(
    ModelHost modelHost, GenerationQueue queue, AdapterManager adapters, ModelThreadCommands commands, SchedulerHealth health,
    ServiceMetrics metrics, IOptions<SchedulerOptions> options, ILogger<Scheduler> logger, IModelBackgroundWork? background = null)
    : BackgroundService
{
    private readonly Dictionary<int, (GenerationJob Job, int Candidate)> _slots = [];
    private readonly Dictionary<GenerationJob, GenerationResult?[]> _running = new(ReferenceEqualityComparer.Instance);

    /// <summary>Sequences being decoded right now (for metrics, the status page and tests).</summary>
    public int ActiveRows => Volatile.Read(ref _activeRows);
    private int _activeRows;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        LoadedModel model;
        try
        {
            model = await modelHost.Ready.WaitAsync(stoppingToken);
        }
        catch (OperationCanceledException)
        {
            return;
        }
        catch (Exception e)
        {
            // Requests are refused with 503 while no model is loaded; the loader logged why.
            logger.LogError("The scheduler has no model to run: {Error}", e.Message);
            return;
        }
        var o = options.Value;
        ContinuousBatcher batcher;
        try
        {
            batcher = new ContinuousBatcher(model.Model, model.Tokenizer, o.MaxBatchRows, o.MaxSequenceTokens, o.Speculation.ToModel());
        }
        catch (Exception e)
        {
            health.Stopped(e);
            logger.LogCritical(e, "The scheduler could not set up its batch; no request can be served");
            return;
        }
        using (batcher)
        {
            try
            {
                // The loop does CPU-bound tensor work between awaits; it starts on a thread of its own.
                await Task.Factory.StartNew(() => Loop(batcher, model, stoppingToken), stoppingToken, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
            }
            catch (Exception e)
            {
                // The loop catches what its iterations throw; this last resort keeps the host up and says it is not ready.
                health.Stopped(e);
                logger.LogCritical(e, "The scheduler loop stopped");
            }
            finally
            {
                // Graceful shutdown: what runs is cancelled cleanly, what waits is told the service is stopping.
                var stopping = new JobFailedException(JobFailure.ShuttingDown, "The service is shutting down.");
                foreach (var job in _running.Keys.ToList())
                    Finish(job, batcher, stopping);
                foreach (var job in queue.Close())
                    job.Fail(stopping);
                commands.Close();
                RunBackground(model, stop: true);
            }
        }
    }

    private async Task Loop(ContinuousBatcher batcher, LoadedModel model, CancellationToken stoppingToken)
    {
        // Serving first: background work (a fine-tune) runs once nothing has been decoded for a moment, so requests that
        // follow each other closely never wait for it; under sustained load it still gets a slice now and then.
        var idleBeforeWork = TimeSpan.FromMilliseconds(options.Value.TrainingIdleMilliseconds);
        var maxWorkPause = TimeSpan.FromSeconds(options.Value.MaxTrainingPauseSeconds);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var lastServed = -idleBeforeWork; // background work may start at once
        var lastSlice = TimeSpan.Zero;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                if (batcher.ActiveCount == 0 && !commands.HasPending && !queue.TryPeek(out _))
                {
                    var workDueIn = background?.HasWork == true ? lastServed + idleBeforeWork - clock.Elapsed : Timeout.InfiniteTimeSpan;
                    if (workDueIn == Timeout.InfiniteTimeSpan || workDueIn > TimeSpan.Zero)
                    {
                        // Idle: wake for a job, a command, background work arriving, or background work falling due.
                        using var wake = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
                        var work = workDueIn == Timeout.InfiniteTimeSpan
                            ? background?.WaitForWorkAsync(wake.Token) ?? Task.Delay(Timeout.Infinite, wake.Token)
                            : Task.Delay(workDueIn, wake.Token);
                        await Task.WhenAny(queue.WaitAsync(wake.Token), commands.WaitAsync(wake.Token), work);
                        wake.Cancel();
                        if (stoppingToken.IsCancellationRequested) return;
                    }
                }
                // Stale copies go first, so an adapter published and then loaded by a command is not dropped after.
                adapters.ReleaseStale(model, AdaptersInUse());
                commands.RunPending(new ModelThreadContext(model, AdaptersInUse()));
                DropEnded(batcher);
                Admit(batcher, model);
                if (batcher.ActiveCount == 0)
                {
                    if (background?.HasWork == true && clock.Elapsed - lastServed >= idleBeforeWork)
                    {
                        RunBackground(model);
                        lastSlice = clock.Elapsed;
                    }
                    continue;
                }
                // Sustained load: background work gets one slice per pause, so a fine-tune never starves.
                if (background?.HasWork == true && clock.Elapsed - lastSlice >= maxWorkPause)
                {
                    RunBackground(model);
                    lastSlice = clock.Elapsed;
                }
                Step(batcher, model);
                lastServed = clock.Elapsed;
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                // A fault in the loop's own bookkeeping: the jobs in flight fail with it, the loop goes on.
                health.StepFailed(e);
                logger.LogError(e, "A scheduler iteration failed; the {Count} running request(s) failed with it", _running.Count);
                foreach (var job in _running.Keys.ToList())
                    Finish(job, batcher, Internal("The server failed while generating.", e));
                // A fault that repeats at once must not spin a core: the next iteration waits a moment.
                await Task.Delay(TimeSpan.FromMilliseconds(100), stoppingToken).ContinueWith(_ => { }, TaskScheduler.Default);
            }
        }
    }

    /// <summary>One batched step; each failed row fails its job alone, a failed forward pass the jobs in it.</summary>
    private void Step(ContinuousBatcher batcher, LoadedModel model)
    {
        var rows = batcher.ActiveCount;
        var before = batcher.Stats;
        var updates = batcher.Step();
        var after = batcher.Stats;
        var error = batcher.LastStepError;
        // A step counts as failed for health when its forward pass failed, or every row in it did and not all of them by
        // their own fault (NaN logits from the model itself): an adapter whose numbers overflow, or a request that bans
        // every token, fails its own requests and must not take the replica out of service.
        var rowsFailed = updates.Count > 0 && updates.All(u => u.Error is not null) && updates.Any(u => RowFailure(u.Error!, u.Slot).Failure == JobFailure.Internal);
        if ((error ?? (rowsFailed ? updates[0].Error : null)) is { } stepError)
            health.StepFailed(stepError);
        else
            health.StepSucceeded();
        if (error is not null)
        {
            var failed = updates.Where(u => u.Error == error && _slots.ContainsKey(u.Slot)).Select(u => _slots[u.Slot].Job).Distinct().ToList();
            logger.LogError(error, "A batched forward pass failed; its requests failed with it: {TraceIds}", string.Join(", ", failed.Select(j => j.TraceId)));
            // An adapter may be what broke: it is read again from its files on its next use (once no running row uses it).
            foreach (var name in failed.Where(j => j.Adapter is not null).Select(j => j.Adapter!.Name).Distinct())
                adapters.Evict(name);
        }
        metrics.Step(rows, updates.Count(u => u.Error is null), after.Minus(before));
        foreach (var update in updates)
        {
            if (!_slots.TryGetValue(update.Slot, out var entry))
                continue; // its job already ended
            var (job, candidate) = entry;
            if (update.Error is { } rowError)
            {
                var failure = rowError == error ? Internal("The server failed while generating this text.", rowError) : RowFailure(rowError, update.Slot);
                _slots.Remove(update.Slot);
                if (rowError != error)
                    logger.LogError(rowError, "Generating for request {TraceId} failed", job.TraceId);
                Finish(job, batcher, failure);
                continue;
            }
            if (job.Publish(new CandidateToken(candidate, update.Token)))
                metrics.FirstToken(job.Age);
            if (!update.Finished) continue;
            _slots.Remove(update.Slot);
            var results = _running[job];
            results[candidate] = update.Result;
            if (results.All(r => r is not null))
            {
                _running.Remove(job);
                metrics.Completed(job.Age);
                job.Succeed(results!);
            }
        }
        PublishActiveRows();
    }

    private void PublishActiveRows()
    {
        Volatile.Write(ref _activeRows, _slots.Count);
        metrics.ActiveRows = _slots.Count;
    }

    /// <summary>
    /// Moves waiting jobs into free slots, in arrival order, as long as a whole job fits. Interactive jobs come first: a
    /// background job (a batch line) is peeked only when none waits, and is admitted only within its share of the rows.
    /// </summary>
    private void Admit(ContinuousBatcher batcher, LoadedModel model)
    {
        while (queue.TryPeek(out var job))
        {
            if (!job.IsEnded)
            {
                if (job.Candidates.Count > batcher.FreeSlots)
                    return;
                if (job.Background && !BackgroundFits(job))
                    return;
                // The head waits until a running sequence frees an adapter it could unload.
                if (job.Adapter is { } wanted && !AdapterManager.HasRoomFor(wanted, model, AdaptersInUse()))
                    return;
            }
            if (!queue.TryTake(job) || job.IsEnded)
                continue;
            try
            {
                var lora = job.Adapter is null ? null : adapters.Acquire(job.Adapter, model, AdaptersInUse());
                var slots = batcher.AdmitGroup(job.PromptIds, job.Candidates, lora);
                job.MarkStarted();
                _running[job] = new GenerationResult?[slots.Count];
                for (var i = 0; i < slots.Count; i++)
                    _slots[slots[i]] = (job, i);
                PublishActiveRows();
                if (job.Adapter is not null)
                    adapters.RecordServed(job.Adapter.Name);
            }
            catch (ArgumentException e)
            {
                // The batch's own checks (prompt and token budget): the request's fault, though the edge checks them too.
                job.Fail(new JobFailedException(JobFailure.InvalidRequest, e.Message, e));
            }
            catch (Exception e)
            {
                logger.LogError(e, "Admitting request {TraceId} failed", job.TraceId);
                job.Fail(Internal(job.Adapter is { } a ? $"The adapter '{a.Name}' could not be loaded: {e.Message}" : "The server failed to start generating.", e));
            }
        }
    }

    /// <summary>Within the background share of rows, or alone when the job needs more than the share.</summary>
    private bool BackgroundFits(GenerationJob job)
    {
        var running = _slots.Values.Count(s => s.Job.Background);
        return running == 0 || running + job.Candidates.Count <= options.Value.MaxBackgroundRows;
    }

    /// <summary>Frees the slots of jobs that ended while running (deadline passed, client gone).</summary>
    private void DropEnded(ContinuousBatcher batcher)
    {
        if (_running.Count == 0) return;
        foreach (var job in _running.Keys.Where(j => j.IsEnded).ToList())
            Finish(job, batcher, new JobFailedException(JobFailure.Cancelled, "The request ended."));
    }

    private void Finish(GenerationJob job, ContinuousBatcher batcher, JobFailedException reason)
    {
        foreach (var slot in _slots.Where(s => ReferenceEquals(s.Value.Job, job)).Select(s => s.Key).ToList())
        {
            batcher.Cancel(slot);
            _slots.Remove(slot);
        }
        _running.Remove(job);
        job.Fail(reason);
        PublishActiveRows();
    }

    private HashSet<string> AdaptersInUse() =>
        _running.Keys.Where(j => j.Adapter is not null).Select(j => j.Adapter!.Name).ToHashSet(StringComparer.Ordinal);

    /// <summary>A slice of background work (or its stop); its failure is logged and never reaches the loop.</summary>
    private void RunBackground(LoadedModel model, bool stop = false)
    {
        if (background is null) return;
        try
        {
            if (stop) background.Stop();
            else background.RunSlice(model);
        }
        catch (Exception e)
        {
            logger.LogError(e, "Background work on the model failed");
        }
    }

    private static JobFailedException Internal(string message, Exception cause) => new(JobFailure.Internal, message, cause);

    /// <summary>
    /// How a row's own failure is answered: its adapter made its logits NaN or infinite (422), its banned text left no
    /// token (400), or the server failed (500). Before the row's slot is released.
    /// </summary>
    private JobFailedException RowFailure(Exception error, int slot) => error switch
    {
        SamplingException { NotFinite: true } when _slots.TryGetValue(slot, out var entry) && entry.Job.Adapter is { } adapter =>
            new(JobFailure.AdapterFailed, $"The adapter '{adapter.Name}' made the model's output for this text not finite (NaN or infinity): " +
                "its numbers overflow. Use another adapter, or ask an administrator to replace this one.", error),
        SamplingException { NotFinite: false } => new(JobFailure.InvalidRequest, $"{error.Message} Avoid fewer terms.", error, field: "avoid"),
        _ => Internal("The server failed while generating this text.", error),
    };
}

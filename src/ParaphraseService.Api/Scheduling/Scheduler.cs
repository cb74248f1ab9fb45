using System.Threading.Channels;
using Microsoft.Extensions.Options;
using ParaphraseService.Api.Hosting;
using ParaphraseService.Model.Generation;
using ParaphraseService.Model.Loading;
using ParaphraseService.Model.Checkpoints;
using ParaphraseService.Model.Lora;
using ParaphraseService.Model.Lora.Peft;

namespace ParaphraseService.Api.Scheduling;

/// <summary>
/// The one component that runs the model. It takes jobs from the queue into free batch slots at every iteration
/// (continuous batching: a job joins at the next step, not after the current batch), runs one decode step for every
/// running sequence, hands each new token to its job, and retires sequences that finish, run past their deadline or
/// whose client went away. Requests for different adapters share one batch. HTTP code never touches tensors: it
/// enqueues a <see cref="GenerationJob"/> and reads its tokens and outcome.
/// </summary>
public sealed class Scheduler(
    ModelHost modelHost, GenerationQueue queue, IAdapterFolders adapterFolders, ResidentAdapters resident, ServiceMetrics metrics,
    IOptions<SchedulerOptions> options, ILogger<Scheduler> logger, IModelBackgroundWork? background = null)
    : BackgroundService
{
    private readonly Dictionary<int, (GenerationJob Job, int Candidate)> _slots = [];
    private readonly Dictionary<GenerationJob, GenerationResult?[]> _running = [];
    // Adapters replaced or deleted in the store; their resident copies are dropped by the loop, which owns the registry.
    private readonly System.Collections.Concurrent.ConcurrentQueue<string> _changed = new();
    // Admin load/unload requests, carried out by the loop between steps (it owns the registry).
    private readonly Channel<(string Name, bool Load, TaskCompletionSource Done)> _commands = Channel.CreateUnbounded<(string, bool, TaskCompletionSource)>();

    /// <summary>Makes an adapter resident now, between two decode steps.</summary>
    public Task LoadAdapterAsync(string name) => Command(name, load: true);

    /// <summary>Frees a resident adapter once no running sequence uses it.</summary>
    public Task UnloadAdapterAsync(string name) => Command(name, load: false);

    private Task Command(string name, bool load)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _commands.Writer.TryWrite((name, load, done));
        return done.Task;
    }

    /// <summary>Sequences being decoded right now (for metrics and the status page).</summary>
    public int ActiveRows => _slots.Count;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        LoadedModel model;
        try
        {
            model = await modelHost.Ready.WaitAsync(stoppingToken);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            FailQueued(JobFailure.ModelUnavailable, $"The model could not be loaded: {e.Message}");
            return;
        }
        catch (OperationCanceledException)
        {
            return;
        }
        var o = options.Value;
        if (adapterFolders is Adapters.StoreAdapterFolders store)
            store.Changed += _changed.Enqueue;
        using var batcher = new ContinuousBatcher(model.Model, model.Tokenizer, o.MaxBatchRows, o.MaxSequenceTokens);
        try
        {
            // The loop does CPU-bound tensor work between awaits; it runs on its own thread.
            await Task.Factory.StartNew(() => Loop(batcher, model, stoppingToken), stoppingToken, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        finally
        {
            // Graceful shutdown: what runs is cancelled cleanly, what waits is told the service is stopping.
            foreach (var job in _running.Keys.ToList())
                Finish(job, batcher, new JobFailedException(JobFailure.ShuttingDown, "The service is shutting down."));
            background?.Stop();
            queue.Close();
            FailQueued(JobFailure.ShuttingDown, "The service is shutting down.");
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
            if (batcher.ActiveCount == 0 && _commands.Reader.Count == 0 && !queue.Reader.TryPeek(out _))
            {
                var workDueIn = background?.HasWork == true ? lastServed + idleBeforeWork - clock.Elapsed : Timeout.InfiniteTimeSpan;
                if (workDueIn == Timeout.InfiniteTimeSpan || workDueIn > TimeSpan.Zero)
                {
                    // Idle: wake for a job, an admin command, background work arriving, or background work falling due.
                    using var wake = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
                    var job = queue.Reader.WaitToReadAsync(wake.Token).AsTask();
                    var command = _commands.Reader.WaitToReadAsync(wake.Token).AsTask();
                    var work = workDueIn == Timeout.InfiniteTimeSpan
                        ? background?.WaitForWorkAsync(wake.Token) ?? Task.Delay(Timeout.Infinite, wake.Token)
                        : Task.Delay(workDueIn, wake.Token);
                    var first = await Task.WhenAny(job, command, work);
                    wake.Cancel();
                    if (stoppingToken.IsCancellationRequested) return;
                    if (first == job && !await job)
                        return;
                }
            }
            RunCommands(model);
            DropChanged(model);
            Admit(batcher, model);
            DropAbandoned(batcher);
            if (batcher.ActiveCount == 0)
            {
                if (background?.HasWork == true && clock.Elapsed - lastServed >= idleBeforeWork)
                {
                    background.RunSlice(model);
                    lastSlice = clock.Elapsed;
                }
                continue;
            }
            // Sustained load: background work gets one slice per pause, so a fine-tune never starves.
            if (background?.HasWork == true && clock.Elapsed - lastSlice >= maxWorkPause)
            {
                background.RunSlice(model);
                lastSlice = clock.Elapsed;
            }
            var rows = batcher.ActiveCount;
            var updates = batcher.Step();
            metrics.Step(rows, updates.Count);
            foreach (var update in updates)
            {
                var (job, candidate) = _slots[update.Slot];
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
            metrics.ActiveRows = _slots.Count;
            lastServed = clock.Elapsed;
        }
    }

    /// <summary>Moves waiting jobs into free slots, in arrival order, as long as a whole job fits.</summary>
    private void Admit(ContinuousBatcher batcher, LoadedModel model)
    {
        while (queue.Reader.TryPeek(out var job) && job.Candidates.Count <= batcher.FreeSlots && AdapterRoomFor(job, model))
        {
            queue.Reader.TryRead(out _);
            if (job.Cancellation.IsCancellationRequested)
            {
                job.Fail(new JobFailedException(JobFailure.Cancelled, "The client went away."));
                continue;
            }
            if (DateTimeOffset.UtcNow > job.Deadline)
            {
                job.Fail(new JobFailedException(JobFailure.Timeout, "The request waited past its deadline."));
                continue;
            }
            try
            {
                var adapter = job.Adapter is null ? null : Resolve(job.Adapter, model);
                var slots = batcher.AdmitGroup(job.PromptIds, job.Candidates, adapter);
                job.MarkStarted();
                _running[job] = new GenerationResult?[slots.Count];
                for (var i = 0; i < slots.Count; i++)
                    _slots[slots[i]] = (job, i);
                if (job.Adapter is not null)
                {
                    adapterFolders.RecordRequest(job.Adapter);
                    metrics.AdapterRequest(job.Adapter);
                }
            }
            catch (Exception e) when (e is ArgumentException or JobFailedException or AdapterValidationException or CheckpointException)
            {
                job.Fail(e as JobFailedException ?? new JobFailedException(JobFailure.InvalidRequest, e.Message));
            }
        }
    }

    /// <summary>A resident adapter, loading it from the store when needed.</summary>
    private LoraAdapter Resolve(string name, LoadedModel model)
    {
        var registry = model.Adapters ?? throw new JobFailedException(JobFailure.UnknownAdapter, "This model was loaded without LoRA support.");
        if (registry.Get(name) is { } resident)
            return resident;
        if (!adapterFolders.TryGetFolder(name, out var folder))
            throw new JobFailedException(JobFailure.UnknownAdapter, $"No adapter named '{name}'.");
        var (adapter, evicted, _) = registry.LoadFolder(folder, name, pinned: InUse());
        foreach (var gone in evicted)
            logger.LogInformation("Unloaded adapter {Adapter} to make room for {Loaded}", gone, name);
        PublishResident(model);
        return adapter;
    }

    private void RunCommands(LoadedModel model)
    {
        while (_commands.Reader.TryRead(out var command))
        {
            try
            {
                if (command.Load)
                    Resolve(command.Name, model);
                else if (InUse().Contains(command.Name))
                    _changed.Enqueue(command.Name); // unloaded as soon as its sequences finish
                else
                    model.Adapters?.Unload(command.Name);
                PublishResident(model);
                command.Done.TrySetResult();
            }
            catch (Exception e) when (e is JobFailedException or AdapterValidationException or CheckpointException or InvalidOperationException)
            {
                command.Done.TrySetException(e as JobFailedException ?? new JobFailedException(JobFailure.InvalidRequest, e.Message));
            }
        }
    }

    private void PublishResident(LoadedModel model) => resident.Set(model.Adapters?.List().Select(a => a.Name) ?? []);

    /// <summary>Unloads resident copies of adapters that changed on disk, once no running sequence uses them.</summary>
    private void DropChanged(LoadedModel model)
    {
        // Runs at every step: nothing to do, nothing allocated.
        if (_changed.IsEmpty || model.Adapters is not { } registry) return;
        var inUse = InUse();
        var later = new List<string>();
        var dropped = false;
        while (_changed.TryDequeue(out var name))
        {
            if (inUse.Contains(name)) later.Add(name);
            else if (registry.Unload(name))
            {
                dropped = true;
                logger.LogInformation("Adapter {Adapter} changed on disk; its resident copy was dropped", name);
            }
        }
        foreach (var name in later) _changed.Enqueue(name);
        if (dropped) PublishResident(model);
    }

    private HashSet<string> InUse() => _running.Keys.Where(j => j.Adapter is not null).Select(j => j.Adapter!).ToHashSet(StringComparer.Ordinal);

    /// <summary>
    /// Whether the job's adapter is resident or can be made so without unloading one a running sequence uses; if not,
    /// the job waits at the head of the queue until a sequence finishes.
    /// </summary>
    private bool AdapterRoomFor(GenerationJob job, LoadedModel model)
    {
        if (job.Adapter is null || model.Adapters is not { } registry || registry.Contains(job.Adapter))
            return true;
        var inUse = InUse();
        var resident = registry.List();
        return resident.Count < registry.MaxResident || resident.Any(a => !inUse.Contains(a.Name));
    }

    /// <summary>Frees the slots of jobs whose client disconnected or whose deadline passed.</summary>
    private void DropAbandoned(ContinuousBatcher batcher)
    {
        var now = DateTimeOffset.UtcNow;
        foreach (var job in _running.Keys.ToList())
        {
            if (job.Cancellation.IsCancellationRequested)
                Finish(job, batcher, new JobFailedException(JobFailure.Cancelled, "The client went away."));
            else if (now > job.Deadline)
                Finish(job, batcher, new JobFailedException(JobFailure.Timeout, "The request ran past its deadline."));
        }
    }

    private void Finish(GenerationJob job, ContinuousBatcher batcher, JobFailedException reason)
    {
        foreach (var slot in _slots.Where(s => s.Value.Job == job).Select(s => s.Key).ToList())
        {
            batcher.Cancel(slot);
            _slots.Remove(slot);
        }
        _running.Remove(job);
        job.Fail(reason);
    }

    private void FailQueued(JobFailure failure, string message)
    {
        while (queue.Reader.TryRead(out var job))
            job.Fail(new JobFailedException(failure, message));
    }
}

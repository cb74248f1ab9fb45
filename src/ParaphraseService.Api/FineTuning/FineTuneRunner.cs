using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.Extensions.Options;
using ParaphraseService.Api.Adapters;
using ParaphraseService.Api.Hosting;
using ParaphraseService.Api.Scheduling;
using ParaphraseService.Api.Storage;
using ParaphraseService.Model.Checkpoints;
using ParaphraseService.Model.Loading;
using ParaphraseService.Model.Lora.Peft;
using ParaphraseService.Training.Datasets;
using ParaphraseService.Training.Prompts;
using ParaphraseService.Training.FineTuning;

namespace ParaphraseService.Api.FineTuning;

/// <summary>
/// Runs fine-tune jobs on the model the service holds, one slice at a time on the scheduler's thread (see
/// <see cref="IModelBackgroundWork"/>): at most <see cref="FineTuneOptions.MaxConcurrentJobs"/> jobs at once, taking
/// slices in turn, the rest waiting in order. A job interrupted by a restart resumes from its newest checkpoint; a
/// cancelled one stops before its next slice. On success the adapter is published to the store, which makes
/// <c>/paraphrase</c> serve it at once.
/// </summary>
public sealed class FineTuneRunner : IModelBackgroundWork
{
    private readonly IFineTuneJobStore _store;
    private readonly IAdapterStorage _adapters;
    private readonly FineTuneEvents _events;
    private readonly FineTuneOptions _options;
    private readonly StorageOptions _storage;
    private readonly StorageMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger<FineTuneRunner> _logger;
    // Whether this node trains at all (Node:Roles): a serve-only node never claims a job nor derives training matrices.
    private readonly bool _trains;
    // Jobs whose data is read and prepared, in the order they start. Preparing a large dataset takes seconds of CPU, so
    // it happens on the intake task, never on the scheduler's thread.
    private readonly ConcurrentQueue<(string Id, PreparedDataset Data)> _pending = new();
    private readonly Channel<(string Id, PreparedDataset? Data)> _intake = Channel.CreateUnbounded<(string, PreparedDataset?)>(new() { SingleReader = true });
    private readonly CancellationTokenSource _stopping = new();
    private readonly ConcurrentDictionary<string, byte> _cancelled = new();
    // Shared store: jobs this node claimed and has not ended, and those whose lease it lost.
    private readonly ConcurrentDictionary<string, byte> _held = new();
    private readonly ConcurrentDictionary<string, byte> _lost = new();
    private readonly SemaphoreSlim _claimWake = new(0);
    private readonly List<ActiveJob> _active = [];
    private readonly SemaphoreSlim _signal = new(0);
    private int _turn;
    // When the int8 matrices for training exist (derived before the first job, released when none is left).
    private Int8TrainingMatrixSchedule? _matrices;
    private LoadedModel? _matricesModel;

    public FineTuneRunner(IFineTuneJobStore store, IAdapterStorage adapters, FineTuneEvents events, ModelHost host, IOptions<FineTuneOptions> options,
        IOptions<NodeOptions> node, IOptions<StorageOptions> storage, StorageMetrics metrics, TimeProvider time, ILogger<FineTuneRunner> logger)
    {
        (_store, _adapters, _events, _options, _storage, _metrics, _time, _logger) = (store, adapters, events, options.Value, storage.Value, metrics, time, logger);
        _trains = node.Value.Trains;
        if (!store.Shared)
        {
            // Jobs queued or interrupted before a restart come first; their data is prepared again (deterministic for their seed).
            var recovered = store.Recover();
            if (recovered.Count > 0)
                logger.LogInformation("{Count} fine-tune job(s) from before the restart wait to run; interrupted ones resume from their checkpoints", recovered.Count);
            foreach (var id in recovered)
                _intake.Writer.TryWrite((id, null));
        }
        _ = Task.Run(() => Intake(host));
        if (store.Shared && _trains && _options.Enabled)
        {
            store.WorkAvailable += () => _claimWake.Release();
            _ = Task.Run(() => ClaimLoop(host));
            _ = Task.Run(RenewLoop);
        }
    }

    /// <summary>
    /// Shared store: claims queued jobs (or jobs whose trainer's lease ran out) while this node has room for them,
    /// woken by notifications and polling at <see cref="StorageOptions.JobPollMilliseconds"/>.
    /// </summary>
    private async Task ClaimLoop(ModelHost host)
    {
        try
        {
            await host.Ready.WaitAsync(_stopping.Token);
        }
        catch (Exception)
        {
            return; // no model: nothing can train here, so nothing is claimed
        }
        var poll = TimeSpan.FromMilliseconds(_storage.JobPollMilliseconds);
        while (!_stopping.IsCancellationRequested)
        {
            try
            {
                while (_held.Count < _options.MaxConcurrentJobs && _store.ClaimNext() is { } id)
                {
                    _held[id] = 0;
                    _metrics.Claimed();
                    _logger.LogInformation("Fine-tune {Job} claimed by this node", id);
                    _intake.Writer.TryWrite((id, null));
                }
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                _logger.LogWarning("Claiming fine-tune jobs failed: {Error}", e.Message);
            }
            try
            {
                await _claimWake.WaitAsync(poll, _stopping.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>Shared store: renews the leases of held jobs; notes the ones lost and the ones asked to cancel.</summary>
    private async Task RenewLoop()
    {
        while (!_stopping.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(_storage.RenewEvery, _time, _stopping.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            if (_held.IsEmpty) continue;
            try
            {
                var renewal = _store.Renew(_held.Keys.ToList());
                // A job that ended here while the renewal ran is not lost: it is no longer held.
                foreach (var id in renewal.Lost.Where(_held.ContainsKey))
                {
                    _lost[id] = 0;
                    _metrics.LeaseLost();
                    _logger.LogWarning("Fine-tune {Job}: this node lost its lease (not renewed in {Lease} s); its work since the last checkpoint is discarded " +
                        "and nothing is published from here", id, _storage.LeaseSeconds);
                }
                foreach (var id in renewal.CancelRequested)
                    _cancelled[id] = 0;
                if (renewal.Lost.Count + renewal.CancelRequested.Count > 0)
                    _signal.Release();
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                _logger.LogWarning("Renewing fine-tune leases failed: {Error}", e.Message);
            }
        }
    }

    /// <summary>Prepares the data of jobs that come without it (after a restart), then hands every job on in order.</summary>
    private async Task Intake(ModelHost host)
    {
        LoadedModel model;
        try
        {
            model = await host.Ready.WaitAsync(_stopping.Token);
        }
        catch (Exception)
        {
            return; // no model (load failed or shutting down): nothing can train
        }
        try
        {
            await foreach (var (id, ready) in _intake.Reader.ReadAllAsync(_stopping.Token))
            {
                var data = ready;
                if (data is null && _store.Get(id) is { IsFinished: false } job)
                {
                    try
                    {
                        data = FineTuneRequests.Prepare(_store.DatasetFile(id)!, job.Options, model.Tokenizer, _options.MaxDatasetBytes);
                    }
                    catch (Exception e) when (e is DatasetException or IOException or UnauthorizedAccessException)
                    {
                        if (_store.TryFinish(id, FineTuneState.Failed, e.Message, _time.GetUtcNow())) PublishState(id);
                        Forget(id);
                        continue;
                    }
                }
                if (data is null)
                {
                    Forget(id); // ended meanwhile
                    continue;
                }
                _pending.Enqueue((id, data));
                _signal.Release();
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    public bool HasWork => _options.Enabled && _trains && (_active.Count > 0 || !_pending.IsEmpty);

    /// <summary>Jobs training now.</summary>
    public int RunningCount => Volatile.Read(ref _runningCount);
    private int _runningCount;

    public async Task WaitForWorkAsync(CancellationToken cancellationToken) => await _signal.WaitAsync(cancellationToken);

    /// <summary>
    /// A job was queued, with the data the request already read and prepared. A shared store's jobs are claimed, not
    /// handed over: the request only wakes this node's claimer (the trainer that claims it prepares the data again).
    /// </summary>
    public void Enqueue(string id, PreparedDataset data)
    {
        if (_store.Shared)
            _claimWake.Release();
        else
            _intake.Writer.TryWrite((id, data));
    }

    /// <summary>Cancels a job: a queued one ends now, a running one before its next slice. False when it had already finished.</summary>
    public bool Cancel(string id)
    {
        if (_store.TryFinish(id, FineTuneState.Cancelled, null, _time.GetUtcNow(), onlyIfQueued: true))
        {
            PublishState(id);
            return true;
        }
        if (!_store.RequestCancel(id))
            return false;
        _cancelled[id] = 0;
        _signal.Release();
        return true;
    }

    public void RunSlice(LoadedModel model)
    {
        try
        {
            StopCancelled(model);
            StopLost(model);
            if (!PrepareTrainingMatrices(model))
            {
                Activate(model);
                if (_active.Count > 0)
                    Advance(_active[_turn++ % _active.Count], model);
            }
            ReleaseMatricesWhenIdle(model); // also when the jobs they were derived for were cancelled before starting
        }
        catch (Exception e)
        {
            // Never let a job's failure reach the scheduler's loop.
            _logger.LogError(e, "Fine-tune runner failed");
        }
    }

    public void Stop()
    {
        // The jobs stay 'running' in an embedded store: the next start resumes them from their checkpoints. A shared one
        // gets them back at once, for another trainer to resume from their checkpoints.
        if (!_held.IsEmpty)
        {
            try
            {
                _store.Release(_held.Keys.ToList());
                _logger.LogInformation("Gave {Count} fine-tune job(s) back to the queue", _held.Count);
            }
            catch (Exception e)
            {
                _logger.LogWarning("Giving fine-tune jobs back failed ({Error}); their leases run out instead", e.Message);
            }
        }
        foreach (var job in _active) job.Dispose();
        _active.Clear();
        _matrices?.Dispose();
        _matrices = null;
        _stopping.Cancel();
        Interlocked.Exchange(ref _runningCount, 0);
    }

    /// <summary>
    /// Before the first job starts on an int8 model served by fbgemm, derives the int8 matrix of one more layer (see
    /// <see cref="Int8TrainingMatrixSchedule"/>). True while there is such work: the slice is used up.
    /// </summary>
    private bool PrepareTrainingMatrices(LoadedModel model)
    {
        var matrices = Matrices(model);
        try
        {
            var step = matrices.BeforeTraining(jobsRunning: _active.Count > 0, jobsWaiting: !_pending.IsEmpty);
            if (step == Int8TrainingPreparation.Started)
                _logger.LogInformation("Deriving the int8 matrices of {Layers} layers from the checkpoint, for fine-tuning", matrices.LayersMissing + 1);
            return step != Int8TrainingPreparation.Ready;
        }
        catch (Int8TrainingMatricesException e)
        {
            // The next job in line cannot train on this model now: it fails with the reason.
            if (_pending.TryDequeue(out var next))
            {
                if (_store.TryFinish(next.Id, FineTuneState.Failed, e.Message, _time.GetUtcNow()))
                    PublishState(next.Id);
                Forget(next.Id);
            }
            _logger.LogWarning("Preparing the int8 matrices for training failed: {Error}", e.Message);
            return true;
        }
    }

    /// <summary>Serving alone needs one byte per int8 weight: the matrices derived for training go until the next job.</summary>
    private void ReleaseMatricesWhenIdle(LoadedModel model)
    {
        if (Matrices(model).AfterTraining(jobsLeft: _active.Count > 0 || !_pending.IsEmpty) is > 0 and var released)
            _logger.LogInformation("Released the int8 training matrices of {Layers} layers", released);
    }

    private Int8TrainingMatrixSchedule Matrices(LoadedModel model)
    {
        if (_matrices is null || !ReferenceEquals(_matricesModel, model))
        {
            _matrices?.Dispose();
            (_matrices, _matricesModel) = (new Int8TrainingMatrixSchedule(model.Model, model.OpenCheckpoint), model);
        }
        return _matrices;
    }

    private void StopCancelled(LoadedModel model)
    {
        if (_cancelled.IsEmpty) return;
        foreach (var job in _active.Where(j => _cancelled.ContainsKey(j.Id)).ToList())
        {
            End(job, FineTuneState.Cancelled, null, model);
            _logger.LogInformation("Fine-tune {Job} cancelled at step {Step}", job.Id, job.Run.Step);
        }
    }

    /// <summary>Drops the jobs whose lease this node lost: their tensors freed, nothing recorded or published from here.</summary>
    private void StopLost(LoadedModel model)
    {
        if (_lost.IsEmpty) return;
        foreach (var job in _active.Where(j => _lost.ContainsKey(j.Id)).ToList())
            Drop(job, model);
        foreach (var id in _lost.Keys.Where(id => !_held.ContainsKey(id)))
            _lost.TryRemove(id, out _);
    }

    private void Drop(ActiveJob job, LoadedModel model)
    {
        job.Dispose();
        _active.Remove(job);
        ReleaseMatricesWhenIdle(model);
        Interlocked.Exchange(ref _runningCount, _active.Count);
        DeleteLocalCheckpoints(job.Id);
        _logger.LogWarning("Fine-tune {Job} dropped at step {Step}: the lease is lost, so the pass is discarded and another trainer resumes the job from its last checkpoint",
            job.Id, job.Run.Step);
        Forget(job.Id);
    }

    /// <summary>This node is done with a job (ended, lost or never started): it may claim another.</summary>
    private void Forget(string id)
    {
        _cancelled.TryRemove(id, out _);
        _lost.TryRemove(id, out _);
        if (_held.TryRemove(id, out _))
            _claimWake.Release();
    }

    private void Activate(LoadedModel model)
    {
        while (_active.Count < _options.MaxConcurrentJobs && _pending.TryDequeue(out var next))
        {
            var (id, data) = next;
            var job = _store.Get(id);
            if (job is null || job.IsFinished || _lost.ContainsKey(id))
            {
                Forget(id);
                continue;
            }
            if (job.CancelRequested) // cancelled while running, then the process stopped before it could end the job
            {
                _store.TryFinish(id, FineTuneState.Cancelled, null, _time.GetUtcNow());
                PublishState(id);
                Forget(id);
                continue;
            }
            FineTuneRun? run = null;
            try
            {
                var registry = model.Adapters ?? throw new InvalidOperationException("The model was loaded without LoRA support.");
                var request = job.Options;
                var template = FineTuneRequests.Template(request);
                run = new FineTuneRun(model.Model, registry, model.Tokenizer, template, "fine-tune:" + id, data,
                    FineTuneRequests.Settings(request, _options, registry.Target.DefaultTargetModules), _store.CheckpointFolder(id));
                var summary = JsonSerializer.SerializeToElement(data.Summary, FineTuneJobStore.Json);
                if (!_store.TryStart(id, run.TotalSteps, run.Step, run.ResumedFromStep, summary, _time.GetUtcNow()))
                {
                    run.Dispose();
                    Forget(id);
                    continue;
                }
                _active.Add(new ActiveJob(id, request, run, template, data.Summary));
                Interlocked.Exchange(ref _runningCount, _active.Count);
                _logger.LogInformation("Fine-tune {Job} started: adapter {Adapter}, {Steps} steps{Resumed}", id, request.Adapter, run.TotalSteps,
                    run.ResumedFromStep is { } from ? $", resumed from step {from}" : "");
                PublishState(id);
            }
            catch (Exception e) when (e is ArgumentException or IOException or InvalidDataException or InvalidOperationException or UnauthorizedAccessException)
            {
                run?.Dispose();
                _store.TryFinish(id, FineTuneState.Failed, e.Message, _time.GetUtcNow());
                _logger.LogWarning("Fine-tune {Job} could not start: {Error}", id, e.Message);
                PublishState(id);
                Forget(id);
            }
        }
    }

    private void Advance(ActiveJob job, LoadedModel model)
    {
        try
        {
            if (!job.Work.MoveNext())
            {
                Complete(job, model);
                return;
            }
            switch (job.Work.Current)
            {
                case FineTuneEvent.StepTaken { Step: var step }:
                    var eta = job.SecondsPerStep(step.Step) * (step.TotalSteps - step.Step);
                    _store.RecordStep(job.Id, step.Step, step.Epoch, step.Loss, step.TokensPerSecond, eta);
                    _events.Publish(job.Id, new JobEvent("step", new
                    {
                        step.Step, step.TotalSteps, step.Epoch, step.Loss, step.LearningRate, step.TokensPerSecond, EtaSeconds = eta,
                    }));
                    break;
                case FineTuneEvent.Evaluated e:
                    if (!e.Base) _store.RecordEval(job.Id, e.Step, e.EvalLoss);
                    _store.RecordMetrics(job.Id, job.Run.Metrics);
                    _events.Publish(job.Id, new JobEvent("eval", new { e.Step, Loss = e.EvalLoss, e.Base }));
                    break;
                case FineTuneEvent.CheckpointSaved c:
                    _store.SaveCheckpoint(job.Id, c.Step, c.Folder);
                    _events.Publish(job.Id, new JobEvent("checkpoint", new { c.Step }));
                    break;
                case FineTuneEvent.Scored s:
                    _store.RecordMetrics(job.Id, job.Run.Metrics);
                    _events.Publish(job.Id, new JobEvent("scored", new { s.Scores.Bleu, s.Scores.SelfBleu, s.Scores.IBleu, s.Scores.Count, s.Examples }));
                    break;
            }
        }
        catch (LeaseLostException)
        {
            _metrics.LeaseLost();
            Drop(job, model);
        }
        catch (Exception e)
        {
            _logger.LogError(e, "Fine-tune {Job} failed", job.Id);
            End(job, FineTuneState.Failed, e.Message, model);
        }
    }

    private void Complete(ActiveJob job, LoadedModel model)
    {
        var metrics = job.Run.Metrics;
        using (var adapter = job.Run.TakeAdapter())
        {
            var staging = _adapters.CreateStagingFolder();
            Directory.Delete(staging); // AdapterExport creates the folder itself, atomically
            try
            {
                AdapterExport.Save(staging, adapter, job.Options.Training(model.Adapters!.Target.DefaultTargetModules), model.Adapters.Target, model.Source, job.Template, job.Dataset, metrics);
            }
            catch
            {
                if (Directory.Exists(staging)) _adapters.DiscardStaging(staging);
                throw;
            }
            _store.PublishAdapter(job.Id, _adapters, job.Options.Adapter!, staging, job.Options.Replace, metrics);
        }
        _store.RecordMetrics(job.Id, metrics);
        End(job, FineTuneState.Succeeded, null, model);
        _logger.LogInformation("Fine-tune {Job} succeeded: adapter {Adapter} published; eval loss {Before:F4} -> {After:F4}", job.Id, job.Options.Adapter,
            metrics.GetValueOrDefault("eval_loss_base"), metrics.GetValueOrDefault("eval_loss"));
    }

    /// <summary>Ends a running job: frees its tensors, deletes its checkpoints, records the outcome.</summary>
    private void End(ActiveJob job, FineTuneState state, string? error, LoadedModel model)
    {
        job.Dispose();
        _active.Remove(job);
        ReleaseMatricesWhenIdle(model); // before the outcome is published: whoever sees it sees the memory back
        Interlocked.Exchange(ref _runningCount, _active.Count);
        _cancelled.TryRemove(job.Id, out _);
        DeleteLocalCheckpoints(job.Id);
        _store.TryFinish(job.Id, state, error, _time.GetUtcNow());
        PublishState(job.Id);
        Forget(job.Id);
    }

    private void DeleteLocalCheckpoints(string id)
    {
        try
        {
            var checkpoints = _store.CheckpointFolder(id);
            if (Directory.Exists(checkpoints)) Directory.Delete(checkpoints, recursive: true);
        }
        catch (IOException e)
        {
            _logger.LogWarning("Fine-tune {Job}: checkpoints not deleted: {Error}", id, e.Message);
        }
    }

    private void PublishState(string id)
    {
        if (_store.Get(id) is { } job) _events.Publish(id, new JobEvent("state", job));
    }

    private sealed class ActiveJob(string id, FineTuneRequest options, FineTuneRun run, PromptTemplate template, DatasetSummary dataset) : IDisposable
    {
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private readonly int _firstStep = run.Step;

        public string Id => id;
        public FineTuneRequest Options => options;
        public FineTuneRun Run => run;
        public PromptTemplate Template => template;
        public DatasetSummary Dataset => dataset;
        public IEnumerator<FineTuneEvent> Work { get; } = run.Run().GetEnumerator();

        /// <summary>Wall-clock seconds per step since the job (re)started, serving included: what an ETA needs.</summary>
        public double SecondsPerStep(int step) => _clock.Elapsed.TotalSeconds / Math.Max(1, step - _firstStep);

        public void Dispose()
        {
            Work.Dispose();
            run.Dispose();
        }
    }
}

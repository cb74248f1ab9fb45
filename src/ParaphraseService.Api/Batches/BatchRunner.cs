using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;
using ParaphraseService.Api.Hosting;
using ParaphraseService.Api.Paraphrasing;
using ParaphraseService.Api.Requests;
using ParaphraseService.Api.Scheduling;
using ParaphraseService.Api.Storage;

namespace ParaphraseService.Api.Batches;

/// <summary>
/// Runs batches on a serving node, one at a time: claims one from the store under a lease (renewed while it runs),
/// takes its pending lines in order a few at a time (<see cref="BatchOptions.Concurrency"/> in flight), and hands each
/// to the request pipeline as a background request, so its jobs wait in the scheduler's background lane behind every
/// interactive request and never count against the interactive queue's limit. Each line's response, or its error as
/// <c>/paraphrase</c> would have answered it, is stored as soon as it finishes. A line that could not run now (the
/// service stopping, the model not ready, starved past its deadline behind interactive load) stays pending and runs
/// later; a node that stops gives its batch back, and one that loses its lease (or sees the batch cancelled) stops
/// feeding it and ends its lines in flight.
/// </summary>
public sealed class BatchRunner : BackgroundService
{
    private readonly IBatchStore _store;
    private readonly RequestPipeline _pipeline;
    private readonly GenerationQueue _queue;
    private readonly CandidatePostProcessor _postProcessor;
    private readonly ModelHost _host;
    private readonly BatchOptions _options;
    private readonly StorageOptions _storage;
    private readonly bool _serves;
    private readonly BatchMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly JsonSerializerOptions _json;
    private readonly ILogger<BatchRunner> _logger;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly SemaphoreSlim _wake = new(0);
    // Batches this node runs now, and how to stop each at once.
    private readonly ConcurrentDictionary<string, CancellationTokenSource> _held = new(StringComparer.Ordinal);

    public BatchRunner(IBatchStore store, RequestPipeline pipeline, GenerationQueue queue, CandidatePostProcessor postProcessor, ModelHost host,
        IOptions<BatchOptions> options, IOptions<StorageOptions> storage, IOptions<NodeOptions> node, BatchMetrics metrics, TimeProvider time,
        IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions> json, IHostApplicationLifetime lifetime, ILogger<BatchRunner> logger)
    {
        _lifetime = lifetime;
        (_store, _pipeline, _queue, _postProcessor, _host, _metrics, _time, _logger) = (store, pipeline, queue, postProcessor, host, metrics, time, logger);
        (_options, _storage, _serves, _json) = (options.Value, storage.Value, node.Value.Serves, json.Value.SerializerOptions);
    }

    private TimeSpan Lease => TimeSpan.FromSeconds(_storage.LeaseSeconds);

    /// <summary>How long a line that cannot run yet waits before it tries again.</summary>
    private static readonly TimeSpan RetryDelay = TimeSpan.FromSeconds(1);

    /// <summary>A batch was queued here: look for work now rather than at the next poll.</summary>
    public void Wake()
    {
        if (_wake.CurrentCount == 0) _wake.Release();
    }

    /// <summary>A batch was cancelled: if this node runs it, its lines stop now (another node's at its next lease renewal).</summary>
    public void Stop(string id)
    {
        if (_held.TryGetValue(id, out var running))
            CancelQuietly(running);
    }

    /// <summary>Batches this node runs now (for tests and the log).</summary>
    public IReadOnlyCollection<string> Running => _held.Keys.ToList();

    protected override async Task ExecuteAsync(CancellationToken hostStopping)
    {
        // The service stopping (not only this runner): no new line is taken, and the batch is given back at once.
        using var stopping = CancellationTokenSource.CreateLinkedTokenSource(hostStopping, _lifetime.ApplicationStopping);
        var stoppingToken = stopping.Token;
        if (!_options.Enabled || !_serves)
            return; // a train-only node never runs batches: serving nodes do
        try
        {
            await _host.Ready.WaitAsync(stoppingToken);
        }
        catch (Exception)
        {
            return; // no model (it failed to load, or the service stops): batches wait in the store
        }
        try
        {
            _store.Recover();
        }
        catch (Exception e)
        {
            _logger.LogWarning("Taking back this node's batches from before the restart failed: {Error}", e.Message);
        }
        var renewals = Task.Run(() => RenewLoop(stoppingToken), CancellationToken.None);
        var poll = TimeSpan.FromMilliseconds(_storage.JobPollMilliseconds);
        while (!stoppingToken.IsCancellationRequested)
        {
            string? id = null;
            try
            {
                id = _store.ClaimNext(Lease);
            }
            catch (Exception e)
            {
                _logger.LogWarning("Looking for a batch to run failed: {Error}", e.Message);
            }
            if (id is null)
            {
                try
                {
                    await _wake.WaitAsync(poll, stoppingToken);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
                continue;
            }
            await RunAsync(id, stoppingToken);
        }
        await renewals;
    }

    /// <summary>Renews the leases of the batches this node runs; stops those it lost or that were cancelled elsewhere.</summary>
    private async Task RenewLoop(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(_storage.RenewEvery, _time, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            if (_held.IsEmpty) continue;
            try
            {
                foreach (var id in _store.Renew(_held.Keys.ToList(), Lease))
                {
                    if (!_held.TryGetValue(id, out var running)) continue; // ended here meanwhile
                    if (_store.Get(id) is { Status: BatchState.Cancelled })
                        _logger.LogInformation("Batch {Batch} was cancelled; its lines in flight stop", id);
                    else
                        _logger.LogWarning("Batch {Batch}: this node lost its lease (not renewed in {Lease} s); it stops, and whoever holds it now runs the lines left",
                            id, _storage.LeaseSeconds);
                    CancelQuietly(running);
                }
            }
            catch (Exception e)
            {
                _logger.LogWarning("Renewing batch leases failed: {Error}", e.Message);
            }
        }
    }

    private async Task RunAsync(string id, CancellationToken stoppingToken)
    {
        using var running = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        _held[id] = running;
        var giveBack = false;
        try
        {
            _logger.LogInformation("Batch {Batch} runs on this node", id);
            while (true)
            {
                var stop = await PassAsync(id, running);
                if (running.IsCancellationRequested || stop)
                {
                    giveBack = stoppingToken.IsCancellationRequested || stop;
                    break;
                }
                if (_store.TryComplete(id, _time.GetUtcNow()))
                {
                    _logger.LogInformation("Batch {Batch} completed", id);
                    break;
                }
                // Not complete though every line was taken: it ended meanwhile (cancelled), or a line is pending again.
                if (_store.Get(id) is not { Status: BatchState.Running })
                    break;
                await Task.Delay(RetryDelay, _time, running.Token);
            }
        }
        catch (OperationCanceledException) when (running.IsCancellationRequested)
        {
            giveBack = stoppingToken.IsCancellationRequested;
        }
        catch (BatchLeaseLostException)
        {
            _logger.LogInformation("Batch {Batch} is no longer this node's (cancelled, or its lease was taken over)", id);
        }
        catch (StorageUnavailableException e)
        {
            _logger.LogWarning("Batch {Batch} stopped here: {Error}; it is run again once the store answers", id, e.Message);
            giveBack = true;
        }
        catch (Exception e)
        {
            // A fault of the runner itself, not of a line: the batch ends as failed rather than failing the same way forever.
            _logger.LogError(e, "Batch {Batch} failed", id);
            try
            {
                _store.TryFail(id, $"The batch could not go on: {e.Message}", _time.GetUtcNow());
            }
            catch (Exception inner)
            {
                _logger.LogWarning("Recording batch {Batch} as failed did not work either: {Error}", id, inner.Message);
            }
        }
        finally
        {
            _held.TryRemove(id, out _);
        }
        if (giveBack)
        {
            try
            {
                // Another node, or this one's next start, resumes it from the lines left.
                _store.Release([id]);
                _logger.LogInformation("Batch {Batch} given back to the queue", id);
            }
            catch (Exception e)
            {
                _logger.LogWarning("Giving batch {Batch} back failed ({Error}); its lease runs out instead", id, e.Message);
            }
        }
    }

    /// <summary>
    /// One pass over the batch's pending lines, in order, with at most <see cref="BatchOptions.Concurrency"/> in flight;
    /// true when the batch cannot go on here (this node stops, lost the batch, or the store is down).
    /// </summary>
    private async Task<bool> PassAsync(string id, CancellationTokenSource running)
    {
        var token = running.Token;
        using var window = new SemaphoreSlim(_options.Concurrency);
        var inFlight = new List<Task>();
        var after = 0;
        var stop = false;
        try
        {
            while (!token.IsCancellationRequested)
            {
                await window.WaitAsync(token);
                // A release racing the cancellation can still hand the wait its slot: no line is taken after a stop.
                if (token.IsCancellationRequested)
                    break;
                var free = 1;
                while (free < _options.Concurrency && window.Wait(0)) free++;
                var lines = _store.TakePending(id, after, free);
                if (lines.Count < free)
                    window.Release(free - lines.Count);
                if (lines.Count == 0)
                    break;
                after = lines[^1].Line;
                inFlight.RemoveAll(t => t.IsCompleted);
                foreach (var line in lines)
                    inFlight.Add(RunOneAsync(line));
            }
        }
        finally
        {
            // Whatever ended the pass, the lines in flight end before it returns (those cancelled stay pending).
            await Task.WhenAll(inFlight);
        }
        return stop;

        async Task RunOneAsync(PendingLine line)
        {
            try
            {
                if (!await RunLineAsync(id, line, token))
                {
                    stop = true;
                    CancelQuietly(running);
                }
            }
            finally
            {
                window.Release();
            }
        }
    }

    /// <summary>
    /// Runs one line to its stored result or error; false when it cannot run here (this node stops or lost the batch,
    /// or the store is down: the line stays pending). A line that cannot run yet (the model not serving, a job ended
    /// by something other than this runner) waits and tries again, holding its place in the window.
    /// </summary>
    private async Task<bool> RunLineAsync(string id, PendingLine line, CancellationToken token)
    {
        try
        {
            if (line.Attempts > _options.MaxAttempts)
                return Record(id, line, LineState.Failed, BatchJson.Error(new BatchLineError(StatusCodes.Status500InternalServerError, "Too many attempts",
                    $"The line was started {line.Attempts - 1} times without finishing (its node stopped or lost the batch each time); it is not tried again (Batches:MaxAttempts).")));
            ParaphraseRequest request;
            try
            {
                request = JsonSerializer.Deserialize<ParaphraseRequest>(line.Request, _json)!;
            }
            catch (JsonException e)
            {
                // Checked when the batch was accepted; a build with other rules may read it differently.
                var (field, reason) = BadRequestHandler.Describe(e, typeof(ParaphraseRequest), _json);
                return Record(id, line, LineState.Failed, Error(field, reason));
            }
            var errors = ParaphraseEndpoints.Validate(request, out var texts);
            if (errors.Any)
                return Record(id, line, LineState.Failed, Error(RequestProblems.Invalid(errors).ProblemDetails));
            while (true)
            {
                if (token.IsCancellationRequested)
                    return false;
                var generation = ParaphraseEndpoints.Generation(request, texts) with { Background = true, Stream = false };
                var (prepared, problem) = _pipeline.Prepare(generation, token, $"{id}/{line.Line}");
                if (problem is not null)
                {
                    if (problem.StatusCode != StatusCodes.Status503ServiceUnavailable)
                        return Record(id, line, LineState.Failed, Error(problem.ProblemDetails));
                    // Not ready or stopping: the line waits (stopping ends it through the token).
                    await Task.Delay(RetryDelay, _time, token);
                    continue;
                }
                using (prepared)
                {
                    switch (_queue.TryEnqueue(prepared!.Jobs))
                    {
                        case EnqueueResult.Closed:
                            return false;
                        case EnqueueResult.Full: // the background lane is never full; kept for safety
                            await Task.Delay(RetryDelay, _time, token);
                            continue;
                    }
                    IReadOnlyList<JobOutcome> outcomes;
                    try
                    {
                        outcomes = await prepared.CompleteAsync();
                    }
                    catch (JobFailedException failure)
                    {
                        if (token.IsCancellationRequested || failure.Failure == JobFailure.ShuttingDown)
                            return false;
                        // Past the deadline without ever being admitted: interactive load kept it waiting, which is
                        // what a background line is for. It waits again; a line that timed out while running is an error.
                        if (failure.Failure == JobFailure.Timeout && prepared.Jobs.Any(j => j.Completion.IsFaulted && !j.HasStarted))
                            continue;
                        if (failure.Failure is JobFailure.ModelUnavailable or JobFailure.Cancelled)
                        {
                            await Task.Delay(RetryDelay, _time, token);
                            continue;
                        }
                        return Record(id, line, LineState.Failed, Error(RequestProblems.From(failure).ProblemDetails));
                    }
                    var response = ParaphraseEndpoints.Response(prepared, texts, outcomes, ParaphraseEndpoints.Constraints(request), _postProcessor);
                    return Record(id, line, LineState.Succeeded, JsonSerializer.Serialize(response, BatchJson.Options));
                }
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            return false;
        }
        catch (StorageUnavailableException e)
        {
            _logger.LogWarning("Batch {Batch} line {Line}: the store cannot be reached ({Error}); the batch stops here", id, line.Line, e.Message);
            return false;
        }
        catch (Exception e)
        {
            // The server's fault, as a 500 from /paraphrase would be: the line gets it, the batch goes on.
            _logger.LogError(e, "Batch {Batch} line {Line} failed", id, line.Line);
            try
            {
                return Record(id, line, LineState.Failed, BatchJson.Error(new BatchLineError(StatusCodes.Status500InternalServerError, "Generation failed",
                    $"The server failed while running this line; the trace id {id}/{line.Line} identifies it in the service's log.")));
            }
            catch (Exception inner)
            {
                _logger.LogWarning("Batch {Batch} line {Line}: storing its error failed too: {Error}", id, line.Line, inner.Message);
                return false;
            }
        }
    }

    /// <summary>Stores a line's outcome; false when this node no longer holds the batch (or the line was cancelled meanwhile).</summary>
    private bool Record(string id, PendingLine line, LineState state, string result)
    {
        if (!_store.RecordLine(id, line.Line, state, result, _time.GetUtcNow()))
            return false;
        _metrics.Finished(state);
        return true;
    }

    private static string Error(string field, string reason)
    {
        var errors = new FieldErrors();
        errors.Add(field, reason);
        return Error(RequestProblems.Invalid(errors).ProblemDetails);
    }

    /// <summary>A ProblemDetails as a line's error: status, title, detail, and the field errors of a 400.</summary>
    private static string Error(ProblemDetails problem) => BatchJson.Error(new BatchLineError(
        problem.Status ?? StatusCodes.Status500InternalServerError, problem.Title ?? "Error", problem.Detail ?? "",
        (problem as HttpValidationProblemDetails)?.Errors is { Count: > 0 } fields ? fields.ToDictionary() : null));

    private static void CancelQuietly(CancellationTokenSource source)
    {
        try
        {
            source.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // the batch ended here meanwhile
        }
    }
}

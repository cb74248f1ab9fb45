using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using ParaphraseService.Api.Adapters;
using ParaphraseService.Api.Hosting;
using ParaphraseService.Api.Scheduling;
using ParaphraseService.Model.Generation;
using ParaphraseService.Model.Loading;
using ParaphraseService.Training.Prompts;

namespace ParaphraseService.Api.Requests;

/// <summary>
/// The one way a generation request reaches the scheduler, for every route: everything the service's state decides
/// is checked before anything is queued (model loaded, adapter name and existence, batch and queue limits, each
/// prompt's token budget), the jobs go into the queue together or not at all, and each ends with a result or a
/// failure: 400/404/409 for the request, 429 when the queue is full, 503 when the service cannot serve, 504 past
/// the deadline, 500 (with a trace id) when the server failed.
/// </summary>
public sealed class RequestPipeline(
    ModelHost host, GenerationQueue queue, AdapterManager adapters, IOptions<SchedulerOptions> options, IHostApplicationLifetime lifetime)
{
    /// <summary>Builds the request's jobs, or says why it cannot be served. Nothing is queued yet.</summary>
    public (PreparedRequest? Prepared, ProblemHttpResult? Problem) Prepare(GenerationRequest request, HttpContext context) =>
        Prepare(request, context.RequestAborted, context.TraceIdentifier);

    /// <summary>
    /// As for an HTTP request, for work that has none (a batch line): <paramref name="aborted"/> ends its jobs as a
    /// client going away would, and <paramref name="traceId"/> names them in the log.
    /// </summary>
    public (PreparedRequest? Prepared, ProblemHttpResult? Problem) Prepare(GenerationRequest request, CancellationToken aborted, string traceId)
    {
        if (lifetime.ApplicationStopping.IsCancellationRequested)
            return (null, RequestProblems.ShuttingDown());
        if (host.Model is not { } model)
            return (null, RequestProblems.NotReady(host.LoadError));
        var limits = options.Value;

        ResolvedAdapter? adapter = null;
        var byDefault = request.Adapter is null && request.UsesDefaultAdapter;
        if ((byDefault ? adapters.DefaultName(model) : request.Adapter) is { } name)
        {
            switch (adapters.Find(name))
            {
                case AdapterLookup.Invalid or AdapterLookup.NotFound when request.Fields.AdapterIsModel:
                    return (null, RequestProblems.UnknownModel(request.Fields.Adapter, name));
                case AdapterLookup.Invalid invalid:
                    return (null, RequestProblems.Invalid(request.Fields.Adapter, $"{RequestRules.Quote(name)} is not an adapter name: {invalid.Problem}."));
                case AdapterLookup.NotFound when byDefault:
                    return (null, RequestProblems.UnknownAdapter(request.Fields.Adapter, name,
                        $"The default adapter {RequestRules.Quote(name)} (Adapters:Default) does not exist; name an adapter in the request (GET /adapters lists them)."));
                case AdapterLookup.NotFound:
                    return (null, RequestProblems.UnknownAdapter(request.Fields.Adapter, name));
                case AdapterLookup.Unusable unusable:
                    return (null, RequestProblems.UnusableAdapter(name, unusable.Problem));
                case AdapterLookup.Found found when model.Adapters is null:
                    return (null, RequestProblems.UnknownAdapter(request.Fields.Adapter, found.Adapter.Name,
                        "This service was started without adapter support (Model:MaxResidentAdapters is 0)."));
                case AdapterLookup.Found found:
                    adapter = found.Adapter;
                    break;
            }
        }

        var errors = new FieldErrors();
        // Greedy decoding gives every candidate the same text: one row is decoded and its result copied.
        var greedy = !RequestRules.Samples(request.Temperature);
        var rows = greedy ? 1 : request.Candidates;
        if (rows > limits.MaxBatchRows)
            errors.Add(request.Fields.Candidates,
                $"{request.Candidates} candidates need {rows} batch rows; this service decodes at most {limits.MaxBatchRows} at once (Scheduler:MaxBatchRows). " +
                "Greedy decoding (temperature 0) needs one row however many there are.");
        if (request.Inputs.Count > queue.Capacity)
            errors.Add(request.Fields.Input,
                $"{request.Inputs.Count} inputs need {request.Inputs.Count} places in the queue; it holds {queue.Capacity} (Scheduler:MaxQueuedRequests).");
        if (errors.Any)
            return (null, RequestProblems.Invalid(errors));

        var template = request.Templated ? adapter?.Template ?? PromptTemplate.Default : null;
        var room = Math.Min(limits.MaxSequenceTokens, model.Config.MaxPositions);
        var prompts = new List<IReadOnlyList<int>>(request.Inputs.Count);
        for (var i = 0; i < request.Inputs.Count; i++)
        {
            var ids = model.Tokenizer.Encode(template?.Render(request.Inputs[i]) ?? request.Inputs[i]);
            if (ids.Count == 0)
                errors.Add(request.InputField(i), "encodes to no tokens.");
            else if (ids.Any(id => id >= model.Config.VocabSize))
                errors.Add(request.InputField(i),
                    $"holds text this model has no tokens for (its tokenizer is larger than its vocabulary of {model.Config.VocabSize}).");
            else if ((long)ids.Count + request.MaxNewTokens > room)
                errors.Add(request.InputField(i),
                    $"the prompt is {ids.Count} tokens; with {request.Fields.MaxNewTokens} {request.MaxNewTokens} it exceeds the context of {room} tokens a sequence may hold " +
                    $"({(room == limits.MaxSequenceTokens ? "Scheduler:MaxSequenceTokens" : "the model's context")}).");
            prompts.Add(ids);
        }
        if (errors.Any)
            return (null, RequestProblems.Invalid(errors));

        var stops = template is null ? request.Stop : [.. request.Stop, template.EndMarker];
        // The banned terms' automata are built here, on the request's thread, once per term; the scheduler then finds them made.
        _ = BannedText.For(request.Avoid, model.Tokenizer);
        var candidates = Enumerable.Range(0, rows).Select(i => new GenerationOptions
        {
            MaxNewTokens = request.MaxNewTokens,
            Greedy = greedy,
            Temperature = greedy ? 1 : request.Temperature,
            TopP = request.TopP,
            TopK = request.TopK,
            RepetitionPenalty = request.RepetitionPenalty,
            StopSequences = stops,
            MaxCharacters = request.MaxCharacters,
            BannedText = request.Avoid,
            Speculate = request.Speculation,
            // Candidate i of every text uses seed + i (wrapping), so batching does not change what a seed gives.
            Seed = request.Seed is { } seed ? unchecked(seed + i) : null,
        }).ToList();
        var timeout = TimeSpan.FromSeconds(limits.RequestTimeoutSeconds);
        var jobs = prompts.Select(ids => new GenerationJob(ids, candidates, adapter, timeout, aborted) { TraceId = traceId, Background = request.Background }).ToList();
        return (new PreparedRequest(model, adapter, template, stops, jobs, request.MaxCharacters), null);
    }

    /// <summary>Queues every job of the request, or none: then the answer to send (429 when full, 503 when stopping).</summary>
    public ProblemHttpResult? Enqueue(PreparedRequest request, HttpContext context) => queue.TryEnqueue(request.Jobs) switch
    {
        EnqueueResult.Queued => null,
        EnqueueResult.Full => RequestProblems.QueueFull(context),
        _ => RequestProblems.ShuttingDown(),
    };
}

/// <summary>A request's jobs, built and checked, with what its route needs to shape the answer. Disposing it ends its jobs' timers.</summary>
public sealed class PreparedRequest(LoadedModel model, ResolvedAdapter? adapter, PromptTemplate? template, IReadOnlyList<string> stops,
    IReadOnlyList<GenerationJob> jobs, int? maxCharacters = null) : IDisposable
{
    public LoadedModel Model { get; } = model;
    public ResolvedAdapter? Adapter { get; } = adapter;

    /// <summary>The prompt template inputs were rendered with; null for raw prompts.</summary>
    public PromptTemplate? Template { get; } = template;

    /// <summary>Where every candidate stops (for streaming text that must not show a stop sequence).</summary>
    public IReadOnlyList<string> Stops { get; } = stops;

    public IReadOnlyList<GenerationJob> Jobs { get; } = jobs;

    /// <summary>The request's character limit: streamed text never goes beyond it.</summary>
    public int? MaxCharacters { get; } = maxCharacters;

    public int PromptTokens => Jobs.Sum(j => j.PromptIds.Count);

    /// <summary>Every job's outcome, in input order; throws the first job's failure.</summary>
    public async Task<IReadOnlyList<JobOutcome>> CompleteAsync()
    {
        var outcomes = new List<JobOutcome>(Jobs.Count);
        foreach (var job in Jobs)
            outcomes.Add(await job.Completion);
        return outcomes;
    }

    /// <summary>
    /// Waits until the first job has a token or has ended, so a stream starts only once there is something to send;
    /// a failure before that is answered with its status code, not inside a stream. Null when the stream may start.
    /// </summary>
    public async Task<ProblemHttpResult?> WaitForFirstTokenAsync()
    {
        try
        {
            await Jobs[0].Tokens.WaitToReadAsync();
            return null;
        }
        catch (JobFailedException failure)
        {
            return RequestProblems.From(failure);
        }
    }

    /// <summary>
    /// Text pieces as they are generated, job by job in input order (a later job's tokens wait in its channel):
    /// (input, candidate, text), then each job's outcome. Pieces never show a stop sequence or half a character.
    /// </summary>
    public async IAsyncEnumerable<StreamItem> StreamAsync([System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        for (var input = 0; input < Jobs.Count; input++)
        {
            var job = Jobs[input];
            var streams = job.Candidates.Select(_ => new TextStream(Model.Tokenizer, Stops, MaxCharacters)).ToArray();
            await foreach (var token in job.Tokens.ReadAllAsync(cancellationToken))
            {
                var piece = streams[token.Candidate].Add(token.Token);
                if (piece.Length > 0)
                    yield return new StreamItem(input, token.Candidate, piece, null);
            }
            var outcome = await job.Completion;
            for (var c = 0; c < outcome.Results.Count; c++)
                yield return new StreamItem(input, c, streams[c].Finish(outcome.Results[c].Text), outcome);
        }
    }

    public void Dispose()
    {
        foreach (var job in Jobs) job.Dispose();
    }
}

/// <summary>A streamed text piece of one candidate of one input; the last one of each candidate carries its job's outcome.</summary>
public sealed record StreamItem(int Input, int Candidate, string Text, JobOutcome? Outcome);

using System.ComponentModel.DataAnnotations;
using ParaphraseService.Model.Generation;

namespace ParaphraseService.Api.Scheduling;

/// <summary>The <c>Scheduler</c> configuration section: how much work is held and batched at once.</summary>
public sealed class SchedulerOptions
{
    public const string Section = "Scheduler";

    /// <summary>Requests waiting for a batch slot; beyond this new requests get 429 with Retry-After.</summary>
    [Range(1, 100_000)]
    public int MaxQueuedRequests { get; set; } = 64;

    /// <summary>Sequences decoded together (batch rows); a request with N sampled candidates takes N (greedy ones take one).</summary>
    [Range(1, 256)]
    public int MaxBatchRows { get; set; } = 8;

    /// <summary>
    /// The share of <see cref="MaxBatchRows"/> background jobs (batch lines) may hold at once, so interactive requests
    /// always find rows free at the next step. A line that alone needs more rows than this runs only with no other
    /// background row running (else it could never run).
    /// </summary>
    [Range(0.01, 1.0)]
    public double BackgroundRowShare { get; set; } = 0.5;

    /// <summary>Rows background jobs may hold: the share of the batch, at least one.</summary>
    public int MaxBackgroundRows => Math.Max(1, (int)Math.Floor(MaxBatchRows * BackgroundRowShare));

    /// <summary>Prompt plus generated tokens one sequence may hold (the size of each slot's KV cache).</summary>
    [Range(16, 2048)]
    public int MaxSequenceTokens { get; set; } = 512;

    /// <summary>
    /// Background work (a fine-tune's micro-batch) starts only after nothing has been decoded for this long, so
    /// requests that follow each other closely never wait behind it. A request that arrives while a micro-batch runs
    /// waits for it to end.
    /// </summary>
    [Range(0, 60_000)]
    public int TrainingIdleMilliseconds { get; set; } = 250;

    /// <summary>Under sustained load, background work still gets one micro-batch after this long without one, so it
    /// never starves; the requests being decoded then wait for that micro-batch.</summary>
    [Range(1, 86_400)]
    public int MaxTrainingPauseSeconds { get; set; } = 30;

    /// <summary>How long a request may wait and run before it is dropped with 504.</summary>
    [Range(1, 3600)]
    public int RequestTimeoutSeconds { get; set; } = 120;

    /// <summary>Prompt-lookup speculative decoding: fewer forward passes for the same output.</summary>
    public SpeculationSettings Speculation { get; set; } = new();
}

/// <summary>
/// <c>Scheduler:Speculation</c>: each running sequence may propose tokens copied from its prompt and have them checked
/// in the same step. What is generated does not change; a request can opt out with <c>speculation: false</c>.
/// </summary>
public sealed class SpeculationSettings
{
    public bool Enabled { get; set; } = true;

    /// <summary>Most draft tokens one sequence verifies per step.</summary>
    public int MaxDraftTokens { get; set; } = 8;

    /// <summary>Fewest draft tokens a sequence proposes when its history matches (at most <see cref="MaxDraftTokens"/>).</summary>
    public int MinDraftTokens { get; set; } = 3;

    /// <summary>Longest and shortest run of last tokens looked up in the prompt.</summary>
    public int MaxNgram { get; set; } = 3;
    public int MinNgram { get; set; } = 1;

    /// <summary>Most positions one step computes, drafts included; a batch with this many rows decodes without drafts.</summary>
    public int MaxStepTokens { get; set; } = 16;

    /// <summary>Drafts cut to what pays for itself, from the measured cost of steps and how often draft tokens were accepted.</summary>
    public bool CostAware { get; set; } = true;

    public SpeculationOptions ToModel() => new()
    {
        Enabled = Enabled, MaxDraftTokens = MaxDraftTokens, MinDraftTokens = MinDraftTokens, MaxNgram = MaxNgram, MinNgram = MinNgram, MaxStepTokens = MaxStepTokens,
        CostAware = CostAware,
    };
}

/// <summary>Refuses at start what would make the default request impossible to serve.</summary>
internal sealed class SchedulerOptionsValidation : Microsoft.Extensions.Options.IValidateOptions<SchedulerOptions>
{
    /// <summary>What a request asks for when it names nothing: 3 candidates of up to 48 new tokens.</summary>
    internal const int DefaultCandidates = 3, DefaultMaxNewTokens = 48;

    /// <summary>Room a default request leaves for its prompt, at the least.</summary>
    internal const int MinPromptTokens = 64;

    public Microsoft.Extensions.Options.ValidateOptionsResult Validate(string? name, SchedulerOptions options)
    {
        var problems = new List<string>();
        if (options.MaxBatchRows < DefaultCandidates)
            problems.Add($"Scheduler:MaxBatchRows is {options.MaxBatchRows}; a default paraphrase request needs {DefaultCandidates} rows (its candidates).");
        if (options.MaxSequenceTokens < MinPromptTokens + DefaultMaxNewTokens)
            problems.Add($"Scheduler:MaxSequenceTokens is {options.MaxSequenceTokens}; a default paraphrase request ({DefaultMaxNewTokens} new tokens " +
                $"after a prompt) needs at least {MinPromptTokens + DefaultMaxNewTokens}.");
        try
        {
            options.Speculation.ToModel().Validate();
        }
        catch (ArgumentException e)
        {
            problems.Add($"Scheduler:Speculation: {e.Message}");
        }
        return problems.Count == 0
            ? Microsoft.Extensions.Options.ValidateOptionsResult.Success
            : Microsoft.Extensions.Options.ValidateOptionsResult.Fail(problems);
    }
}

using System.ComponentModel.DataAnnotations;

namespace ParaphraseService.Api.Scheduling;

/// <summary>The <c>Scheduler</c> configuration section: how much work is held and batched at once.</summary>
public sealed class SchedulerOptions
{
    public const string Section = "Scheduler";

    /// <summary>Requests waiting for a batch slot; beyond this new requests get 429 with Retry-After.</summary>
    [Range(1, 100_000)]
    public int MaxQueuedRequests { get; set; } = 64;

    /// <summary>Sequences decoded together (batch rows); a request with N candidates takes N.</summary>
    [Range(1, 256)]
    public int MaxBatchRows { get; set; } = 8;

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
}

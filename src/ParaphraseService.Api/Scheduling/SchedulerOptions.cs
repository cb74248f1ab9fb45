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
    /// While requests are being decoded, background work (a fine-tune's micro-batch) gets one slice after this many
    /// decode steps; when nothing is decoded it runs continuously. Lower trains faster under load, higher keeps
    /// request latency lower.
    /// </summary>
    [Range(1, 100_000)]
    public int DecodeStepsPerTrainingSlice { get; set; } = 16;

    /// <summary>How long a request may wait and run before it is dropped with 504.</summary>
    [Range(1, 3600)]
    public int RequestTimeoutSeconds { get; set; } = 120;
}

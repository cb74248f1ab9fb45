using System.Text.Json;
using System.Text.Json.Serialization;

namespace ParaphraseService.Api.FineTuning;

[JsonConverter(typeof(CamelCaseEnumConverter<FineTuneState>))]
public enum FineTuneState
{
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

/// <summary>One point of a loss curve.</summary>
public sealed record LossPoint(int Step, double Loss);

/// <summary>A fine-tune job as stored and reported.</summary>
/// <param name="Id">ft-… ; also in the Location header of the POST.</param>
/// <param name="QueuePosition">For a queued job: how many jobs start before it (0: next).</param>
/// <param name="EtaSeconds">Time left at the recent training speed, while running.</param>
/// <param name="ResumedFromStep">The checkpoint step the job resumed from after a restart, if it did.</param>
/// <param name="Dataset">What was read and kept: counts of rows, pairs, drops, train and eval split.</param>
/// <param name="Metrics">train_loss, eval_loss, eval_loss_base, bleu, self_bleu, ibleu (once known).</param>
/// <param name="Trainer">Cluster mode: the node that trains the job (or last did); null when one process does everything.</param>
public sealed record FineTuneJob(
    string Id,
    string Adapter,
    FineTuneState State,
    DateTimeOffset CreatedAt,
    DateTimeOffset? StartedAt,
    DateTimeOffset? FinishedAt,
    int Step,
    int TotalSteps,
    int Epoch,
    double? TokensPerSecond,
    double? EtaSeconds,
    string? Error,
    int? QueuePosition,
    int? ResumedFromStep,
    bool CancelRequested,
    FineTuneRequest Options,
    JsonElement? Dataset,
    IReadOnlyDictionary<string, double> Metrics,
    IReadOnlyList<LossPoint> TrainLoss,
    IReadOnlyList<LossPoint> EvalLoss,
    string? Trainer = null)
{
    public bool IsFinished => State is FineTuneState.Succeeded or FineTuneState.Failed or FineTuneState.Cancelled;
}

/// <summary>Enum values as lower camelCase strings in JSON (queued, running, ...).</summary>
public sealed class CamelCaseEnumConverter<T>() : JsonStringEnumConverter<T>(JsonNamingPolicy.CamelCase) where T : struct, Enum;

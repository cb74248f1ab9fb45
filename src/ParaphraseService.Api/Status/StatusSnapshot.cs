using System.Text.Json.Serialization;
using ParaphraseService.Api.FineTuning;

namespace ParaphraseService.Api.Status;

/// <summary>
/// What the status page shows, as <c>GET /status.json</c> returns it. Public: it holds no admin key, no dataset paths and
/// no folders of adapters; only what a person watching the service needs.
/// </summary>
/// <param name="OlderFineTunes">Jobs beyond the newest ones shown (see <c>GET /admin/fine-tunes</c>).</param>
public sealed record StatusSnapshot(
    DateTimeOffset Time,
    ModelStatus Model,
    ServingStatus Serving,
    IReadOnlyList<AdapterStatus> Adapters,
    IReadOnlyList<FineTuneStatus> FineTunes,
    int OlderFineTunes);

/// <param name="State">loading, ready or failed.</param>
/// <param name="Source">The configured model: a hub id, a folder, or demo.</param>
/// <param name="Quantization">none or int8 (how the Linear weights are stored).</param>
/// <param name="Error">Why loading failed.</param>
/// <param name="KvCache">The dtype generation's KV caches keep keys and values in (Model:KvCache).</param>
public sealed record ModelStatus(
    string State, string Source, string? Device = null, string? Dtype = null, string? Quantization = null, bool? Demo = null,
    int? Layers = null, int? HiddenSize = null, string? Error = null, string? KvCache = null);

/// <param name="QueueDepth">Requests waiting for a batch slot.</param>
/// <param name="ActiveRows">Sequences being decoded (a request with N candidates takes N).</param>
/// <param name="TokensPerSecond">Tokens generated per second over the last ten seconds.</param>
/// <param name="ResidentBytes">Resident memory of the process (model, adapters, caches).</param>
/// <param name="PeakResidentBytes">The most resident memory since the process started.</param>
/// <param name="FineTunesRunning">Fine-tune jobs training now.</param>
public sealed record ServingStatus(
    int QueueDepth, int MaxQueuedRequests, int ActiveRows, int MaxBatchRows, double TokensPerSecond,
    long ResidentBytes, long PeakResidentBytes, int FineTunesRunning);

/// <param name="Targets">The modules it adapts: a list, a pattern, or all-linear.</param>
/// <param name="Origin">upload or fine-tune.</param>
/// <param name="Loaded">Resident on the model now.</param>
/// <param name="Problem">Why its files cannot be read, if they cannot.</param>
public sealed record AdapterStatus(
    string Name, int? Rank, double? Alpha, string? Targets, long SizeBytes, DateTimeOffset? Created, string? Origin,
    bool Loaded, long RequestsServed, string? Problem);

/// <summary>A fine-tune job as the status page shows it; its full curves are drawn at <c>/status/fine-tunes/{id}/loss.svg</c>.</summary>
/// <param name="TrainLoss">The latest train loss.</param>
/// <param name="EvalLoss">The latest eval loss.</param>
/// <param name="DatasetFormat">paws, tsv, csv or jsonl, once read.</param>
/// <param name="Metrics">eval_loss_base, eval_loss, bleu, self_bleu, ibleu (once known).</param>
public sealed record FineTuneStatus(
    string Id,
    string Adapter,
    FineTuneState State,
    int Step,
    int TotalSteps,
    int Epoch,
    double? TokensPerSecond,
    double? EtaSeconds,
    DateTimeOffset CreatedAt,
    DateTimeOffset? StartedAt,
    DateTimeOffset? FinishedAt,
    int? QueuePosition,
    string? Error,
    double? TrainLoss,
    double? EvalLoss,
    string? DatasetFormat,
    int? TrainPairs,
    int? EvalPairs,
    IReadOnlyDictionary<string, double> Metrics)
{
    // Kept out of the JSON, which the page fetches every few seconds: a long job has thousands of points.
    [JsonIgnore] public IReadOnlyList<LossPoint> TrainCurve { get; init; } = [];
    [JsonIgnore] public IReadOnlyList<LossPoint> EvalCurve { get; init; } = [];
}

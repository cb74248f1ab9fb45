using System.Text.Json;
using Microsoft.Extensions.Options;
using ParaphraseService.Api.Adapters;
using ParaphraseService.Api.FineTuning;
using ParaphraseService.Api.Hosting;
using ParaphraseService.Api.Scheduling;
using ParaphraseService.Model.Diagnostics;

namespace ParaphraseService.Api.Status;

/// <summary>The services a status snapshot reads, bound to the handlers with [AsParameters].</summary>
public sealed record StatusSources(
    ModelHost ModelHost,
    IOptions<ModelOptions> ModelOptions,
    GenerationQueue Queue,
    ServiceMetrics Metrics,
    IOptions<SchedulerOptions> SchedulerOptions,
    IAdapterStorage Adapters,
    AdapterManager Manager,
    IFineTuneJobStore Jobs,
    FineTuneRunner Runner,
    TimeProvider Time)
{
    /// <summary>Jobs shown on the page, newest first; the rest are counted.</summary>
    public const int MaxFineTunes = 20;

    /// <summary>Reads everything now. Every field is copied out of the services: the snapshot is safe to render anywhere.</summary>
    public StatusSnapshot Capture()
    {
        var memory = ProcessMemory.Read();
        var scheduler = SchedulerOptions.Value;
        var serving = new ServingStatus(Queue.Count, scheduler.MaxQueuedRequests, Metrics.ActiveRows, scheduler.MaxBatchRows,
            Metrics.TokensPerSecond, memory.ResidentBytes, memory.PeakResidentBytes, Runner.RunningCount);
        var adapters = Adapters.List().Select(a => new AdapterStatus(
            a.Name, a.Rank, a.Alpha, a.TargetModulesPattern ?? (a.TargetModules is { } list ? string.Join(", ", list) : null),
            a.SizeBytes, a.Created, a.Origin, Manager.Resident.Contains(a.Name), a.RequestsServed, a.Problem)).ToList();
        // Only the jobs shown are read with their loss curves: the page polls this.
        var jobs = Jobs.List(MaxFineTunes);
        return new StatusSnapshot(Time.GetUtcNow(), Model(), serving, adapters,
            jobs.Select(FineTune).ToList(), Math.Max(0, Jobs.Count() - MaxFineTunes));
    }

    private ModelStatus Model()
    {
        if (ModelHost.Model is { } m)
            return new ModelStatus("ready", Shown(m.Source), m.Device.type.ToString().ToLowerInvariant(), m.Dtype.ToString().ToLowerInvariant(),
                m.Quantization.ToString().ToLowerInvariant(), m.IsDemo, m.Config.LayerCount, m.Config.HiddenSize,
                KvCache: m.KvCacheDtype.ToString().ToLowerInvariant());
        return ModelHost.LoadError is { } error
            ? new ModelStatus("failed", Shown(ModelOptions.Value.Source), Error: error)
            : new ModelStatus("loading", Shown(ModelOptions.Value.Source));
    }

    // A model folder is named by its last part (gpt-j-6b), not the server path it lives at; hub ids and demo stay as they are.
    private static string Shown(string source) =>
        Path.IsPathRooted(source) ? Path.GetFileName(Path.TrimEndingDirectorySeparator(source)) : source;

    // Not the job's options (they may name a dataset path on the server) nor its dataset problems (lines of user data).
    private static FineTuneStatus FineTune(FineTuneJob j) => new(
        j.Id, j.Adapter, j.State, j.Step, j.TotalSteps, j.Epoch, j.TokensPerSecond, j.EtaSeconds, j.CreatedAt, j.StartedAt, j.FinishedAt,
        j.QueuePosition, j.Error, j.TrainLoss.Count > 0 ? j.TrainLoss[^1].Loss : null, j.EvalLoss.Count > 0 ? j.EvalLoss[^1].Loss : null,
        DatasetString(j.Dataset, "format"), DatasetInt(j.Dataset, "trainCount"), DatasetInt(j.Dataset, "evalCount"), j.Metrics)
    {
        TrainCurve = j.TrainLoss,
        EvalCurve = j.EvalLoss,
    };

    private static string? DatasetString(JsonElement? dataset, string name) =>
        dataset is { ValueKind: JsonValueKind.Object } d && d.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static int? DatasetInt(JsonElement? dataset, string name) =>
        dataset is { ValueKind: JsonValueKind.Object } d && d.TryGetProperty(name, out var v) && v.TryGetInt32(out var i) ? i : null;
}

using System.Text.Json;
using ParaphraseService.Api.Adapters;

namespace ParaphraseService.Api.FineTuning;

/// <summary>
/// Fine-tune jobs as the endpoints and the runner see them: the embedded <see cref="FineTuneJobStore"/> (SQLite, jobs
/// trained by this process) or the cluster's PostgreSQL queue (jobs claimed by one trainer at a time under a lease).
/// A job's dataset and checkpoints sit in its local folder while a node works on it; a shared store also keeps them
/// where another node can take the job over.
/// </summary>
public interface IFineTuneJobStore
{
    /// <summary>Whether jobs are shared by several nodes (claimed under a lease) rather than owned by this process.</summary>
    bool Shared { get; }

    /// <summary>A job's local folder: its dataset and checkpoints.</summary>
    string JobFolder(string id);

    string CheckpointFolder(string id);

    /// <summary>Records a new queued job whose dataset file is already in its local folder.</summary>
    /// <exception cref="FineTuneConflictException">Another unfinished job produces the same adapter.</exception>
    void Create(string id, FineTuneRequest request, string datasetFile, JsonElement? dataset, DateTimeOffset now);

    FineTuneJob? Get(string id);

    /// <summary>Every job (or the <paramref name="limit"/> newest), newest first.</summary>
    IReadOnlyList<FineTuneJob> List(int? limit = null);

    /// <summary>The id of a queued or running job that produces <paramref name="adapter"/>, or null.</summary>
    string? UnfinishedJobFor(string adapter);

    int Count();

    /// <summary>The local dataset file a job trains on.</summary>
    string? DatasetFile(string id);

    /// <summary>
    /// The jobs this node takes up when it starts, in order. Embedded: those interrupted by the last shutdown (back to
    /// the queue), then the queued ones. Shared: none; jobs are claimed with <see cref="ClaimNext"/>.
    /// </summary>
    IReadOnlyList<string> Recover();

    /// <summary>
    /// Claims the next job for this node (shared stores; embedded ones return null, their jobs are handed to the
    /// runner as they are created): its dataset and newest checkpoint are then in its local folder.
    /// </summary>
    string? ClaimNext();

    /// <summary>A job may be waiting to be claimed (shared stores: another node queued it or gave it back).</summary>
    event Action? WorkAvailable;

    /// <summary>Gives held jobs back to the queue (this node stops); their checkpoints stay for whoever claims them next.</summary>
    void Release(IReadOnlyCollection<string> ids);

    /// <summary>Renews this node's leases on <paramref name="ids"/>: which it no longer holds, and which were asked to cancel.</summary>
    LeaseRenewal Renew(IReadOnlyCollection<string> ids);

    /// <summary>queued (embedded) or claimed by this node (shared) → running with its step counts; false when it may not start.</summary>
    bool TryStart(string id, int totalSteps, int step, int? resumedFromStep, JsonElement dataset, DateTimeOffset now);

    /// <exception cref="LeaseLostException">This node no longer holds the job (shared stores).</exception>
    void RecordStep(string id, int step, int epoch, double loss, double tokensPerSecond, double? etaSeconds);

    void RecordEval(string id, int step, double loss);

    void RecordMetrics(string id, IReadOnlyDictionary<string, double> metrics);

    /// <summary>A checkpoint was written to <paramref name="folder"/>: kept where another node can resume from it (shared stores).</summary>
    /// <exception cref="LeaseLostException">This node no longer holds the job.</exception>
    void SaveCheckpoint(string id, int step, string folder);

    /// <summary>
    /// Publishes the job's adapter from <paramref name="stagingFolder"/>. A shared store publishes it and ends the job
    /// as succeeded in one transaction, only while this node holds the job.
    /// </summary>
    /// <exception cref="LeaseLostException">This node no longer holds the job: nothing was published.</exception>
    PublishedAdapter PublishAdapter(string id, IAdapterStorage adapters, string name, string stagingFolder, bool replace, IReadOnlyDictionary<string, double> metrics);

    /// <summary>Ends a job that is not finished yet (a running one only by the node that holds it); false when it already was.</summary>
    bool TryFinish(string id, FineTuneState state, string? error, DateTimeOffset now, bool onlyIfQueued = false);

    /// <summary>Marks a running job for cancellation; false when it is not running.</summary>
    bool RequestCancel(string id);
}

/// <summary>What a lease renewal found: jobs this node no longer holds, and jobs someone asked to cancel.</summary>
public sealed record LeaseRenewal(IReadOnlyCollection<string> Lost, IReadOnlyCollection<string> CancelRequested)
{
    public static LeaseRenewal None { get; } = new([], []);
}

/// <summary>This node's lease on a job ran out and another node may hold it: whatever this node did since is discarded.</summary>
public sealed class LeaseLostException(string id) : Exception($"The lease on fine-tune job {id} was lost; another trainer may hold it now.")
{
    public string JobId => id;
}

/// <summary>A job for an adapter that another unfinished job already produces.</summary>
public sealed class FineTuneConflictException(string message) : Exception(message);

using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Npgsql;
using ParaphraseService.Api.Adapters;
using ParaphraseService.Api.FineTuning;
using ParaphraseService.Model.Lora.Peft;

namespace ParaphraseService.Api.Storage.PostgreSql;

/// <summary>
/// Fine-tune jobs as a work queue in the shared database. A trainer claims the oldest queued job (or one whose
/// trainer's lease ran out) with <c>FOR UPDATE SKIP LOCKED</c>, so each job goes to exactly one trainer, and renews
/// its lease while it trains. Every write a trainer makes is conditional on still holding the lease, so a trainer
/// that lost it (paused, cut off, killed) changes nothing: its steps, checkpoints and adapter are discarded, and the
/// next claimant resumes from the last checkpoint stored here. The dataset and the newest checkpoint are stored as
/// files; the adapter is published and the job ended in one transaction. Any replica reads any job.
/// </summary>
public sealed class PostgreSqlJobStore : IFineTuneJobStore
{
    private static readonly PostgreSqlCommands Sql = new(NpgsqlTypes.NpgsqlDbType.Unknown);

    private const string Columns = """
        seq, id, adapter, state, options_json, dataset_json, created_at, started_at, finished_at, step, total_steps, epoch,
        tokens_per_second, eta_seconds, error, metrics_json, resumed_from_step, cancel_requested, trainer
        """;

    private readonly PostgreSqlDatabase _db;
    private readonly PostgreSqlAdapterStore _adapters;
    private readonly FineTuneEvents _events;
    private readonly StorageOptions _options;
    private readonly ILogger<PostgreSqlJobStore> _logger;

    public PostgreSqlJobStore(IOptions<FineTuneOptions> options, IOptions<StorageOptions> storage, IHostEnvironment environment, PostgreSqlDatabase db,
        PostgreSqlAdapterStore adapters, FineTuneEvents events, ILogger<PostgreSqlJobStore> logger)
    {
        Directory = Path.GetFullPath(options.Value.Directory, environment.ContentRootPath);
        System.IO.Directory.CreateDirectory(Directory);
        (_db, _adapters, _events, _options, _logger) = (db, adapters, events, storage.Value, logger);
    }

    /// <summary>Where this node keeps the files of the jobs it works on.</summary>
    public string Directory { get; }

    public bool Shared => true;

    public event Action? WorkAvailable;

    /// <summary>Another node queued a job or gave one back (raised by the notification listener).</summary>
    internal void RaiseWorkAvailable() => WorkAvailable?.Invoke();

    public string JobFolder(string id) => Path.Combine(Directory, "jobs", id);

    public string CheckpointFolder(string id) => Path.Combine(JobFolder(id), "checkpoints");

    public void Create(string id, FineTuneRequest request, string datasetFile, JsonElement? dataset, DateTimeOffset now)
    {
        try
        {
            _db.InTransaction((connection, transaction) =>
            {
                Sql.Execute(connection, transaction, """
                    INSERT INTO jobs (id, adapter, state, options_json, dataset_file, dataset_json, created_at)
                    VALUES ($1, $2, 'queued', $3, $4, $5, $6)
                    """, id, request.Adapter!, JsonSerializer.Serialize(request, FineTuneJobStore.Json), Path.GetFileName(datasetFile),
                    dataset?.GetRawText(), now);
                // The dataset goes with the job: whichever trainer claims it reads it from here.
                var upload = Path.Combine(Path.GetDirectoryName(datasetFile)!, ".upload-" + Guid.NewGuid().ToString("N"));
                System.IO.Directory.CreateDirectory(upload);
                try
                {
                    File.Copy(datasetFile, Path.Combine(upload, Path.GetFileName(datasetFile)));
                    PostgreSqlFiles.Write(connection, transaction, DatasetOwner(id), upload);
                }
                finally
                {
                    System.IO.Directory.Delete(upload, recursive: true);
                }
                // The dataset lives in the database from here; whichever trainer claims the job fetches it into its own
                // folder (deleted before the commit: once committed, this node may claim the job and fetch it here).
                System.IO.Directory.Delete(JobFolder(id), recursive: true);
                Notify(connection, transaction, PostgreSqlSchema.JobsChannel, "queued");
            });
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UniqueViolation && e.ConstraintName == "jobs_one_unfinished_per_adapter")
        {
            throw new FineTuneConflictException($"Another job is already producing adapter '{request.Adapter}'.");
        }
    }

    public FineTuneJob? Get(string id) => _db.Run(connection => Read(connection, "WHERE id = $1", id).FirstOrDefault());

    public IReadOnlyList<FineTuneJob> List(int? limit = null) => _db.Run(connection => limit is { } n
        ? Read(connection, "ORDER BY seq DESC LIMIT $1", n)
        : Read(connection, "ORDER BY seq DESC"));

    public string? UnfinishedJobFor(string adapter) => _db.Run(connection =>
        Sql.Scalar(connection, null, "SELECT id FROM jobs WHERE adapter = $1 AND state IN ('queued', 'running') LIMIT 1", adapter) as string);

    public int Count() => _db.Run(connection => Convert.ToInt32(Sql.Scalar(connection, null, "SELECT COUNT(*) FROM jobs"), CultureInfo.InvariantCulture));

    public string? DatasetFile(string id) => _db.Run(connection =>
        Sql.Scalar(connection, null, "SELECT dataset_file FROM jobs WHERE id = $1", id) is string file ? Path.Combine(JobFolder(id), file) : null);

    /// <summary>Jobs are claimed, never recovered by one node.</summary>
    public IReadOnlyList<string> Recover() => [];

    public string? ClaimNext()
    {
        while (true)
        {
            var (id, cancelled) = _db.InTransaction((connection, transaction) =>
            {
                string id;
                bool cancel;
                int? checkpoint;
                string datasetFile;
                using (var select = new NpgsqlCommand("""
                    SELECT id, cancel_requested, checkpoint_step, dataset_file FROM jobs
                    WHERE state = 'queued' OR (state = 'running' AND lease_until < now())
                    ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED
                    """, connection, transaction))
                using (var reader = select.ExecuteReader())
                {
                    if (!reader.Read()) return ((string?)null, false);
                    (id, cancel, checkpoint, datasetFile) = (reader.GetString(0), reader.GetBoolean(1), reader.IsDBNull(2) ? null : reader.GetInt32(2), reader.GetString(3));
                }
                if (cancel) // cancelled while its trainer was gone: it ends here
                {
                    Sql.Execute(connection, transaction, """
                        UPDATE jobs SET state = 'cancelled', finished_at = now(), trainer = NULL, lease_until = NULL, tokens_per_second = NULL, eta_seconds = NULL
                        WHERE id = $1
                        """, id);
                    PostgreSqlFiles.Delete(connection, transaction, CheckpointOwner(id));
                    return (id, true);
                }
                Sql.Execute(connection, transaction, """
                    UPDATE jobs SET state = 'running', trainer = $2, lease_until = now() + make_interval(secs => $3), claims = claims + 1,
                        tokens_per_second = NULL, eta_seconds = NULL
                    WHERE id = $1
                    """, id, _db.NodeId, (double)_options.LeaseSeconds);
                // Its files come here while the row is locked: the dataset, and the newest checkpoint to resume from.
                var folder = JobFolder(id);
                if (System.IO.Directory.Exists(folder)) System.IO.Directory.Delete(folder, recursive: true);
                PostgreSqlFiles.Read(connection, transaction, DatasetOwner(id), folder);
                if (!File.Exists(Path.Combine(folder, datasetFile)))
                    throw new InvalidDataException($"The dataset of job {id} is missing from the database.");
                if (checkpoint is { } step)
                    PostgreSqlFiles.Read(connection, transaction, CheckpointOwner(id), Path.Combine(CheckpointFolder(id), $"step-{step:D7}"));
                return (id, false);
            });
            if (id is null) return null;
            if (!cancelled) return id;
            _logger.LogInformation("Fine-tune {Job} was cancelled while no trainer held it; ended", id);
            PublishState(id);
        }
    }

    public LeaseRenewal Renew(IReadOnlyCollection<string> ids) => _db.Run(connection =>
    {
        using var command = new NpgsqlCommand("""
            UPDATE jobs SET lease_until = now() + make_interval(secs => $3)
            WHERE id = ANY($1) AND trainer = $2 AND state = 'running'
            RETURNING id, cancel_requested
            """, connection) { Parameters = { new() { Value = ids.ToArray() }, new() { Value = _db.NodeId }, new() { Value = (double)_options.LeaseSeconds } } };
        using var reader = command.ExecuteReader();
        var held = new HashSet<string>(StringComparer.Ordinal);
        var cancel = new List<string>();
        while (reader.Read())
        {
            held.Add(reader.GetString(0));
            if (reader.GetBoolean(1)) cancel.Add(reader.GetString(0));
        }
        return new LeaseRenewal(ids.Where(id => !held.Contains(id)).ToList(), cancel);
    });

    public void Release(IReadOnlyCollection<string> ids) => _db.InTransaction((connection, transaction) =>
    {
        Sql.Execute(connection, transaction, """
            UPDATE jobs SET state = 'queued', trainer = NULL, lease_until = NULL, tokens_per_second = NULL, eta_seconds = NULL
            WHERE id = ANY($1) AND trainer = $2 AND state = 'running'
            """, ids.ToArray(), _db.NodeId);
        Notify(connection, transaction, PostgreSqlSchema.JobsChannel, "released");
    });

    public bool TryStart(string id, int totalSteps, int step, int? resumedFromStep, JsonElement dataset, DateTimeOffset now) => _db.Run(connection =>
        Sql.Execute(connection, null, """
            UPDATE jobs SET total_steps = $3, step = $4, resumed_from_step = $5, dataset_json = $6, started_at = COALESCE(started_at, $7)
            WHERE id = $1 AND trainer = $2 AND state = 'running'
            """, id, _db.NodeId, totalSteps, step, resumedFromStep, dataset.GetRawText(), now) == 1);

    public void RecordStep(string id, int step, int epoch, double loss, double tokensPerSecond, double? etaSeconds) => _db.InTransaction((connection, transaction) =>
    {
        if (Sql.Execute(connection, transaction, """
            UPDATE jobs SET step = $3, epoch = $4, tokens_per_second = $5, eta_seconds = $6 WHERE id = $1 AND trainer = $2 AND state = 'running'
            """, id, _db.NodeId, step, epoch, tokensPerSecond, etaSeconds) != 1)
            throw new LeaseLostException(id); // noticed at the step, not a renewal later: no event from a node that lost the job
        InsertLoss(connection, transaction, id, "train", step, loss);
    });

    public void RecordEval(string id, int step, double loss) => _db.InTransaction((connection, transaction) =>
    {
        if (Holds(connection, transaction, id, lockRow: false))
            InsertLoss(connection, transaction, id, "eval", step, loss);
    });

    public void RecordMetrics(string id, IReadOnlyDictionary<string, double> metrics) => _db.Run(connection =>
        Sql.Execute(connection, null, "UPDATE jobs SET metrics_json = $3 WHERE id = $1 AND trainer = $2 AND state = 'running'", id, _db.NodeId, MetricsJson(metrics)));

    public void SaveCheckpoint(string id, int step, string folder) => _db.InTransaction((connection, transaction) =>
    {
        if (!Holds(connection, transaction, id, lockRow: true))
            throw new LeaseLostException(id);
        PostgreSqlFiles.Write(connection, transaction, CheckpointOwner(id), folder);
        Sql.Execute(connection, transaction, "UPDATE jobs SET checkpoint_step = $2 WHERE id = $1", id, step);
    });

    public PublishedAdapter PublishAdapter(string id, IAdapterStorage adapters, string name, string stagingFolder, bool replace,
        IReadOnlyDictionary<string, double> metrics) =>
        _adapters.Publish(name, stagingFolder, replace, AdapterOrigin.FineTune, (connection, transaction) =>
        {
            // Published only by the trainer that holds the job, and the job ends in the same transaction: exactly once.
            if (!Holds(connection, transaction, id, lockRow: true))
                throw new LeaseLostException(id);
            Sql.Execute(connection, transaction, """
                UPDATE jobs SET state = 'succeeded', finished_at = now(), metrics_json = $2, lease_until = NULL, tokens_per_second = NULL, eta_seconds = NULL
                WHERE id = $1
                """, id, MetricsJson(metrics));
            PostgreSqlFiles.Delete(connection, transaction, CheckpointOwner(id));
        });

    public bool TryFinish(string id, FineTuneState state, string? error, DateTimeOffset now, bool onlyIfQueued = false) => _db.InTransaction((connection, transaction) =>
    {
        var ended = Sql.Execute(connection, transaction, $"""
            UPDATE jobs SET state = $3, error = $4, finished_at = $5, tokens_per_second = NULL, eta_seconds = NULL, lease_until = NULL
            WHERE id = $1 AND (state = 'queued' {(onlyIfQueued ? "" : "OR (state = 'running' AND trainer = $2)")})
            """, id, _db.NodeId, state.ToString().ToLowerInvariant(), error, now) == 1;
        if (ended) PostgreSqlFiles.Delete(connection, transaction, CheckpointOwner(id));
        return ended;
    });

    public bool RequestCancel(string id) => _db.Run(connection =>
        Sql.Execute(connection, null, "UPDATE jobs SET cancel_requested = true WHERE id = $1 AND state = 'running'", id) == 1);

    private bool Holds(NpgsqlConnection connection, NpgsqlTransaction transaction, string id, bool lockRow) =>
        Sql.Scalar(connection, transaction, $"SELECT 1 FROM jobs WHERE id = $1 AND trainer = $2 AND state = 'running'{(lockRow ? " FOR UPDATE" : "")}", id, _db.NodeId) is not null;

    private void PublishState(string id)
    {
        if (Get(id) is { } job) _events.Publish(id, new JobEvent("state", job));
    }

    internal static string DatasetOwner(string id) => $"job:{id}:dataset";

    internal static string CheckpointOwner(string id) => $"job:{id}:checkpoint";

    private static string MetricsJson(IReadOnlyDictionary<string, double> metrics) =>
        JsonSerializer.Serialize(metrics.Where(m => double.IsFinite(m.Value)).ToDictionary(), FineTuneJobStore.Json);

    // A diverged step (NaN or infinite loss) is not recorded: JSON has no number for it.
    private static void InsertLoss(NpgsqlConnection connection, NpgsqlTransaction transaction, string id, string kind, int step, double loss)
    {
        if (double.IsFinite(loss))
            Sql.Execute(connection, transaction, """
                INSERT INTO losses (job_id, kind, step, loss) VALUES ($1, $2, $3, $4) ON CONFLICT (job_id, kind, step) DO UPDATE SET loss = EXCLUDED.loss
                """, id, kind, step, loss);
    }

    private static void Notify(NpgsqlConnection connection, NpgsqlTransaction transaction, string channel, string payload) =>
        Sql.Execute(connection, transaction, $"SELECT pg_notify('{channel}', $1)", payload);

    private static List<FineTuneJob> Read(NpgsqlConnection connection, string where, params object?[] parameters)
    {
        var jobs = new List<(FineTuneJob Job, long Seq)>();
        using (var command = Sql.Command(connection, null, $"SELECT {Columns} FROM jobs {where}", parameters))
        using (var reader = command.ExecuteReader())
        {
            while (reader.Read())
            {
                jobs.Add((new FineTuneJob(
                    Id: reader.GetString(1),
                    Adapter: reader.GetString(2),
                    State: Enum.Parse<FineTuneState>(reader.GetString(3), ignoreCase: true),
                    CreatedAt: reader.GetFieldValue<DateTimeOffset>(6),
                    StartedAt: reader.IsDBNull(7) ? null : reader.GetFieldValue<DateTimeOffset>(7),
                    FinishedAt: reader.IsDBNull(8) ? null : reader.GetFieldValue<DateTimeOffset>(8),
                    Step: reader.GetInt32(9),
                    TotalSteps: reader.GetInt32(10),
                    Epoch: reader.GetInt32(11),
                    TokensPerSecond: reader.IsDBNull(12) ? null : reader.GetDouble(12),
                    EtaSeconds: reader.IsDBNull(13) ? null : reader.GetDouble(13),
                    Error: reader.IsDBNull(14) ? null : reader.GetString(14),
                    QueuePosition: null,
                    ResumedFromStep: reader.IsDBNull(16) ? null : reader.GetInt32(16),
                    CancelRequested: reader.GetBoolean(17),
                    Options: JsonSerializer.Deserialize<FineTuneRequest>(reader.GetString(4), FineTuneJobStore.Json)!,
                    Dataset: reader.IsDBNull(5) ? null : JsonDocument.Parse(reader.GetString(5)).RootElement.Clone(),
                    Metrics: reader.IsDBNull(15) ? new Dictionary<string, double>() : JsonSerializer.Deserialize<Dictionary<string, double>>(reader.GetString(15), FineTuneJobStore.Json)!,
                    TrainLoss: [],
                    EvalLoss: [],
                    Trainer: reader.IsDBNull(18) ? null : reader.GetString(18)), reader.GetInt64(0)));
            }
        }
        if (jobs.Count == 0) return [];

        var losses = new Dictionary<(string, string), List<LossPoint>>();
        using (var command = Sql.Command(connection, null, "SELECT job_id, kind, step, loss FROM losses WHERE job_id = ANY($1) ORDER BY step", (object)jobs.Select(j => j.Job.Id).ToArray()))
        using (var reader = command.ExecuteReader())
        {
            while (reader.Read())
            {
                var key = (reader.GetString(0), reader.GetString(1));
                if (!losses.TryGetValue(key, out var list)) losses[key] = list = [];
                list.Add(new LossPoint(reader.GetInt32(2), reader.GetDouble(3)));
            }
        }
        var queued = new List<long>();
        using (var command = Sql.Command(connection, null, "SELECT seq FROM jobs WHERE state = 'queued'"))
        using (var reader = command.ExecuteReader())
            while (reader.Read()) queued.Add(reader.GetInt64(0));
        return jobs.Select(j => j.Job with
        {
            TrainLoss = losses.GetValueOrDefault((j.Job.Id, "train")) ?? [],
            EvalLoss = losses.GetValueOrDefault((j.Job.Id, "eval")) ?? [],
            QueuePosition = j.Job.State == FineTuneState.Queued ? queued.Count(s => s < j.Seq) : null,
        }).ToList();
    }
}

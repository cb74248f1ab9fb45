using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Options;
using ParaphraseService.Api.Storage;
using static ParaphraseService.Api.Storage.JobDatabase;

namespace ParaphraseService.Api.FineTuning;

/// <summary>
/// Fine-tune jobs, their progress and loss curves in an SQLite file (<c>jobs.db</c> in the fine-tunes directory),
/// beside one folder per job for its dataset and checkpoints. State changes are conditional updates, so a cancel and
/// the runner starting the same job cannot both win.
/// </summary>
public sealed class FineTuneJobStore : IFineTuneJobStore
{
    internal static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) } };

    private readonly string _connectionString;

    public FineTuneJobStore(IOptions<FineTuneOptions> options, IHostEnvironment environment)
    {
        Directory = Path.GetFullPath(options.Value.Directory, environment.ContentRootPath);
        _connectionString = CreateSchema(Directory);
    }

    private static string CreateSchema(string directory) => JobDatabase.Create(directory, """
            CREATE TABLE IF NOT EXISTS jobs (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                id TEXT NOT NULL UNIQUE,
                adapter TEXT NOT NULL,
                state TEXT NOT NULL,
                options_json TEXT NOT NULL,
                dataset_file TEXT NOT NULL,
                dataset_json TEXT,
                created_at TEXT NOT NULL,
                started_at TEXT,
                finished_at TEXT,
                step INTEGER NOT NULL DEFAULT 0,
                total_steps INTEGER NOT NULL DEFAULT 0,
                epoch INTEGER NOT NULL DEFAULT 0,
                tokens_per_second REAL,
                eta_seconds REAL,
                error TEXT,
                metrics_json TEXT,
                resumed_from_step INTEGER,
                cancel_requested INTEGER NOT NULL DEFAULT 0);
            CREATE TABLE IF NOT EXISTS losses (
                job_id TEXT NOT NULL,
                kind TEXT NOT NULL,
                step INTEGER NOT NULL,
                loss REAL NOT NULL,
                PRIMARY KEY (job_id, kind, step));
            """);

    /// <summary>The fine-tunes directory (absolute).</summary>
    public string Directory { get; }

    /// <summary>Jobs belong to this process.</summary>
    public bool Shared => false;

    public IReadOnlyList<string> Recover()
    {
        RequeueInterrupted();
        return Queued().Select(j => j.Id).ToList();
    }

    /// <summary>Jobs are handed to the runner as they are created, never claimed.</summary>
    public string? ClaimNext() => null;

    /// <summary>Never raised: jobs are handed to the runner as they are created.</summary>
    public event Action? WorkAvailable
    {
        add { }
        remove { }
    }

    /// <summary>Running jobs stay running in the file: the next start puts them back in the queue (<see cref="Recover"/>).</summary>
    public void Release(IReadOnlyCollection<string> ids)
    {
    }

    /// <summary>This process holds its jobs for as long as it runs.</summary>
    public LeaseRenewal Renew(IReadOnlyCollection<string> ids) => LeaseRenewal.None;

    /// <summary>The checkpoint stays in the job's folder, where a restart finds it.</summary>
    public void SaveCheckpoint(string id, int step, string folder)
    {
    }

    public Adapters.PublishedAdapter PublishAdapter(string id, Adapters.IAdapterStorage adapters, string name, string stagingFolder, bool replace,
        IReadOnlyDictionary<string, double> metrics) =>
        adapters.Publish(name, stagingFolder, replace, Model.Lora.Peft.AdapterOrigin.FineTune);

    /// <summary>A job's own folder: its dataset and checkpoints.</summary>
    public string JobFolder(string id) => Path.Combine(Directory, "jobs", id);

    public string CheckpointFolder(string id) => Path.Combine(JobFolder(id), "checkpoints");

    /// <summary>Records a new queued job whose dataset file is already in its folder.</summary>
    public void Create(string id, FineTuneRequest request, string datasetFile, JsonElement? dataset, DateTimeOffset now)
    {
        using var connection = Open();
        Execute(connection, """
            INSERT INTO jobs (id, adapter, state, options_json, dataset_file, dataset_json, created_at)
            VALUES ($id, $adapter, 'queued', $options, $file, $dataset, $now)
            """,
            ("$id", id), ("$adapter", request.Adapter!), ("$options", JsonSerializer.Serialize(request, Json)), ("$file", datasetFile),
            ("$dataset", dataset?.GetRawText()), ("$now", Time(now)));
    }

    public FineTuneJob? Get(string id)
    {
        using var connection = Open();
        return Read(connection, "WHERE id = $id", ("$id", id)).FirstOrDefault();
    }

    /// <summary>Every job (or the <paramref name="limit"/> newest), newest first.</summary>
    public IReadOnlyList<FineTuneJob> List(int? limit = null)
    {
        using var connection = Open();
        return limit is { } n ? Read(connection, "ORDER BY seq DESC LIMIT $limit", ("$limit", n)) : Read(connection, "ORDER BY seq DESC");
    }

    /// <summary>The id of a queued or running job that produces <paramref name="adapter"/>, or null.</summary>
    public string? UnfinishedJobFor(string adapter)
    {
        using var connection = Open();
        using var command = Command(connection, "SELECT id FROM jobs WHERE adapter = $adapter AND state IN ('queued', 'running') LIMIT 1", ("$adapter", adapter));
        return command.ExecuteScalar() as string;
    }

    /// <summary>How many jobs there are, in every state.</summary>
    public int Count()
    {
        using var connection = Open();
        using var command = Command(connection, "SELECT COUNT(*) FROM jobs");
        return Convert.ToInt32(command.ExecuteScalar(), CultureInfo.InvariantCulture);
    }

    /// <summary>Queued jobs in the order they start.</summary>
    public IReadOnlyList<FineTuneJob> Queued()
    {
        using var connection = Open();
        return Read(connection, "WHERE state = 'queued' ORDER BY seq");
    }

    /// <summary>The dataset file a job trains on.</summary>
    public string? DatasetFile(string id)
    {
        using var connection = Open();
        using var command = Command(connection, "SELECT dataset_file FROM jobs WHERE id = $id", ("$id", id));
        return command.ExecuteScalar() as string;
    }

    /// <summary>Jobs that were running when the process stopped go back to the queue, ahead of newer ones (their order is kept).</summary>
    public int RequeueInterrupted()
    {
        using var connection = Open();
        return Execute(connection, "UPDATE jobs SET state = 'queued', tokens_per_second = NULL, eta_seconds = NULL WHERE state = 'running'");
    }

    /// <summary>queued → running; false when the job is no longer queued (cancelled meanwhile).</summary>
    public bool TryStart(string id, int totalSteps, int step, int? resumedFromStep, JsonElement dataset, DateTimeOffset now)
    {
        using var connection = Open();
        return Execute(connection, """
            UPDATE jobs SET state = 'running', total_steps = $total, step = $step, resumed_from_step = $resumed,
                dataset_json = $dataset, started_at = COALESCE(started_at, $now)
            WHERE id = $id AND state = 'queued'
            """,
            ("$id", id), ("$total", totalSteps), ("$step", step), ("$resumed", resumedFromStep), ("$dataset", dataset.GetRawText()), ("$now", Time(now))) == 1;
    }

    /// <summary>One optimizer step's progress and train loss.</summary>
    public void RecordStep(string id, int step, int epoch, double loss, double tokensPerSecond, double? etaSeconds)
    {
        using var connection = Open();
        using var transaction = connection.BeginTransaction();
        Execute(connection, """
            UPDATE jobs SET step = $step, epoch = $epoch, tokens_per_second = $tps, eta_seconds = $eta WHERE id = $id
            """, ("$id", id), ("$step", step), ("$epoch", epoch), ("$tps", tokensPerSecond), ("$eta", etaSeconds));
        InsertLoss(connection, id, "train", step, loss);
        transaction.Commit();
    }

    public void RecordEval(string id, int step, double loss)
    {
        using var connection = Open();
        InsertLoss(connection, id, "eval", step, loss);
    }

    public void RecordMetrics(string id, IReadOnlyDictionary<string, double> metrics)
    {
        using var connection = Open();
        var finite = metrics.Where(m => double.IsFinite(m.Value)).ToDictionary();
        Execute(connection, "UPDATE jobs SET metrics_json = $metrics WHERE id = $id", ("$id", id), ("$metrics", JsonSerializer.Serialize(finite, Json)));
    }

    /// <summary>
    /// Ends a job that is not finished yet; false when it already was. A cancel of a queued job ends it here at once; a
    /// running job is ended by the runner.
    /// </summary>
    public bool TryFinish(string id, FineTuneState state, string? error, DateTimeOffset now, bool onlyIfQueued = false)
    {
        using var connection = Open();
        return Execute(connection, $"""
            UPDATE jobs SET state = $state, error = $error, finished_at = $now, tokens_per_second = NULL, eta_seconds = NULL
            WHERE id = $id AND state {(onlyIfQueued ? "= 'queued'" : "IN ('queued', 'running')")}
            """, ("$id", id), ("$state", Name(state)), ("$error", error), ("$now", Time(now))) == 1;
    }

    /// <summary>Marks a running job for cancellation (kept across a restart); false when it is not running.</summary>
    public bool RequestCancel(string id)
    {
        using var connection = Open();
        return Execute(connection, "UPDATE jobs SET cancel_requested = 1 WHERE id = $id AND state = 'running'", ("$id", id)) == 1;
    }

    // A diverged step (NaN or infinite loss) is not recorded: JSON has no number for it.
    private static void InsertLoss(SqliteConnection connection, string id, string kind, int step, double loss)
    {
        if (double.IsFinite(loss))
            Execute(connection, "INSERT OR REPLACE INTO losses (job_id, kind, step, loss) VALUES ($id, $kind, $step, $loss)",
                ("$id", id), ("$kind", kind), ("$step", step), ("$loss", loss));
    }

    private List<FineTuneJob> Read(SqliteConnection connection, string where, params (string, object?)[] parameters)
    {
        var jobs = new List<(FineTuneJob Job, long Seq)>();
        using (var command = Command(connection, $"""
            SELECT seq, id, adapter, state, options_json, dataset_json, created_at, started_at, finished_at, step, total_steps, epoch,
                   tokens_per_second, eta_seconds, error, metrics_json, resumed_from_step, cancel_requested
            FROM jobs {where}
            """, parameters))
        using (var reader = command.ExecuteReader())
        {
            while (reader.Read())
            {
                jobs.Add((new FineTuneJob(
                    Id: reader.GetString(1),
                    Adapter: reader.GetString(2),
                    State: Enum.Parse<FineTuneState>(reader.GetString(3), ignoreCase: true),
                    CreatedAt: ParseTime(reader.GetString(6)),
                    StartedAt: reader.IsDBNull(7) ? null : ParseTime(reader.GetString(7)),
                    FinishedAt: reader.IsDBNull(8) ? null : ParseTime(reader.GetString(8)),
                    Step: reader.GetInt32(9),
                    TotalSteps: reader.GetInt32(10),
                    Epoch: reader.GetInt32(11),
                    TokensPerSecond: reader.IsDBNull(12) ? null : reader.GetDouble(12),
                    EtaSeconds: reader.IsDBNull(13) ? null : reader.GetDouble(13),
                    Error: reader.IsDBNull(14) ? null : reader.GetString(14),
                    QueuePosition: null,
                    ResumedFromStep: reader.IsDBNull(16) ? null : reader.GetInt32(16),
                    CancelRequested: reader.GetInt32(17) != 0,
                    Options: JsonSerializer.Deserialize<FineTuneRequest>(reader.GetString(4), Json)!,
                    Dataset: reader.IsDBNull(5) ? null : JsonDocument.Parse(reader.GetString(5)).RootElement.Clone(),
                    Metrics: reader.IsDBNull(15) ? new Dictionary<string, double>() : JsonSerializer.Deserialize<Dictionary<string, double>>(reader.GetString(15), Json)!,
                    TrainLoss: [],
                    EvalLoss: []), reader.GetInt64(0)));
            }
        }
        if (jobs.Count == 0) return [];

        var losses = new Dictionary<(string, string), List<LossPoint>>();
        var ids = jobs.Select(j => j.Job.Id).ToList();
        using (var command = Command(connection, $"SELECT job_id, kind, step, loss FROM losses WHERE job_id IN ({string.Join(", ", ids.Select((_, i) => "$j" + i))}) ORDER BY step",
            ids.Select((id, i) => ("$j" + i, (object?)id)).ToArray()))
        using (var reader = command.ExecuteReader())
        {
            while (reader.Read())
            {
                var key = (reader.GetString(0), reader.GetString(1));
                if (!losses.TryGetValue(key, out var list)) losses[key] = list = [];
                list.Add(new LossPoint(reader.GetInt32(2), reader.GetDouble(3)));
            }
        }
        var queuedBefore = QueuedSeqs(connection);
        return jobs.Select(j => j.Job with
        {
            TrainLoss = losses.GetValueOrDefault((j.Job.Id, "train")) ?? [],
            EvalLoss = losses.GetValueOrDefault((j.Job.Id, "eval")) ?? [],
            QueuePosition = j.Job.State == FineTuneState.Queued ? queuedBefore.Count(s => s < j.Seq) : null,
        }).ToList();
    }

    private static List<long> QueuedSeqs(SqliteConnection connection)
    {
        using var command = Command(connection, "SELECT seq FROM jobs WHERE state = 'queued'");
        using var reader = command.ExecuteReader();
        var seqs = new List<long>();
        while (reader.Read()) seqs.Add(reader.GetInt64(0));
        return seqs;
    }

    private static string Name(FineTuneState state) => state.ToString().ToLowerInvariant();

    private SqliteConnection Open() => JobDatabase.Open(_connectionString);
}

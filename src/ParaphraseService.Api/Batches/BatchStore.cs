using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Options;
using ParaphraseService.Api.FineTuning;
using ParaphraseService.Api.Storage;
using static ParaphraseService.Api.Storage.JobDatabase;

namespace ParaphraseService.Api.Batches;

/// <summary>
/// Batches in the embedded store: two tables in the fine-tune job database (<c>jobs.db</c> in FineTunes:Directory),
/// created beside the job tables as they are (<c>CREATE TABLE IF NOT EXISTS</c>). The lease columns work as in the
/// shared store, so one runner serves both; the file belongs to one process, so at start it takes back what the last
/// process held (<see cref="Recover"/>) instead of waiting for those leases to run out.
/// </summary>
public sealed class BatchStore : IBatchStore
{
    private const int PageSize = 256;
    private readonly string _connectionString;
    private readonly string _node;
    private readonly TimeProvider _time;

    public BatchStore(IOptions<FineTuneOptions> options, IHostEnvironment environment, IOptions<NodeOptions> node, TimeProvider time)
    {
        var directory = Path.GetFullPath(options.Value.Directory, environment.ContentRootPath);
        (_node, _time) = (node.Value.NodeId, time);
        _connectionString = CreateSchema(directory);
    }

    private static string CreateSchema(string directory) => JobDatabase.Create(directory, """
            CREATE TABLE IF NOT EXISTS batches (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                id TEXT NOT NULL UNIQUE,
                state TEXT NOT NULL,
                lines INTEGER NOT NULL,
                succeeded INTEGER NOT NULL DEFAULT 0,
                failed INTEGER NOT NULL DEFAULT 0,
                cancelled INTEGER NOT NULL DEFAULT 0,
                created_at TEXT NOT NULL,
                started_at TEXT,
                finished_at TEXT,
                error TEXT,
                runner TEXT,
                lease_until INTEGER,
                claims INTEGER NOT NULL DEFAULT 0);
            CREATE TABLE IF NOT EXISTS batch_lines (
                batch_id TEXT NOT NULL,
                line INTEGER NOT NULL,
                custom_id TEXT,
                request_json TEXT,
                state TEXT NOT NULL,
                result_json TEXT,
                attempts INTEGER NOT NULL DEFAULT 0,
                finished_at TEXT,
                PRIMARY KEY (batch_id, line));
            CREATE INDEX IF NOT EXISTS batch_lines_pending ON batch_lines (batch_id, line) WHERE state = 'pending';
            """);

    public void Create(string id, IReadOnlyList<BatchLineInput> lines, DateTimeOffset now)
    {
        using var connection = Open();
        using var transaction = connection.BeginTransaction();
        Execute(connection, """
            INSERT INTO batches (id, state, lines, failed, created_at) VALUES ($id, 'queued', $lines, $failed, $now)
            """, ("$id", id), ("$lines", lines.Count), ("$failed", lines.Count(l => l.Error is not null)), ("$now", Time(now)));
        using var insert = Command(connection, """
            INSERT INTO batch_lines (batch_id, line, custom_id, request_json, state, result_json, finished_at)
            VALUES ($batch, $line, $custom, $request, $state, $result, $finished)
            """, ("$batch", id), ("$line", 0), ("$custom", null), ("$request", null), ("$state", ""), ("$result", null), ("$finished", null));
        insert.Prepare();
        foreach (var line in lines)
        {
            insert.Parameters["$line"].Value = line.Line;
            insert.Parameters["$custom"].Value = (object?)line.CustomId ?? DBNull.Value;
            insert.Parameters["$request"].Value = (object?)line.Request ?? DBNull.Value;
            insert.Parameters["$state"].Value = line.Error is null ? "pending" : "failed";
            insert.Parameters["$result"].Value = line.Error is null ? DBNull.Value : BatchJson.Error(line.Error);
            insert.Parameters["$finished"].Value = line.Error is null ? DBNull.Value : Time(now);
            insert.ExecuteNonQuery();
        }
        transaction.Commit();
    }

    public Batch? Get(string id)
    {
        using var connection = Open();
        return Read(connection, "WHERE id = $id", ("$id", id)).FirstOrDefault();
    }

    public IReadOnlyList<Batch> List(int limit)
    {
        using var connection = Open();
        return Read(connection, "ORDER BY seq DESC LIMIT $limit", ("$limit", limit));
    }

    public (int Queued, int Running) CountUnfinished()
    {
        using var connection = Open();
        using var command = Command(connection, "SELECT COALESCE(SUM(state = 'queued'), 0), COALESCE(SUM(state = 'running'), 0) FROM batches");
        using var reader = command.ExecuteReader();
        reader.Read();
        return (reader.GetInt32(0), reader.GetInt32(1));
    }

    public void Recover()
    {
        using var connection = Open();
        Execute(connection, "UPDATE batches SET state = 'queued', lease_until = NULL WHERE state = 'running'");
    }

    public string? ClaimNext(TimeSpan lease)
    {
        using var connection = Open();
        using var transaction = connection.BeginTransaction(); // BEGIN IMMEDIATE: one claimant at a time
        using var select = Command(connection, """
            SELECT id FROM batches WHERE state = 'queued' OR (state = 'running' AND (lease_until IS NULL OR lease_until < $now))
            ORDER BY seq LIMIT 1
            """, ("$now", Millis()));
        if (select.ExecuteScalar() is not string id)
            return null;
        Execute(connection, """
            UPDATE batches SET state = 'running', runner = $node, lease_until = $until, claims = claims + 1, started_at = COALESCE(started_at, $time)
            WHERE id = $id
            """, ("$id", id), ("$node", _node), ("$until", Millis(lease)), ("$time", Time(_time.GetUtcNow())));
        transaction.Commit();
        return id;
    }

    public IReadOnlyCollection<string> Renew(IReadOnlyCollection<string> ids, TimeSpan lease)
    {
        using var connection = Open();
        return ids.Where(id => Execute(connection, "UPDATE batches SET lease_until = $until WHERE id = $id AND runner = $node AND state = 'running'",
            ("$id", id), ("$node", _node), ("$until", Millis(lease))) == 0).ToList();
    }

    public void Release(IReadOnlyCollection<string> ids)
    {
        using var connection = Open();
        foreach (var id in ids)
            Execute(connection, "UPDATE batches SET state = 'queued', lease_until = NULL WHERE id = $id AND runner = $node AND state = 'running'",
                ("$id", id), ("$node", _node));
    }

    public IReadOnlyList<PendingLine> TakePending(string id, int afterLine, int count)
    {
        using var connection = Open();
        using var transaction = connection.BeginTransaction();
        if (!Holds(connection, id))
            throw new BatchLeaseLostException(id);
        var lines = new List<PendingLine>();
        using (var select = Command(connection, """
            SELECT line, custom_id, request_json, attempts FROM batch_lines
            WHERE batch_id = $id AND state = 'pending' AND line > $after ORDER BY line LIMIT $count
            """, ("$id", id), ("$after", afterLine), ("$count", count)))
        using (var reader = select.ExecuteReader())
        {
            while (reader.Read())
                lines.Add(new PendingLine(reader.GetInt32(0), reader.IsDBNull(1) ? null : reader.GetString(1), reader.GetString(2), reader.GetInt32(3) + 1));
        }
        using var attempt = Command(connection, "UPDATE batch_lines SET attempts = attempts + 1 WHERE batch_id = $id AND line = $line", ("$id", id), ("$line", 0));
        foreach (var line in lines)
        {
            attempt.Parameters["$line"].Value = line.Line;
            attempt.ExecuteNonQuery();
        }
        transaction.Commit();
        return lines;
    }

    public bool RecordLine(string id, int line, LineState state, string result, DateTimeOffset now)
    {
        using var connection = Open();
        using var transaction = connection.BeginTransaction();
        if (!Holds(connection, id))
            return false;
        if (Execute(connection, """
            UPDATE batch_lines SET state = $state, result_json = $result, finished_at = $now WHERE batch_id = $id AND line = $line AND state = 'pending'
            """, ("$id", id), ("$line", line), ("$state", Name(state)), ("$result", result), ("$now", Time(now))) == 0)
            return false;
        Execute(connection, $"UPDATE batches SET {Counter(state)} = {Counter(state)} + 1 WHERE id = $id", ("$id", id));
        transaction.Commit();
        return true;
    }

    public bool TryComplete(string id, DateTimeOffset now)
    {
        using var connection = Open();
        return Execute(connection, """
            UPDATE batches SET state = 'completed', finished_at = $now, lease_until = NULL
            WHERE id = $id AND runner = $node AND state = 'running'
              AND NOT EXISTS (SELECT 1 FROM batch_lines WHERE batch_id = $id AND state = 'pending')
            """, ("$id", id), ("$node", _node), ("$now", Time(now))) == 1;
    }

    public bool TryFail(string id, string error, DateTimeOffset now) => End(id, "failed", error, now, "runner = $node AND state = 'running'");

    public bool Cancel(string id, DateTimeOffset now) => End(id, "cancelled", null, now, "state IN ('queued', 'running')");

    /// <summary>Ends a batch and cancels its pending lines in one transaction, if <paramref name="condition"/> holds.</summary>
    private bool End(string id, string state, string? error, DateTimeOffset now, string condition)
    {
        using var connection = Open();
        using var transaction = connection.BeginTransaction();
        using (var check = Command(connection, $"SELECT 1 FROM batches WHERE id = $id AND {condition}", ("$id", id), ("$node", _node)))
            if (check.ExecuteScalar() is null)
                return false;
        var cancelled = Execute(connection, "UPDATE batch_lines SET state = 'cancelled', finished_at = $now WHERE batch_id = $id AND state = 'pending'",
            ("$id", id), ("$now", Time(now)));
        Execute(connection, """
            UPDATE batches SET state = $state, error = $error, finished_at = $now, lease_until = NULL, cancelled = cancelled + $cancelled WHERE id = $id
            """, ("$id", id), ("$state", state), ("$error", error), ("$now", Time(now)), ("$cancelled", cancelled));
        transaction.Commit();
        return true;
    }

    public IEnumerable<StoredLine> Lines(string id)
    {
        var after = 0;
        while (true)
        {
            var page = new List<StoredLine>(PageSize);
            using (var connection = Open())
            using (var command = Command(connection, """
                SELECT line, custom_id, state, result_json FROM batch_lines WHERE batch_id = $id AND line > $after ORDER BY line LIMIT $limit
                """, ("$id", id), ("$after", after), ("$limit", PageSize)))
            using (var reader = command.ExecuteReader())
            {
                while (reader.Read())
                    page.Add(new StoredLine(reader.GetInt32(0), reader.IsDBNull(1) ? null : reader.GetString(1),
                        Enum.Parse<LineState>(reader.GetString(2), ignoreCase: true), reader.IsDBNull(3) ? null : reader.GetString(3)));
            }
            foreach (var line in page)
                yield return line;
            if (page.Count < PageSize)
                yield break;
            after = page[^1].Line;
        }
    }

    private bool Holds(SqliteConnection connection, string id)
    {
        using var command = Command(connection, "SELECT 1 FROM batches WHERE id = $id AND runner = $node AND state = 'running'", ("$id", id), ("$node", _node));
        return command.ExecuteScalar() is not null;
    }

    private static List<Batch> Read(SqliteConnection connection, string where, params (string, object?)[] parameters)
    {
        using var command = Command(connection, $"""
            SELECT id, state, lines, succeeded, failed, cancelled, created_at, started_at, finished_at, error, runner FROM batches {where}
            """, parameters);
        using var reader = command.ExecuteReader();
        var batches = new List<Batch>();
        while (reader.Read())
        {
            batches.Add(new Batch(
                Id: reader.GetString(0),
                Status: Enum.Parse<BatchState>(reader.GetString(1), ignoreCase: true),
                Lines: reader.GetInt32(2),
                Succeeded: reader.GetInt32(3),
                Failed: reader.GetInt32(4),
                Cancelled: reader.GetInt32(5),
                CreatedAt: ParseTime(reader.GetString(6)),
                StartedAt: reader.IsDBNull(7) ? null : ParseTime(reader.GetString(7)),
                FinishedAt: reader.IsDBNull(8) ? null : ParseTime(reader.GetString(8)),
                Error: reader.IsDBNull(9) ? null : reader.GetString(9),
                Node: reader.IsDBNull(10) ? null : reader.GetString(10)));
        }
        return batches;
    }

    /// <summary>The batch column that counts lines ending in <paramref name="state"/>.</summary>
    internal static string Counter(LineState state) => state switch
    {
        LineState.Succeeded => "succeeded",
        LineState.Failed => "failed",
        _ => throw new ArgumentOutOfRangeException(nameof(state), state, "A line ends succeeded or failed."),
    };

    internal static string Name(LineState state) => state.ToString().ToLowerInvariant();

    private long Millis(TimeSpan after = default) => (_time.GetUtcNow() + after).ToUnixTimeMilliseconds();

    private SqliteConnection Open() => JobDatabase.Open(_connectionString);
}

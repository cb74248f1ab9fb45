using System.Globalization;
using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;
using ParaphraseService.Api.Batches;

namespace ParaphraseService.Api.Storage.PostgreSql;

/// <summary>
/// Batches in the shared database, run like fine-tune jobs: a serving node claims the oldest queued batch (or one whose
/// runner's lease ran out) with <c>FOR UPDATE SKIP LOCKED</c> and renews its lease while it runs it. Taking lines and
/// recording a line's result lock the batch row and check this node still holds it, so a node that lost the batch
/// (paused, cut off, killed) stores nothing more, and a cancel (which locks the same row first) and a result never
/// interleave. Lines are written with COPY, results one line per transaction as they finish. Any replica reads any batch.
/// </summary>
public sealed class PostgreSqlBatchStore(PostgreSqlDatabase db) : IBatchStore
{
    private static readonly PostgreSqlCommands Sql = new(NpgsqlDbType.Text);

    private const int PageSize = 256;
    private const string Columns = "id, state, lines, succeeded, failed, cancelled, created_at, started_at, finished_at, error, runner";

    public void Create(string id, IReadOnlyList<BatchLineInput> lines, DateTimeOffset now) => db.InTransaction((connection, transaction) =>
    {
        Sql.Execute(connection, transaction, "INSERT INTO batches (id, state, lines, failed, created_at) VALUES ($1, 'queued', $2, $3, $4)",
            id, lines.Count, lines.Count(l => l.Error is not null), now);
        using var import = connection.BeginBinaryImport(
            "COPY batch_lines (batch_id, line, custom_id, request_json, state, result_json, finished_at) FROM STDIN (FORMAT BINARY)");
        foreach (var line in lines)
        {
            import.StartRow();
            import.Write(id, NpgsqlDbType.Text);
            import.Write(line.Line, NpgsqlDbType.Integer);
            WriteOrNull(import, line.CustomId);
            WriteOrNull(import, line.Request);
            import.Write(line.Error is null ? "pending" : "failed", NpgsqlDbType.Text);
            WriteOrNull(import, line.Error is null ? null : BatchJson.Error(line.Error));
            if (line.Error is null) import.WriteNull();
            else import.Write(now.ToUniversalTime(), NpgsqlDbType.TimestampTz);
        }
        import.Complete();
    });

    private static void WriteOrNull(NpgsqlBinaryImporter import, string? value)
    {
        if (value is null) import.WriteNull();
        else import.Write(value, NpgsqlDbType.Text);
    }

    public Batch? Get(string id) => db.Run(connection => Read(connection, "WHERE id = $1", id).FirstOrDefault());

    public IReadOnlyList<Batch> List(int limit) => db.Run(connection => Read(connection, "ORDER BY seq DESC LIMIT $1", limit));

    public (int Queued, int Running) CountUnfinished() => db.Run(connection =>
    {
        using var command = Sql.Command(connection, null, """
            SELECT count(*) FILTER (WHERE state = 'queued'), count(*) FILTER (WHERE state = 'running') FROM batches WHERE state IN ('queued', 'running')
            """);
        using var reader = command.ExecuteReader();
        reader.Read();
        return ((int)reader.GetInt64(0), (int)reader.GetInt64(1));
    });

    /// <summary>Nothing to recover: batches held by a node that went away are claimed once its lease runs out.</summary>
    public void Recover()
    {
    }

    public string? ClaimNext(TimeSpan lease) => db.InTransaction((connection, transaction) =>
    {
        if (Sql.Scalar(connection, transaction, """
            SELECT id FROM batches WHERE state = 'queued' OR (state = 'running' AND lease_until < now())
            ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED
            """) is not string id)
            return null;
        Sql.Execute(connection, transaction, """
            UPDATE batches SET state = 'running', runner = $2, lease_until = now() + make_interval(secs => $3), claims = claims + 1,
                started_at = COALESCE(started_at, now())
            WHERE id = $1
            """, id, db.NodeId, lease.TotalSeconds);
        return id;
    });

    public IReadOnlyCollection<string> Renew(IReadOnlyCollection<string> ids, TimeSpan lease) => db.Run(connection =>
    {
        using var command = Sql.Command(connection, null, """
            UPDATE batches SET lease_until = now() + make_interval(secs => $3) WHERE id = ANY($1) AND runner = $2 AND state = 'running' RETURNING id
            """, ids.ToArray(), db.NodeId, lease.TotalSeconds);
        using var reader = command.ExecuteReader();
        var held = new HashSet<string>(StringComparer.Ordinal);
        while (reader.Read()) held.Add(reader.GetString(0));
        return ids.Where(id => !held.Contains(id)).ToList();
    });

    public void Release(IReadOnlyCollection<string> ids) => db.Run(connection =>
        Sql.Execute(connection, null, "UPDATE batches SET state = 'queued', lease_until = NULL WHERE id = ANY($1) AND runner = $2 AND state = 'running'",
            ids.ToArray(), db.NodeId));

    public IReadOnlyList<PendingLine> TakePending(string id, int afterLine, int count) => db.InTransaction((connection, transaction) =>
    {
        if (!Holds(connection, transaction, id))
            throw new BatchLeaseLostException(id);
        using var command = Sql.Command(connection, transaction, """
            UPDATE batch_lines SET attempts = attempts + 1
            WHERE batch_id = $1 AND line IN (SELECT line FROM batch_lines WHERE batch_id = $1 AND state = 'pending' AND line > $2 ORDER BY line LIMIT $3)
            RETURNING line, custom_id, request_json, attempts
            """, id, afterLine, count);
        using var reader = command.ExecuteReader();
        var lines = new List<PendingLine>();
        while (reader.Read())
            lines.Add(new PendingLine(reader.GetInt32(0), reader.IsDBNull(1) ? null : reader.GetString(1), reader.GetString(2), reader.GetInt32(3)));
        return (IReadOnlyList<PendingLine>)lines.OrderBy(l => l.Line).ToList();
    });

    public bool RecordLine(string id, int line, LineState state, string result, DateTimeOffset now) => db.InTransaction((connection, transaction) =>
    {
        if (!Holds(connection, transaction, id))
            return false;
        if (Sql.Execute(connection, transaction, """
            UPDATE batch_lines SET state = $3, result_json = $4, finished_at = $5 WHERE batch_id = $1 AND line = $2 AND state = 'pending'
            """, id, line, BatchStore.Name(state), result, now) == 0)
            return false;
        Sql.Execute(connection, transaction, $"UPDATE batches SET {BatchStore.Counter(state)} = {BatchStore.Counter(state)} + 1 WHERE id = $1", id);
        return true;
    });

    public bool TryComplete(string id, DateTimeOffset now) => db.Run(connection => Sql.Execute(connection, null, """
        UPDATE batches SET state = 'completed', finished_at = $3, lease_until = NULL
        WHERE id = $1 AND runner = $2 AND state = 'running' AND NOT EXISTS (SELECT 1 FROM batch_lines WHERE batch_id = $1 AND state = 'pending')
        """, id, db.NodeId, now) == 1);

    public bool TryFail(string id, string error, DateTimeOffset now) => End(id, "failed", error, now, onlyHeld: true);

    public bool Cancel(string id, DateTimeOffset now) => End(id, "cancelled", null, now, onlyHeld: false);

    /// <summary>
    /// Ends a queued or running batch (<paramref name="onlyHeld"/>: only one this node runs) and cancels its pending lines,
    /// in one transaction. The batch row is locked first, as a runner recording a line locks it, so the count of cancelled
    /// lines is exact.
    /// </summary>
    private bool End(string id, string state, string? error, DateTimeOffset now, bool onlyHeld) => db.InTransaction((connection, transaction) =>
    {
        var locked = onlyHeld
            ? Sql.Scalar(connection, transaction, "SELECT id FROM batches WHERE id = $1 AND runner = $2 AND state = 'running' FOR UPDATE", id, db.NodeId)
            : Sql.Scalar(connection, transaction, "SELECT id FROM batches WHERE id = $1 AND state IN ('queued', 'running') FOR UPDATE", id);
        if (locked is null)
            return false;
        // A statement of its own, after the lock: it sees every result committed before it.
        var cancelled = Sql.Execute(connection, transaction, "UPDATE batch_lines SET state = 'cancelled', finished_at = $2 WHERE batch_id = $1 AND state = 'pending'", id, now);
        Sql.Execute(connection, transaction, """
            UPDATE batches SET state = $2, error = $3, finished_at = $4, lease_until = NULL, cancelled = cancelled + $5 WHERE id = $1
            """, id, state, error, now, cancelled);
        return true;
    });

    public IEnumerable<StoredLine> Lines(string id)
    {
        var after = 0;
        while (true)
        {
            var page = db.Run(connection =>
            {
                using var command = Sql.Command(connection, null, """
                    SELECT line, custom_id, state, result_json FROM batch_lines WHERE batch_id = $1 AND line > $2 ORDER BY line LIMIT $3
                    """, id, after, PageSize);
                using var reader = command.ExecuteReader();
                var lines = new List<StoredLine>(PageSize);
                while (reader.Read())
                    lines.Add(new StoredLine(reader.GetInt32(0), reader.IsDBNull(1) ? null : reader.GetString(1),
                        Enum.Parse<LineState>(reader.GetString(2), ignoreCase: true), reader.IsDBNull(3) ? null : reader.GetString(3)));
                return lines;
            });
            foreach (var line in page)
                yield return line;
            if (page.Count < PageSize)
                yield break;
            after = page[^1].Line;
        }
    }

    /// <summary>Whether this node holds the batch; locks its row until the transaction ends.</summary>
    private bool Holds(NpgsqlConnection connection, NpgsqlTransaction transaction, string id) =>
        Sql.Scalar(connection, transaction, "SELECT id FROM batches WHERE id = $1 AND runner = $2 AND state = 'running' FOR UPDATE", id, db.NodeId) is not null;

    private static List<Batch> Read(NpgsqlConnection connection, string where, params object?[] parameters)
    {
        using var command = Sql.Command(connection, null, $"SELECT {Columns} FROM batches {where}", parameters);
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
                CreatedAt: reader.GetFieldValue<DateTimeOffset>(6),
                StartedAt: reader.IsDBNull(7) ? null : reader.GetFieldValue<DateTimeOffset>(7),
                FinishedAt: reader.IsDBNull(8) ? null : reader.GetFieldValue<DateTimeOffset>(8),
                Error: reader.IsDBNull(9) ? null : reader.GetString(9),
                Node: reader.IsDBNull(10) ? null : reader.GetString(10)));
        }
        return batches;
    }
}

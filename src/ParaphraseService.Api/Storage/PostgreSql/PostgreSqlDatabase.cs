using System.Net.Sockets;
using Microsoft.Extensions.Options;
using Npgsql;
using Polly;
using Polly.Retry;

namespace ParaphraseService.Api.Storage.PostgreSql;

/// <summary>
/// The shared PostgreSQL database: one pooled data source, the schema migrated at start (retried with Polly until the
/// database answers; the node is not ready until then), and every use wrapped so that a lost connection surfaces as
/// <see cref="StorageUnavailableException"/> (503 on the admin API), counted and logged, never as a 500.
/// </summary>
public sealed class PostgreSqlDatabase : IStorageHealth, IDisposable
{
    private readonly NpgsqlDataSource _source;
    private readonly StorageMetrics _metrics;
    private readonly ILogger<PostgreSqlDatabase> _logger;
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile string? _problem = "The shared database (Storage:PostgreSql) has not been reached yet.";
    private int _down;

    public PostgreSqlDatabase(IOptions<StorageOptions> options, IOptions<NodeOptions> node, StorageMetrics metrics, ILogger<PostgreSqlDatabase> logger)
    {
        var builder = new NpgsqlConnectionStringBuilder(options.Value.PostgreSql)
        {
            ApplicationName = $"paraphrase {node.Value.NodeId}",
        };
        if (builder.Timeout == 15) builder.Timeout = 5; // a lost database fails a request in seconds, not 15
        _source = NpgsqlDataSource.Create(builder);
        (_metrics, _logger, NodeId) = (metrics, logger, node.Value.NodeId);
    }

    /// <summary>This node's name in the job table.</summary>
    public string NodeId { get; }

    public string? Problem => _problem;

    /// <summary>Completes once the schema is in place.</summary>
    public Task Ready => _ready.Task;

    /// <summary>Connects and migrates, retrying (exponential back-off up to 10 s) until the database answers or the app stops.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var pipeline = new ResiliencePipelineBuilder().AddRetry(new RetryStrategyOptions
        {
            ShouldHandle = new PredicateBuilder().Handle<Exception>(e => IsConnectionProblem(e)),
            MaxRetryAttempts = int.MaxValue,
            BackoffType = DelayBackoffType.Exponential,
            Delay = TimeSpan.FromMilliseconds(250),
            MaxDelay = TimeSpan.FromSeconds(10),
            UseJitter = true,
            OnRetry = args =>
            {
                _metrics.Down();
                _problem = $"The shared database cannot be reached yet: {args.Outcome.Exception?.Message}";
                _logger.LogWarning("PostgreSQL not reachable at start ({Error}); retry {Attempt} in {Delay:F1} s; not ready until it answers",
                    args.Outcome.Exception?.Message, args.AttemptNumber + 1, args.RetryDelay.TotalSeconds);
                return default;
            },
        }).Build();
        try
        {
            await pipeline.ExecuteAsync(async token => await MigrateAsync(token), cancellationToken);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            _problem = $"The shared database cannot be used: {e.Message}";
            _logger.LogCritical("PostgreSQL cannot be used: {Error}", e.Message);
            _ready.TrySetException(e);
            throw;
        }
        _problem = null;
        _metrics.Up();
        _ready.TrySetResult();
    }

    private async Task MigrateAsync(CancellationToken cancellationToken)
    {
        await using var connection = await _source.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await using (var command = new NpgsqlCommand("SELECT pg_advisory_xact_lock($1)", connection, transaction) { Parameters = { new() { Value = PostgreSqlSchema.MigrationLock } } })
            await command.ExecuteNonQueryAsync(cancellationToken);
        await using (var command = new NpgsqlCommand("CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())", connection, transaction))
            await command.ExecuteNonQueryAsync(cancellationToken);
        int current;
        await using (var command = new NpgsqlCommand("SELECT COALESCE(max(version), 0) FROM schema_version", connection, transaction))
            current = Convert.ToInt32(await command.ExecuteScalarAsync(cancellationToken), System.Globalization.CultureInfo.InvariantCulture);
        var known = PostgreSqlSchema.Migrations.Count;
        if (current > known)
            throw new InvalidOperationException($"The database schema is version {current}, newer than this build knows ({known}): run a newer build, or point Storage:PostgreSql at another database.");
        for (var version = current + 1; version <= known; version++)
        {
            await using (var command = new NpgsqlCommand(PostgreSqlSchema.Migrations[version - 1], connection, transaction))
                await command.ExecuteNonQueryAsync(cancellationToken);
            await using (var command = new NpgsqlCommand("INSERT INTO schema_version (version) VALUES ($1)", connection, transaction) { Parameters = { new() { Value = version } } })
                await command.ExecuteNonQueryAsync(cancellationToken);
            _logger.LogInformation("Database schema migrated to version {Version}", version);
        }
        await transaction.CommitAsync(cancellationToken);
        _logger.LogInformation("PostgreSQL ready: schema version {Version}", known);
    }

    /// <summary>A dedicated connection (for LISTEN); the caller disposes it.</summary>
    public async Task<NpgsqlConnection> OpenDedicatedAsync(CancellationToken cancellationToken) => await _source.OpenConnectionAsync(cancellationToken);

    /// <summary>Runs <paramref name="work"/> on a pooled connection.</summary>
    /// <exception cref="StorageUnavailableException">The database is not ready or cannot be reached.</exception>
    public T Run<T>(Func<NpgsqlConnection, T> work)
    {
        CheckReady();
        try
        {
            using var connection = _source.OpenConnection();
            var result = work(connection);
            Reachable();
            return result;
        }
        catch (Exception e) when (IsConnectionProblem(e))
        {
            throw Unreachable(e);
        }
    }

    /// <summary>Runs <paramref name="work"/> in a transaction, committed when it returns.</summary>
    /// <exception cref="StorageUnavailableException">The database is not ready or cannot be reached.</exception>
    public T InTransaction<T>(Func<NpgsqlConnection, NpgsqlTransaction, T> work, System.Data.IsolationLevel isolation = System.Data.IsolationLevel.ReadCommitted)
    {
        CheckReady();
        try
        {
            using var connection = _source.OpenConnection();
            using var transaction = connection.BeginTransaction(isolation);
            var result = work(connection, transaction);
            transaction.Commit();
            Reachable();
            return result;
        }
        catch (Exception e) when (IsConnectionProblem(e))
        {
            throw Unreachable(e);
        }
    }

    public void InTransaction(Action<NpgsqlConnection, NpgsqlTransaction> work) => InTransaction((c, t) =>
    {
        work(c, t);
        return true;
    });

    /// <summary>A connection-level failure (the database down, restarting, unreachable), as opposed to an error in a statement.</summary>
    public static bool IsConnectionProblem(Exception e) => e switch
    {
        PostgresException p => p.SqlState.StartsWith("08", StringComparison.Ordinal) || p.SqlState is "57P01" or "57P02" or "57P03" or "53300",
        NpgsqlException => true,
        SocketException or TimeoutException => true,
        IOException => true,
        _ => e.InnerException is { } inner && IsConnectionProblem(inner),
    };

    /// <summary>Marks the database lost (logged once per outage) and says so for a 503.</summary>
    public StorageUnavailableException Unreachable(Exception e)
    {
        _metrics.Down();
        if (Interlocked.Exchange(ref _down, 1) == 0)
            _logger.LogError("PostgreSQL connection lost: {Error}; admin writes answer 503 and paraphrase requests with loaded adapters go on", e.Message);
        return e as StorageUnavailableException ?? new StorageUnavailableException($"The shared database cannot be reached ({e.Message}).", e);
    }

    public void Reachable()
    {
        _metrics.Up();
        if (Interlocked.Exchange(ref _down, 0) == 1)
            _logger.LogInformation("PostgreSQL reachable again");
    }

    private void CheckReady()
    {
        if (!_ready.Task.IsCompletedSuccessfully)
            throw new StorageUnavailableException(_problem ?? "The shared database is not ready yet.");
    }

    public void Dispose() => _source.Dispose();
}

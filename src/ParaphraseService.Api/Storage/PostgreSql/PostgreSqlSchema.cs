namespace ParaphraseService.Api.Storage.PostgreSql;

/// <summary>
/// The schema, as numbered migrations applied in order at start (under an advisory lock, so replicas starting together
/// apply each once). <c>schema_version</c> records what was applied; a database newer than this build refuses it.
/// </summary>
internal static class PostgreSqlSchema
{
    /// <summary>Serializes migrations between replicas (an arbitrary constant: "paraphrase").</summary>
    public const long MigrationLock = 0x7061726170687261;

    public static IReadOnlyList<string> Migrations { get; } =
    [
        // 1: adapters (catalog rows; their files content-addressed in `files`), the job queue with leases, loss curves.
        """
        CREATE TABLE adapters (
            name text PRIMARY KEY,
            content_sha256 text NOT NULL,
            size_bytes bigint NOT NULL,
            info jsonb NOT NULL,
            requests_served bigint NOT NULL DEFAULT 0,
            publications integer NOT NULL DEFAULT 1,
            published_at timestamptz NOT NULL DEFAULT now());
        -- Files of adapters ('adapter:<sha256>'), job datasets ('job:<id>:dataset') and checkpoints ('job:<id>:checkpoint'),
        -- in chunks of at most 1 MiB: written and read as streams, never whole in memory.
        CREATE TABLE files (
            owner text NOT NULL,
            path text NOT NULL,
            chunk integer NOT NULL,
            data bytea NOT NULL,
            PRIMARY KEY (owner, path, chunk));
        CREATE TABLE jobs (
            seq bigserial UNIQUE,
            id text PRIMARY KEY,
            adapter text NOT NULL,
            state text NOT NULL,
            options_json text NOT NULL,
            dataset_file text NOT NULL,
            dataset_json text,
            created_at timestamptz NOT NULL,
            started_at timestamptz,
            finished_at timestamptz,
            step integer NOT NULL DEFAULT 0,
            total_steps integer NOT NULL DEFAULT 0,
            epoch integer NOT NULL DEFAULT 0,
            tokens_per_second double precision,
            eta_seconds double precision,
            error text,
            metrics_json text,
            resumed_from_step integer,
            cancel_requested boolean NOT NULL DEFAULT false,
            trainer text,
            lease_until timestamptz,
            checkpoint_step integer,
            claims integer NOT NULL DEFAULT 0);
        -- One unfinished job per adapter, whichever replica accepted it.
        CREATE UNIQUE INDEX jobs_one_unfinished_per_adapter ON jobs (adapter) WHERE state IN ('queued', 'running');
        CREATE INDEX jobs_claimable ON jobs (seq) WHERE state IN ('queued', 'running');
        CREATE TABLE losses (
            job_id text NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            kind text NOT NULL,
            step integer NOT NULL,
            loss double precision NOT NULL,
            PRIMARY KEY (job_id, kind, step));
        """,
        // 2: batches of paraphrase requests, run by one serving node at a time under a lease; one row per line, its
        // result stored as it finishes.
        """
        CREATE TABLE batches (
            seq bigserial UNIQUE,
            id text PRIMARY KEY,
            state text NOT NULL,
            lines integer NOT NULL,
            succeeded integer NOT NULL DEFAULT 0,
            failed integer NOT NULL DEFAULT 0,
            cancelled integer NOT NULL DEFAULT 0,
            created_at timestamptz NOT NULL,
            started_at timestamptz,
            finished_at timestamptz,
            error text,
            runner text,
            lease_until timestamptz,
            claims integer NOT NULL DEFAULT 0);
        CREATE INDEX batches_claimable ON batches (seq) WHERE state IN ('queued', 'running');
        CREATE TABLE batch_lines (
            batch_id text NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
            line integer NOT NULL,
            custom_id text,
            request_json text,
            state text NOT NULL,
            result_json text,
            attempts integer NOT NULL DEFAULT 0,
            finished_at timestamptz,
            PRIMARY KEY (batch_id, line));
        CREATE INDEX batch_lines_pending ON batch_lines (batch_id, line) WHERE state = 'pending';
        """,
    ];

    /// <summary>Notification channels.</summary>
    public const string AdaptersChannel = "paraphrase_adapters", JobsChannel = "paraphrase_jobs", JobEventsChannel = "paraphrase_job_events";
}

using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Npgsql;
using ParaphraseService.Api.Adapters;
using ParaphraseService.Api.Hosting;
using ParaphraseService.Model.Core;
using ParaphraseService.Model.Families;
using ParaphraseService.Model.Lora.Peft;

namespace ParaphraseService.Api.Storage.PostgreSql;

/// <summary>
/// Adapters in the shared database: one catalog row per adapter (what <c>GET /adapters</c> shows, and the SHA-256 of its
/// files) and the files themselves, content-addressed, in <c>files</c>. A publish writes the row and the files in one
/// transaction and notifies every replica (LISTEN/NOTIFY; a periodic catalog check catches what a lost connection
/// missed). Each replica keeps a local copy of the adapters it uses in <c>Adapters:Directory</c>, named by name and
/// hash and checked against the hash, which is what <see cref="GetFolder"/> returns: the adapter manager loads from it
/// as from the embedded store's folders. Staging and uploads are local, as in the embedded store.
/// </summary>
public sealed class PostgreSqlAdapterStore : IAdapterStorage
{
    private const string StagingPrefix = ".staging-", UploadPrefix = ".upload-";
    private static readonly JsonSerializerOptions s_json = new(JsonSerializerDefaults.Web);

    private readonly PostgreSqlDatabase _db;
    private readonly ModelHost _host;
    private readonly TimeProvider _time;
    private readonly ILogger<PostgreSqlAdapterStore> _logger;
    private readonly Lock _catalogGate = new();
    // The catalog as this replica last saw it (name -> content hash): what changed is told by comparing with it.
    private Dictionary<string, string> _known = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, long> _servedDelta = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, byte> _verified = new(StringComparer.Ordinal);
    private readonly Lock _materializeGate = new();
    private volatile IReadOnlyList<AdapterInfo>? _lastList;
    private volatile TargetCache? _target;

    public PostgreSqlAdapterStore(IOptions<AdaptersOptions> options, ModelHost host, IHostEnvironment environment, PostgreSqlDatabase db,
        TimeProvider time, ILogger<PostgreSqlAdapterStore> logger)
    {
        Options = options.Value;
        (_db, _host, _time, _logger) = (db, host, time, logger);
        CacheDirectory = Path.TrimEndingDirectorySeparator(Path.GetFullPath(Options.Directory, environment.ContentRootPath));
        Directory.CreateDirectory(CacheDirectory);
        foreach (var leftover in Directory.EnumerateFileSystemEntries(CacheDirectory).Where(e =>
            Path.GetFileName(e).StartsWith(StagingPrefix, StringComparison.Ordinal) || Path.GetFileName(e).StartsWith(UploadPrefix, StringComparison.Ordinal)))
            DeleteQuietly(leftover);
    }

    /// <summary>This replica's local copies of adapters, and its staging folders.</summary>
    public string CacheDirectory { get; }

    public AdaptersOptions Options { get; }

    public string Description => $"PostgreSQL (shared), local copies in {CacheDirectory}";

    public event Action<string>? Changed;

    public AdapterTarget? CurrentTarget()
    {
        if (_host.Model?.Config is not { } config) return null;
        var cached = _target;
        if (cached is null || !ReferenceEquals(cached.Config, config))
            _target = cached = new TargetCache(config, AdapterTarget.For(config));
        return cached.Target;
    }

    public string ModelNotLoadedReason => _host.LoadError is { } error
        ? $"The base model failed to load ({error}); adapters are validated against it, so none can be added."
        : "The base model is still loading; adapters are validated against it, so none can be added yet. Try again once /health/ready answers 200.";

    /// <summary>Every adapter in the catalog; while the database is unreachable, the last catalog read (so serving goes on).</summary>
    public IReadOnlyList<AdapterInfo> List()
    {
        try
        {
            var list = _db.Run(connection =>
            {
                using var command = new NpgsqlCommand("SELECT name, info::text, size_bytes, requests_served FROM adapters ORDER BY name COLLATE \"C\"", connection);
                using var reader = command.ExecuteReader();
                var adapters = new List<AdapterInfo>();
                while (reader.Read()) adapters.Add(Read(reader));
                return adapters;
            });
            _lastList = list;
            return list;
        }
        catch (StorageUnavailableException) when (_lastList is { } last)
        {
            return last;
        }
    }

    public AdapterInfo? Get(string name)
    {
        CheckName(name);
        return _db.Run(connection =>
        {
            using var command = new NpgsqlCommand("SELECT name, info::text, size_bytes, requests_served FROM adapters WHERE name = $1", connection) { Parameters = { new() { Value = name } } };
            using var reader = command.ExecuteReader();
            return reader.Read() ? Read(reader) : null;
        });
    }

    public bool Exists(string name)
    {
        CheckName(name);
        return HashOf(name) is not null;
    }

    /// <summary>
    /// The local copy of the adapter's files, fetched from the database on first use and checked against the catalog's
    /// hash; null when there is no such adapter. While the database is unreachable, a copy already here is used.
    /// </summary>
    public string? GetFolder(string name)
    {
        CheckName(name);
        // A replace or delete between reading the hash and reading the files shows as a mismatch: read the catalog again.
        for (var attempt = 1; ; attempt++)
        {
            string? hash;
            try
            {
                hash = HashOf(name);
            }
            catch (StorageUnavailableException)
            {
                lock (_catalogGate) hash = _known.GetValueOrDefault(name);
                var copy = hash is null ? null : CacheFolder(name, hash);
                if (copy is null || !Directory.Exists(copy)) throw;
                return copy;
            }
            if (hash is null) return null;
            var folder = CacheFolder(name, hash);
            try
            {
                lock (_materializeGate)
                {
                    if (!Directory.Exists(folder) || (!_verified.ContainsKey(folder) && !Verify(folder, hash)))
                        Materialize(name, hash, folder);
                }
                return folder;
            }
            catch (InvalidDataException e) when (attempt < 3)
            {
                _logger.LogInformation("Adapter {Adapter} changed while it was copied ({Error}); reading it again", name, e.Message);
            }
        }
    }

    public void RecordRequestServed(string name) => _servedDelta.AddOrUpdate(name, 1, (_, n) => n + 1);

    /// <summary>Adds the requests served here since the last flush to the catalog's counts (called every few seconds).</summary>
    public void FlushServed()
    {
        foreach (var name in _servedDelta.Keys.ToList())
        {
            if (!_servedDelta.TryRemove(name, out var count) || count == 0) continue;
            try
            {
                _db.Run(connection =>
                {
                    using var command = new NpgsqlCommand("UPDATE adapters SET requests_served = requests_served + $2 WHERE name = $1", connection)
                    {
                        Parameters = { new() { Value = name }, new() { Value = count } },
                    };
                    return command.ExecuteNonQuery();
                });
            }
            catch (StorageUnavailableException)
            {
                _servedDelta.AddOrUpdate(name, count, (_, n) => n + count);
                return;
            }
        }
    }

    public bool Delete(string name)
    {
        CheckName(name);
        var deleted = _db.InTransaction((connection, transaction) =>
        {
            using var command = new NpgsqlCommand("DELETE FROM adapters WHERE name = $1 RETURNING content_sha256", connection, transaction) { Parameters = { new() { Value = name } } };
            if (command.ExecuteScalar() is not string hash) return false;
            DeleteUnusedFiles(connection, transaction, hash);
            Notify(connection, transaction, name);
            return true;
        });
        if (!deleted) return false;
        lock (_catalogGate) _known.Remove(name);
        RemoveCopies(name, keep: null);
        _logger.LogInformation("Adapter {Adapter} deleted", name);
        RaiseChanged(name);
        return true;
    }

    public string CreateStagingFolder()
    {
        var staging = Path.Combine(CacheDirectory, StagingPrefix + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(staging);
        return staging;
    }

    public FileStream CreateUploadFile() => new(Path.Combine(CacheDirectory, UploadPrefix + Guid.NewGuid().ToString("N")), FileMode.CreateNew,
        FileAccess.ReadWrite, FileShare.None, bufferSize: 81920, FileOptions.Asynchronous | FileOptions.DeleteOnClose);

    public void DiscardStaging(string stagingFolder)
    {
        CheckStaging(stagingFolder);
        DeleteQuietly(stagingFolder);
    }

    public PublishedAdapter Publish(string name, string stagingFolder, bool replace = false, AdapterOrigin origin = AdapterOrigin.Upload) =>
        Publish(name, stagingFolder, replace, origin, inTransaction: null);

    /// <summary>
    /// Publishes as <see cref="Publish(string, string, bool, AdapterOrigin)"/> does, running <paramref name="inTransaction"/>
    /// first inside the same transaction (a fine-tune's lease check and its end): it throws to publish nothing.
    /// </summary>
    internal PublishedAdapter Publish(string name, string stagingFolder, bool replace, AdapterOrigin origin,
        Action<NpgsqlConnection, NpgsqlTransaction>? inTransaction)
    {
        CheckStaging(stagingFolder);
        try
        {
            CheckName(name);
            if (!replace && Exists(name))
                throw AdapterStore.AlreadyExists(name);
            var target = CurrentTarget() ?? throw new AdapterStoreException(AdapterStoreError.ModelNotLoaded, ModelNotLoadedReason);
            using (var adapter = PeftAdapterFiles.Load(stagingFolder, target, name))
            {
                foreach (var warning in adapter.Warnings)
                    _logger.LogWarning("Adapter {Adapter}: {Warning}", name, warning);
                if (adapter.Metadata is null)
                    new AdapterMetadata { Origin = origin, Created = _time.GetUtcNow() }.Save(Path.Combine(stagingFolder, AdapterMetadata.FileName));
            }
            var info = AdapterStore.Describe(name, stagingFolder, served: 0) ?? throw new IOException($"The staging folder of '{name}' disappeared.");
            var hash = PostgreSqlFiles.Hash(stagingFolder);
            var replaced = _db.InTransaction((connection, transaction) =>
            {
                inTransaction?.Invoke(connection, transaction);
                var owner = FilesOwner(hash);
                if (!PostgreSqlFiles.Exists(connection, transaction, owner))
                    PostgreSqlFiles.Add(connection, transaction, owner, stagingFolder);
                // A new name is inserted; a taken one waits for whoever holds it, then is replaced only if asked.
                using (var insert = new NpgsqlCommand("""
                    INSERT INTO adapters (name, content_sha256, size_bytes, info) VALUES ($1, $2, $3, $4::jsonb) ON CONFLICT (name) DO NOTHING
                    """, connection, transaction) { Parameters = { new() { Value = name }, new() { Value = hash }, new() { Value = info.SizeBytes }, new() { Value = Serialize(info) } } })
                    if (insert.ExecuteNonQuery() == 1)
                    {
                        Notify(connection, transaction, name);
                        return false;
                    }
                if (!replace)
                    throw AdapterStore.AlreadyExists(name);
                string previous;
                using (var select = new NpgsqlCommand("SELECT content_sha256 FROM adapters WHERE name = $1 FOR UPDATE", connection, transaction) { Parameters = { new() { Value = name } } })
                    previous = (string)select.ExecuteScalar()!;
                using (var update = new NpgsqlCommand("""
                    UPDATE adapters SET content_sha256 = $2, size_bytes = $3, info = $4::jsonb, requests_served = 0, publications = publications + 1, published_at = now() WHERE name = $1
                    """, connection, transaction) { Parameters = { new() { Value = name }, new() { Value = hash }, new() { Value = info.SizeBytes }, new() { Value = Serialize(info) } } })
                    update.ExecuteNonQuery();
                if (previous != hash) DeleteUnusedFiles(connection, transaction, previous);
                Notify(connection, transaction, name);
                return true;
            });

            // This replica has the files already: they become its local copy.
            var folder = CacheFolder(name, hash);
            lock (_materializeGate)
            {
                if (Directory.Exists(folder)) DeleteQuietly(stagingFolder);
                else Directory.Move(stagingFolder, folder);
                _verified[folder] = 0;
            }
            RemoveCopies(name, keep: folder);
            lock (_catalogGate) _known[name] = hash;
            _logger.LogInformation("Adapter {Adapter} {Action} (sha256 {Hash})", name, replaced ? "replaced" : "published", hash[..16]);
            RaiseChanged(name);
            return new PublishedAdapter(info, replaced);
        }
        catch
        {
            DeleteQuietly(stagingFolder);
            throw;
        }
    }

    public PublishedAdapter Import(string name, string sourceFolder, bool replace = false) =>
        AdapterStore.ImportInto(this, name, sourceFolder, replace);

    /// <summary>
    /// Compares the catalog with what this replica last saw and raises <see cref="Changed"/> for every adapter added,
    /// replaced or deleted meanwhile (called on every notification, after a reconnect, and periodically).
    /// </summary>
    public void RefreshCatalog()
    {
        var now = _db.Run(connection =>
        {
            using var command = new NpgsqlCommand("SELECT name, content_sha256 FROM adapters", connection);
            using var reader = command.ExecuteReader();
            var catalog = new Dictionary<string, string>(StringComparer.Ordinal);
            while (reader.Read()) catalog[reader.GetString(0)] = reader.GetString(1);
            return catalog;
        });
        List<string> changed;
        lock (_catalogGate)
        {
            changed = now.Where(e => _known.GetValueOrDefault(e.Key) != e.Value).Select(e => e.Key)
                .Concat(_known.Keys.Where(k => !now.ContainsKey(k))).ToList();
            _known = now;
        }
        foreach (var name in changed)
        {
            RemoveCopies(name, keep: now.TryGetValue(name, out var hash) ? CacheFolder(name, hash) : null);
            RaiseChanged(name);
        }
    }

    private string? HashOf(string name) => _db.Run(connection =>
    {
        using var command = new NpgsqlCommand("SELECT content_sha256 FROM adapters WHERE name = $1", connection) { Parameters = { new() { Value = name } } };
        return command.ExecuteScalar() as string;
    });

    private void Materialize(string name, string hash, string folder)
    {
        var staging = CreateStagingFolder();
        try
        {
            var read = _db.Run(connection => PostgreSqlFiles.Read(connection, null, FilesOwner(hash), staging));
            if (read != hash)
                throw new InvalidDataException($"The files of adapter '{name}' read from the database hash to {read[..16]}, not the catalog's {hash[..16]}.");
            if (Directory.Exists(folder)) DeleteQuietly(folder);
            Directory.Move(staging, folder);
            _verified[folder] = 0;
            _logger.LogInformation("Adapter {Adapter} copied from the database to {Folder}", name, folder);
        }
        catch
        {
            DeleteQuietly(staging);
            throw;
        }
        RemoveCopies(name, keep: folder);
    }

    /// <summary>A copy left by an earlier run is checked once against the hash; one that does not match is fetched again.</summary>
    private bool Verify(string folder, string hash)
    {
        if (PostgreSqlFiles.Hash(folder) == hash)
        {
            _verified[folder] = 0;
            return true;
        }
        _logger.LogWarning("The local copy {Folder} does not match the catalog's hash; fetching it again", folder);
        return false;
    }

    private void RemoveCopies(string name, string? keep)
    {
        foreach (var copy in Directory.EnumerateDirectories(CacheDirectory, name + "@*"))
        {
            if (copy == keep || Path.GetFileName(copy).Split('@')[0] != name) continue;
            _verified.TryRemove(copy, out _);
            DeleteQuietly(copy);
        }
    }

    private string CacheFolder(string name, string hash) => Path.Combine(CacheDirectory, $"{name}@{hash[..16]}");

    internal static string FilesOwner(string hash) => "adapter:" + hash;

    private static void DeleteUnusedFiles(NpgsqlConnection connection, NpgsqlTransaction transaction, string hash)
    {
        using var command = new NpgsqlCommand("DELETE FROM files WHERE owner = $1 AND NOT EXISTS (SELECT 1 FROM adapters WHERE content_sha256 = $2)", connection, transaction)
        {
            Parameters = { new() { Value = FilesOwner(hash) }, new() { Value = hash } },
        };
        command.ExecuteNonQuery();
    }

    private static void Notify(NpgsqlConnection connection, NpgsqlTransaction transaction, string name)
    {
        using var command = new NpgsqlCommand($"SELECT pg_notify('{PostgreSqlSchema.AdaptersChannel}', $1)", connection, transaction) { Parameters = { new() { Value = name } } };
        command.ExecuteNonQuery();
    }

    private static string Serialize(AdapterInfo info) => JsonSerializer.Serialize(info with { RequestsServed = 0, Loaded = false }, s_json);

    private static AdapterInfo Read(NpgsqlDataReader reader) =>
        JsonSerializer.Deserialize<AdapterInfo>(reader.GetString(1), s_json)! with { Name = reader.GetString(0), SizeBytes = reader.GetInt64(2), RequestsServed = reader.GetInt64(3) };

    private static void CheckName(string name)
    {
        if (AdapterName.Problem(name) is { } problem)
            throw new AdapterStoreException(AdapterStoreError.InvalidName, problem);
    }

    private void CheckStaging(string stagingFolder)
    {
        ArgumentNullException.ThrowIfNull(stagingFolder);
        var full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(stagingFolder));
        if (!string.Equals(Path.GetDirectoryName(full), CacheDirectory, StringComparison.Ordinal) ||
            !Path.GetFileName(full).StartsWith(StagingPrefix, StringComparison.Ordinal))
            throw new ArgumentException($"'{stagingFolder}' is not a staging folder of this store (see CreateStagingFolder).", nameof(stagingFolder));
    }

    private void RaiseChanged(string name)
    {
        try
        {
            Changed?.Invoke(name);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            _logger.LogError(e, "A handler of Changed failed for {Adapter}", name);
        }
    }

    private void DeleteQuietly(string path)
    {
        try
        {
            if (Directory.Exists(path)) Directory.Delete(path, recursive: true);
            else if (File.Exists(path)) File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _logger.LogWarning(e, "Could not remove {Path}", path);
        }
    }

    private sealed record TargetCache(ICausalLMConfig Config, AdapterTarget Target);
}

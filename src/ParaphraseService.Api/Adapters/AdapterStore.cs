using System.Collections.Concurrent;
using Microsoft.Extensions.Options;
using ParaphraseService.Api.Hosting;
using ParaphraseService.Model.Checkpoints;
using ParaphraseService.Model.Core;
using ParaphraseService.Model.Families;
using ParaphraseService.Model.Lora.Peft;

namespace ParaphraseService.Api.Adapters;

/// <summary>
/// The adapters this service can serve, as folders <c>&lt;Directory&gt;/&lt;name&gt;/</c> holding PEFT's files and
/// our <c>paraphrase_adapter.json</c>. Every change is one rename inside the store's folder, so readers see an
/// adapter whole or not at all: new adapters are assembled in a hidden staging folder, validated against the loaded
/// base model, then moved into place; deleted ones are renamed to a hidden tombstone before their files are removed.
/// Hidden entries (".staging-*", ".deleted-*" folders, ".upload-*" files) are never listed and are swept when the
/// store starts. One process owns a store folder.
/// </summary>
public sealed class AdapterStore : IAdapterStorage
{
    private const string StagingPrefix = ".staging-", TombstonePrefix = ".deleted-", UploadPrefix = ".upload-";

    /// <summary>The files an adapter folder may hold: PEFT's (with its model card) and ours.</summary>
    public static IReadOnlySet<string> FileNames { get; } = new HashSet<string>(StringComparer.Ordinal)
    {
        PeftLoraConfig.FileName, PeftAdapterFiles.SafetensorsFileName, PeftAdapterFiles.LegacyBinFileName, AdapterMetadata.FileName, "README.md",
    };

    private readonly ModelHost _host;
    private readonly TimeProvider _time;
    private readonly ILogger<AdapterStore> _logger;
    private readonly Lock _gate = new();
    private readonly ConcurrentDictionary<string, long> _served = new(StringComparer.Ordinal);
    private volatile TargetCache? _target;

    public AdapterStore(IOptions<AdaptersOptions> options, ModelHost host, IHostEnvironment environment, TimeProvider time, ILogger<AdapterStore> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(environment);
        Options = options.Value;
        _host = host;
        _time = time;
        _logger = logger;
        Directory = Path.TrimEndingDirectorySeparator(Path.GetFullPath(Options.Directory, environment.ContentRootPath));
        System.IO.Directory.CreateDirectory(Directory);
        SweepLeftovers();
    }

    /// <summary>The store's folder, absolute.</summary>
    public string Directory { get; }

    public AdaptersOptions Options { get; }

    public string Description => $"folders in {Directory}";

    /// <summary>
    /// An adapter was published, replaced or deleted (the argument is its name): whoever keeps adapters resident
    /// (the scheduler's adapter manager) should drop its copy.
    /// </summary>
    public event Action<string>? Changed;

    /// <summary>What adapters are validated against: the loaded base model's modules; null until it is loaded.</summary>
    public AdapterTarget? CurrentTarget()
    {
        if (_host.Model?.Config is not { } config)
        {
            return null;
        }
        var cached = _target;
        if (cached is null || !ReferenceEquals(cached.Config, config))
        {
            _target = cached = new TargetCache(config, AdapterTarget.For(config));
        }
        return cached.Target;
    }

    /// <summary>Why adapters cannot be validated now, for a 503.</summary>
    public string ModelNotLoadedReason => _host.LoadError is { } error
        ? $"The base model failed to load ({error}); adapters are validated against it, so none can be added."
        : "The base model is still loading; adapters are validated against it, so none can be added yet. Try again once /health/ready answers 200.";

    /// <summary>Every stored adapter, by name.</summary>
    public IReadOnlyList<AdapterInfo> List()
    {
        var adapters = new List<AdapterInfo>();
        foreach (var folder in System.IO.Directory.EnumerateDirectories(Directory))
        {
            var name = Path.GetFileName(folder);
            if (AdapterName.IsValid(name) && Describe(name, folder) is { } info)
            {
                adapters.Add(info);
            }
        }
        adapters.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        return adapters;
    }

    /// <summary>The adapter called <paramref name="name"/>, or null when there is none.</summary>
    /// <exception cref="AdapterStoreException">The name is not valid.</exception>
    public AdapterInfo? Get(string name)
    {
        CheckName(name);
        var folder = FolderOf(name);
        return System.IO.Directory.Exists(folder) ? Describe(name, folder) : null;
    }

    /// <exception cref="AdapterStoreException">The name is not valid.</exception>
    public bool Exists(string name)
    {
        CheckName(name);
        return System.IO.Directory.Exists(FolderOf(name));
    }

    /// <summary>The folder of a stored adapter (to load it); null when there is none.</summary>
    /// <exception cref="AdapterStoreException">The name is not valid.</exception>
    public string? GetFolder(string name) => Exists(name) ? FolderOf(name) : null;

    /// <summary>Counts one request served with the adapter (called by the scheduler); kept in memory only.</summary>
    public void RecordRequestServed(string name) => _served.AddOrUpdate(name, 1, (_, count) => count + 1);

    /// <summary>
    /// Removes the adapter: renamed to a hidden tombstone first (atomic: from then on it is gone), then its files are
    /// deleted. False when there was none.
    /// </summary>
    /// <exception cref="AdapterStoreException">The name is not valid.</exception>
    public bool Delete(string name)
    {
        CheckName(name);
        var folder = FolderOf(name);
        var tombstone = NewHiddenPath(TombstonePrefix + name + "-");
        lock (_gate)
        {
            if (!System.IO.Directory.Exists(folder))
            {
                return false;
            }
            System.IO.Directory.Move(folder, tombstone);
            _served.TryRemove(name, out _);
        }
        DeleteQuietly(tombstone);
        _logger.LogInformation("Adapter {Adapter} deleted", name);
        RaiseChanged(name);
        return true;
    }

    /// <summary>
    /// A new, empty hidden folder inside the store to assemble an adapter in, for <see cref="Publish"/> (which then
    /// owns it) or <see cref="DiscardStaging"/>.
    /// </summary>
    public string CreateStagingFolder()
    {
        var staging = NewHiddenPath(StagingPrefix);
        System.IO.Directory.CreateDirectory(staging);
        return staging;
    }

    /// <summary>
    /// A new hidden temporary file inside the store (on the same volume as the adapters), deleted when the stream is
    /// closed: where an uploaded zip is copied before it is unpacked.
    /// </summary>
    public FileStream CreateUploadFile() => new(NewHiddenPath(UploadPrefix), FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None,
        bufferSize: 81920, FileOptions.Asynchronous | FileOptions.DeleteOnClose);

    /// <summary>Deletes a staging folder that will not be published.</summary>
    public void DiscardStaging(string stagingFolder)
    {
        CheckStaging(stagingFolder);
        DeleteQuietly(stagingFolder);
    }

    /// <summary>
    /// Validates the adapter in <paramref name="stagingFolder"/> (made by <see cref="CreateStagingFolder"/>) against
    /// the loaded base model, writes its <c>paraphrase_adapter.json</c> when it has none (origin
    /// <paramref name="origin"/>, created now), and moves the folder into place as <paramref name="name"/>. The
    /// staging folder is consumed: moved on success, deleted on failure.
    /// </summary>
    /// <param name="replace">Replace an adapter of the same name (atomically: old moved aside, new moved in).</param>
    /// <exception cref="AdapterStoreException">Invalid name, name taken without <paramref name="replace"/>, no model loaded.</exception>
    /// <exception cref="AdapterValidationException">The files are not a LoRA adapter for the loaded base; lists why.</exception>
    public PublishedAdapter Publish(string name, string stagingFolder, bool replace = false, AdapterOrigin origin = AdapterOrigin.Upload)
    {
        CheckStaging(stagingFolder);
        try
        {
            CheckName(name);
            if (!replace && Exists(name))
            {
                throw AlreadyExists(name);
            }
            var target = CurrentTarget() ?? throw new AdapterStoreException(AdapterStoreError.ModelNotLoaded, ModelNotLoadedReason);
            using (var adapter = PeftAdapterFiles.Load(stagingFolder, target, name))
            {
                foreach (var warning in adapter.Warnings)
                {
                    _logger.LogWarning("Adapter {Adapter}: {Warning}", name, warning);
                }
                if (adapter.Metadata is null)
                {
                    new AdapterMetadata { Origin = origin, Created = _time.GetUtcNow() }.Save(Path.Combine(stagingFolder, AdapterMetadata.FileName));
                }
            }

            var replaced = MoveIntoPlace(name, stagingFolder, replace);
            _logger.LogInformation("Adapter {Adapter} {Action}", name, replaced ? "replaced" : "published");
            RaiseChanged(name);
            var info = Get(name) ?? throw new IOException($"Adapter '{name}' disappeared right after it was published.");
            return new PublishedAdapter(info, replaced);
        }
        catch
        {
            DeleteQuietly(stagingFolder);
            throw;
        }
    }

    /// <summary>
    /// Publishes a copy of the adapter in a server-side folder, which is left as it was. Only the adapter files
    /// (<see cref="FileNames"/>) at the top of the folder are copied; anything else there (a trainer's checkpoints,
    /// logs) is ignored. The copy is limited like an upload: <see cref="AdaptersOptions.MaxUnpackedBytes"/> in all.
    /// </summary>
    /// <exception cref="AdapterStoreException">Invalid name or folder, name taken, no model loaded, too large.</exception>
    /// <exception cref="AdapterValidationException">The files are not a LoRA adapter for the loaded base; lists why.</exception>
    public PublishedAdapter Import(string name, string sourceFolder, bool replace = false) => ImportInto(this, name, sourceFolder, replace);

    /// <summary>
    /// <see cref="IAdapterStorage.Import"/> for every storage: the name, the server-side folder, the name's availability
    /// and the loaded model checked in that order, then a staged copy published.
    /// </summary>
    internal static PublishedAdapter ImportInto(IAdapterStorage storage, string name, string sourceFolder, bool replace)
    {
        CheckName(name);
        if (string.IsNullOrWhiteSpace(sourceFolder) || !Path.IsPathFullyQualified(sourceFolder))
            throw new AdapterStoreException(AdapterStoreError.InvalidContent, $"the path '{sourceFolder}' is not an absolute path on the server");
        if (!System.IO.Directory.Exists(sourceFolder))
            throw new AdapterStoreException(AdapterStoreError.InvalidContent, $"there is no folder at '{sourceFolder}' on the server");
        if (!replace && storage.Exists(name))
            throw AlreadyExists(name);
        if (storage.CurrentTarget() is null)
            throw new AdapterStoreException(AdapterStoreError.ModelNotLoaded, storage.ModelNotLoadedReason);
        return storage.Publish(name, StageCopyOf(storage, sourceFolder), replace);
    }

    /// <summary>
    /// Copies the adapter files of a folder on the server into a new staging folder of <paramref name="storage"/>, within
    /// its unpacked-size limit; the caller publishes it.
    /// </summary>
    private static string StageCopyOf(IAdapterStorage storage, string sourceFolder)
    {
        var files = System.IO.Directory.EnumerateFiles(sourceFolder).Where(f => FileNames.Contains(Path.GetFileName(f))).ToList();
        // Copying a named pipe would wait for a writer, and the request with it.
        foreach (var file in files)
            if (RegularFiles.Problem(file) is { } problem)
                throw new AdapterStoreException(AdapterStoreError.InvalidContent, $"'{file}' is {problem}");
        var bytes = files.Sum(f => new FileInfo(f).Length);
        var limit = storage.Options.MaxUnpackedBytes;
        if (bytes > limit)
            throw new AdapterStoreException(AdapterStoreError.InvalidContent,
                $"the adapter files in '{sourceFolder}' hold {bytes} bytes; at most {limit} (Adapters:MaxUnpackedBytes) are allowed");
        var staging = storage.CreateStagingFolder();
        try
        {
            foreach (var file in files)
                File.Copy(file, Path.Combine(staging, Path.GetFileName(file)));
            return staging;
        }
        catch
        {
            storage.DiscardStaging(staging);
            throw;
        }
    }

    private bool MoveIntoPlace(string name, string staging, bool replace)
    {
        var folder = FolderOf(name);
        string? previous = null;
        lock (_gate)
        {
            if (System.IO.Directory.Exists(folder))
            {
                if (!replace)
                {
                    throw AlreadyExists(name);
                }
                // Folders cannot be swapped in one rename: the old one goes aside, the new one in, then the old is deleted.
                previous = NewHiddenPath(TombstonePrefix + name + "-");
                System.IO.Directory.Move(folder, previous);
                try
                {
                    System.IO.Directory.Move(staging, folder);
                }
                catch
                {
                    System.IO.Directory.Move(previous, folder);
                    throw;
                }
            }
            else
            {
                System.IO.Directory.Move(staging, folder);
            }
            _served.TryRemove(name, out _);
        }
        if (previous is not null)
        {
            DeleteQuietly(previous);
        }
        return previous is not null;
    }

    private AdapterInfo? Describe(string name, string folder) => Describe(name, folder, _served.GetValueOrDefault(name));

    /// <summary>An adapter folder as <c>GET /adapters</c> shows it; null when the folder is gone.</summary>
    internal static AdapterInfo? Describe(string name, string folder, long served)
    {
        try
        {
            var size = new DirectoryInfo(folder).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length);
            var problems = new List<string>();
            var config = Read(() => PeftLoraConfig.Load(Path.Combine(folder, PeftLoraConfig.FileName)), problems);
            var metadataPath = Path.Combine(folder, AdapterMetadata.FileName);
            var metadata = File.Exists(metadataPath) ? Read(() => AdapterMetadata.Load(metadataPath), problems) : null;
            return new AdapterInfo(
                name,
                config?.BaseModelNameOrPath,
                config?.R,
                config?.LoraAlpha,
                config?.UseRslora,
                config?.TargetModules?.Names,
                config?.TargetModules?.Pattern,
                size,
                metadata?.Created,
                metadata?.Origin switch { AdapterOrigin.Upload => "upload", AdapterOrigin.FineTune => "fine-tune", _ => null },
                metadata?.PromptTemplate,
                served,
                problems.Count == 0 ? null : string.Join("; ", problems));
        }
        catch (DirectoryNotFoundException)
        {
            return null; // deleted while being read
        }
    }

    private static T? Read<T>(Func<T> read, List<string> problems) where T : class
    {
        try
        {
            return read();
        }
        catch (AdapterValidationException e)
        {
            problems.Add($"{Path.GetFileName(e.Path)}: {string.Join("; ", e.Problems)}");
            return null;
        }
    }

    private string FolderOf(string name) => Path.Combine(Directory, name);

    private string NewHiddenPath(string prefix) => Path.Combine(Directory, $"{prefix}{Guid.NewGuid():N}");

    private static void CheckName(string name)
    {
        if (AdapterName.Problem(name) is { } problem)
        {
            throw new AdapterStoreException(AdapterStoreError.InvalidName, problem);
        }
    }

    private void CheckStaging(string stagingFolder)
    {
        ArgumentNullException.ThrowIfNull(stagingFolder);
        var full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(stagingFolder));
        if (!string.Equals(Path.GetDirectoryName(full), Directory, StringComparison.Ordinal) ||
            !Path.GetFileName(full).StartsWith(StagingPrefix, StringComparison.Ordinal))
        {
            throw new ArgumentException($"'{stagingFolder}' is not a staging folder of this store (see CreateStagingFolder).", nameof(stagingFolder));
        }
    }

    internal static AdapterStoreException AlreadyExists(string name) => new(AdapterStoreError.AlreadyExists,
        $"an adapter named '{name}' already exists; delete it first or ask to replace it (replace=true)");

    private void RaiseChanged(string name)
    {
        try
        {
            Changed?.Invoke(name);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            _logger.LogError(e, "A handler of AdapterStore.Changed failed for {Adapter}", name);
        }
    }

    private void SweepLeftovers()
    {
        foreach (var folder in System.IO.Directory.EnumerateDirectories(Directory))
        {
            var leaf = Path.GetFileName(folder);
            if (leaf.StartsWith(StagingPrefix, StringComparison.Ordinal) || leaf.StartsWith(TombstonePrefix, StringComparison.Ordinal))
            {
                _logger.LogInformation("Removing {Folder}, left over from an interrupted upload or delete", folder);
                DeleteQuietly(folder);
            }
        }
        foreach (var file in System.IO.Directory.EnumerateFiles(Directory, UploadPrefix + "*"))
        {
            try
            {
                File.Delete(file);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                _logger.LogWarning(e, "Could not remove {File}", file);
            }
        }
    }

    private void DeleteQuietly(string folder)
    {
        try
        {
            if (System.IO.Directory.Exists(folder))
            {
                System.IO.Directory.Delete(folder, recursive: true);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A hidden leftover is harmless (swept at the next start); the operation's own outcome matters more.
            _logger.LogWarning(e, "Could not remove {Folder}", folder);
        }
    }

    private sealed record TargetCache(ICausalLMConfig Config, AdapterTarget Target);
}

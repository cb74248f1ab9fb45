using System.Collections.Concurrent;
using ParaphraseService.Api.Hosting;
using ParaphraseService.Model.Core;
using ParaphraseService.Model.Loading;
using ParaphraseService.Model.Lora.Peft;

namespace ParaphraseService.Api.Adapters;

/// <summary>
/// The adapter storage the service uses: the configured one (embedded or PostgreSQL) plus the loaded model's built-in
/// adapter (<see cref="LoadedModel.BundledAdapter"/>: the demo model's paws-demo, files beside the assembly). The
/// built-in one is listed and served as if stored, with origin <c>built-in</c>, but never deleted or replaced: every
/// change under its name is refused (<see cref="AdapterStoreError.BuiltIn"/>), and a stored adapter of that name stays
/// hidden behind it. Everything else goes to the inner storage unchanged.
/// </summary>
public sealed class BuiltInAdapterStorage : IAdapterStorage
{
    public const string Origin = "built-in";

    private readonly IAdapterStorage _inner;
    private readonly ModelHost _host;
    private readonly ConcurrentDictionary<string, long> _served = new(StringComparer.Ordinal);

    public BuiltInAdapterStorage(IAdapterStorage inner, ModelHost host)
    {
        (_inner, _host) = (inner, host);
        _inner.Changed += name => Changed?.Invoke(name);
        // The built-in adapter appears with the model: whoever cached the list before then must read it again.
        _ = host.Ready.ContinueWith(loaded =>
        {
            if (loaded.IsCompletedSuccessfully && loaded.Result.BundledAdapter is { } builtIn)
                Changed?.Invoke(builtIn.Name);
        }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    /// <summary>The loaded model's built-in adapter; null when it has none or is not loaded yet.</summary>
    public BundledAdapter? BuiltIn => _host.Model?.BundledAdapter;

    public event Action<string>? Changed;

    public AdaptersOptions Options => _inner.Options;

    public string Description => _inner.Description;

    public string ModelNotLoadedReason => _inner.ModelNotLoadedReason;

    public AdapterTarget? CurrentTarget() => _inner.CurrentTarget();

    public IReadOnlyList<AdapterInfo> List()
    {
        if (BuiltIn is not { } builtIn)
            return _inner.List();
        var adapters = _inner.List().Where(a => a.Name != builtIn.Name).ToList();
        if (Describe(builtIn) is { } info)
            adapters.Add(info);
        adapters.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        return adapters;
    }

    public AdapterInfo? Get(string name) => IsBuiltIn(name) ? Describe(BuiltIn!) : _inner.Get(name);

    public bool Exists(string name) => IsBuiltIn(name) || _inner.Exists(name);

    public string? GetFolder(string name) => IsBuiltIn(name) ? BuiltIn!.Folder : _inner.GetFolder(name);

    public void RecordRequestServed(string name)
    {
        if (IsBuiltIn(name))
            _served.AddOrUpdate(name, 1, (_, count) => count + 1);
        else
            _inner.RecordRequestServed(name);
    }

    public bool Delete(string name)
    {
        ThrowIfBuiltIn(name);
        return _inner.Delete(name);
    }

    public string CreateStagingFolder() => _inner.CreateStagingFolder();

    public FileStream CreateUploadFile() => _inner.CreateUploadFile();

    public void DiscardStaging(string stagingFolder) => _inner.DiscardStaging(stagingFolder);

    public PublishedAdapter Publish(string name, string stagingFolder, bool replace = false, AdapterOrigin origin = AdapterOrigin.Upload)
    {
        if (Problem(name) is { } problem)
        {
            _inner.DiscardStaging(stagingFolder); // consumed, as the inner storage would on any refusal
            throw new AdapterStoreException(AdapterStoreError.BuiltIn, problem);
        }
        return _inner.Publish(name, stagingFolder, replace, origin);
    }

    public PublishedAdapter Import(string name, string sourceFolder, bool replace = false)
    {
        ThrowIfBuiltIn(name);
        return _inner.Import(name, sourceFolder, replace);
    }

    /// <summary>Whether <paramref name="name"/> is the loaded model's built-in adapter.</summary>
    public bool IsBuiltIn(string name) => BuiltIn?.Name == name;

    /// <summary>Why an adapter of this name cannot be deleted, uploaded, imported or fine-tuned; null when it can.</summary>
    public string? Problem(string name) => IsBuiltIn(name)
        ? $"'{name}' is the adapter built into the model '{_host.Model?.Source}' (read-only files beside the service); it cannot be deleted or replaced: use another name"
        : null;

    /// <exception cref="AdapterStoreException">The name is the built-in adapter's (<see cref="AdapterStoreError.BuiltIn"/>).</exception>
    public void ThrowIfBuiltIn(string name)
    {
        if (Problem(name) is { } problem)
            throw new AdapterStoreException(AdapterStoreError.BuiltIn, problem);
    }

    private AdapterInfo? Describe(BundledAdapter builtIn) =>
        AdapterStore.Describe(builtIn.Name, builtIn.Folder, _served.GetValueOrDefault(builtIn.Name)) is { } info ? info with { Origin = Origin } : null;
}

public static class BuiltInAdapterStorageExtensions
{
    /// <summary>Why an adapter of this name cannot be changed because it is built into the model; null when it can be.</summary>
    public static string? BuiltInProblem(this IAdapterStorage storage, string name) => (storage as BuiltInAdapterStorage)?.Problem(name);

    /// <exception cref="AdapterStoreException">The name is the model's built-in adapter's.</exception>
    public static void ThrowIfBuiltIn(this IAdapterStorage storage, string name) => (storage as BuiltInAdapterStorage)?.ThrowIfBuiltIn(name);
}

using System.Collections.Immutable;
using ParaphraseService.Api.Scheduling;
using ParaphraseService.Model.Loading;
using ParaphraseService.Model.Lora;
using ParaphraseService.Training.Prompts;

namespace ParaphraseService.Api.Adapters;

/// <summary>
/// The one owner of adapters at run time. The catalog (what can be served, with each adapter's prompt template) is
/// read from the <see cref="IAdapterSource"/> once and cached until the source says something changed. Residency
/// (which adapters sit on the model, least recently used unloaded first, never one a running sequence uses) is
/// changed only on the scheduler's thread, which owns the model: the scheduler acquires adapters for the jobs it
/// admits, admin load/unload requests run there as <see cref="ModelThreadCommands"/>, and adapters that changed in
/// storage are dropped there once no sequence uses them.
/// </summary>
public sealed class AdapterManager : IDisposable
{
    private readonly IAdapterSource _source;
    private readonly ModelThreadCommands _modelThread;
    private readonly ServiceMetrics _metrics;
    private readonly ILogger<AdapterManager> _logger;
    // Names whose stored files changed: their resident copies go once unused (scheduler's thread).
    private readonly System.Collections.Concurrent.ConcurrentQueue<string> _stale = new();
    private readonly Lock _catalogGate = new();
    private Catalog? _catalog;
    private long _catalogVersion;
    private volatile ImmutableHashSet<string> _resident = ImmutableHashSet<string>.Empty;

    public AdapterManager(IAdapterSource source, ModelThreadCommands modelThread, ServiceMetrics metrics, ILogger<AdapterManager> logger)
    {
        (_source, _modelThread, _metrics, _logger) = (source, modelThread, metrics, logger);
        _source.Changed += OnChanged;
    }

    /// <summary>Adapters resident on the model now.</summary>
    public IReadOnlySet<string> Resident => _resident;

    /// <summary>Every adapter that can be served, by name.</summary>
    public IReadOnlyList<string> Names() => CurrentCatalog().Usable;

    /// <summary>Looks a requested name up: invalid, unknown, unusable, or found with its folder and template.</summary>
    public AdapterLookup Find(string name)
    {
        if (AdapterName.Problem(name) is { } problem)
            return new AdapterLookup.Invalid(problem);
        return CurrentCatalog().Entries.TryGetValue(name, out var entry) ? entry : new AdapterLookup.NotFound(name);
    }

    /// <summary>Makes an adapter resident now (between two decode steps).</summary>
    public Task LoadAsync(ResolvedAdapter adapter) => _modelThread.RunAsync(context => Acquire(adapter, context.Model, context.AdaptersInUse));

    /// <summary>Frees a resident adapter now, or as soon as no running sequence uses it.</summary>
    public Task UnloadAsync(string name) => _modelThread.RunAsync(context =>
    {
        _stale.Enqueue(name);
        ReleaseStale(context.Model, context.AdaptersInUse);
        return true;
    });

    /// <summary>
    /// The adapter on the model, loading it from its folder when needed (scheduler's thread). Adapters in
    /// <paramref name="inUse"/> are never unloaded to make room.
    /// </summary>
    /// <exception cref="Model.Lora.Peft.AdapterValidationException">The stored files are not a usable adapter for this base.</exception>
    internal LoraAdapter Acquire(ResolvedAdapter adapter, LoadedModel model, IReadOnlySet<string> inUse)
    {
        var registry = model.Adapters ?? throw new InvalidOperationException("This model was loaded without LoRA support.");
        if (registry.Get(adapter.Name) is { } resident)
            return resident;
        var (loaded, evicted, warnings) = registry.LoadFolder(adapter.Folder, adapter.Name, pinned: inUse);
        foreach (var warning in warnings)
            _logger.LogWarning("Adapter {Adapter}: {Warning}", adapter.Name, warning);
        foreach (var gone in evicted)
            _logger.LogInformation("Unloaded adapter {Adapter} to make room for {Loaded}", gone, adapter.Name);
        Publish(model);
        return loaded;
    }

    /// <summary>Whether the adapter is resident or can be made so without unloading one in use (scheduler's thread).</summary>
    internal static bool HasRoomFor(ResolvedAdapter adapter, LoadedModel model, IReadOnlySet<string> inUse)
    {
        if (model.Adapters is not { } registry || registry.Contains(adapter.Name))
            return true;
        var resident = registry.List();
        return resident.Count < registry.MaxResident || resident.Any(a => !inUse.Contains(a.Name));
    }

    /// <summary>Counts one request served with the adapter.</summary>
    internal void RecordServed(string name)
    {
        _source.RecordRequestServed(name);
        _metrics.AdapterRequest(name);
    }

    /// <summary>
    /// Drops resident copies that must go: adapters changed in storage or asked to unload, once no running sequence
    /// uses them (scheduler's thread; nothing allocated when there is nothing to do).
    /// </summary>
    internal void ReleaseStale(LoadedModel model, IReadOnlySet<string> inUse)
    {
        if (_stale.IsEmpty || model.Adapters is not { } registry) return;
        var later = new List<string>();
        var dropped = false;
        while (_stale.TryDequeue(out var name))
        {
            if (inUse.Contains(name)) later.Add(name);
            else dropped |= registry.Unload(name);
        }
        foreach (var name in later) _stale.Enqueue(name);
        if (dropped) Publish(model);
    }

    /// <summary>
    /// Unloads an adapter whose use just failed a step, as soon as no running sequence uses it, so its next use reads
    /// its files again (scheduler's thread).
    /// </summary>
    internal void Evict(string name)
    {
        _logger.LogWarning("Adapter {Adapter} is unloaded after a failed step; it loads again on its next request", name);
        _stale.Enqueue(name);
    }

    private void Publish(LoadedModel model) =>
        _resident = model.Adapters?.List().Select(a => a.Name).ToImmutableHashSet(StringComparer.Ordinal) ?? ImmutableHashSet<string>.Empty;

    private void OnChanged(string name)
    {
        lock (_catalogGate)
        {
            _catalogVersion++;
            _catalog = null;
        }
        _stale.Enqueue(name);
    }

    private Catalog CurrentCatalog()
    {
        long version;
        lock (_catalogGate)
        {
            if (_catalog is { } cached) return cached;
            version = _catalogVersion;
        }
        // Read outside the lock (it lists folders); kept only if nothing changed meanwhile.
        var catalog = Catalog.Read(_source);
        lock (_catalogGate)
        {
            if (_catalogVersion == version) _catalog = catalog;
        }
        return catalog;
    }

    public void Dispose() => _source.Changed -= OnChanged;

    private sealed record Catalog(ImmutableDictionary<string, AdapterLookup> Entries, IReadOnlyList<string> Usable)
    {
        public static Catalog Read(IAdapterSource source)
        {
            var entries = ImmutableDictionary.CreateBuilder<string, AdapterLookup>(StringComparer.Ordinal);
            foreach (var info in source.List())
                entries[info.Name] = Entry(info, source);
            var usable = entries.Where(e => e.Value is AdapterLookup.Found).Select(e => e.Key).Order(StringComparer.Ordinal).ToList();
            return new Catalog(entries.ToImmutable(), usable);
        }

        private static AdapterLookup Entry(AdapterInfo info, IAdapterSource source)
        {
            if (info.Problem is { } problem)
                return new AdapterLookup.Unusable(info.Name, problem);
            if (source.GetFolder(info.Name) is not { } folder)
                return new AdapterLookup.NotFound(info.Name);
            try
            {
                return new AdapterLookup.Found(new ResolvedAdapter(info.Name, folder, PromptTemplate.ForAdapter(info.PromptTemplate)));
            }
            catch (ArgumentException e)
            {
                return new AdapterLookup.Unusable(info.Name, $"its prompt template cannot be used: {e.Message}");
            }
        }
    }
}

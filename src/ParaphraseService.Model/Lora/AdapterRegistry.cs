using ParaphraseService.Model.Lora.Peft;

namespace ParaphraseService.Model.Lora;

/// <summary>What one resident adapter costs and when it was last used.</summary>
public sealed record ResidentAdapter(string Name, int Rank, double Scaling, int ModuleCount, long Bytes, long LastUsed);

/// <summary>
/// The adapters resident on one model: attach, detach, find, with memory accounting and a cap on how many stay
/// resident (the least recently used one is unloaded first). Not thread-safe: the component that owns the model
/// (the scheduler) calls it between forward passes.
/// </summary>
public sealed class AdapterRegistry : IDisposable
{
    private readonly Dictionary<string, LoraLinear> _layers;
    private readonly Dictionary<string, (LoraAdapter Adapter, long LastUsed)> _resident = new(StringComparer.Ordinal);
    private readonly HashSet<LoraAdapter> _training = new(ReferenceEqualityComparer.Instance);
    private readonly TorchSharp.torch.Device _device;
    private long _clock;

    /// <param name="maxResident">Most adapters kept in memory at once.</param>
    public AdapterRegistry(IAdaptableModel model, int maxResident)
    {
        Target = model.AdapterTarget;
        if (model.Lora is null)
            throw new ArgumentException("The model was built without LoRA support (LayerFactory.Lora).", nameof(model));
        if (maxResident < 1)
            throw new ArgumentOutOfRangeException(nameof(maxResident), "At least one adapter must fit.");
        MaxResident = maxResident;
        _device = model.parameters().First().device;
        _layers = model.named_modules().Where(m => m.module is LoraLinear).ToDictionary(m => m.name, m => (LoraLinear)m.module, StringComparer.Ordinal);
        Targets = _layers.ToDictionary(l => l.Key, l => (l.Value.InFeatures, l.Value.OutFeatures), StringComparer.Ordinal);
    }

    public int MaxResident { get; }

    /// <summary>What adapter files are validated against: the base's architecture, sizes and adaptable modules.</summary>
    public AdapterTarget Target { get; }

    /// <summary>
    /// Reads a PEFT adapter folder, checks it against the base, and makes it resident. Returns the adapter, the names
    /// unloaded to make room, and the format's warnings (e.g. fan_in_fan_out ignored for Linear layers).
    /// </summary>
    /// <exception cref="AdapterValidationException">The folder is not a LoRA adapter for this base; the message lists why.</exception>
    /// <param name="pinned">Adapters in use, never unloaded to make room.</param>
    public (LoraAdapter Adapter, IReadOnlyList<string> Evicted, IReadOnlyList<string> Warnings) LoadFolder(
        string folder, string? name = null, IReadOnlySet<string>? pinned = null)
    {
        using var peft = PeftAdapterFiles.Load(folder, Target, name);
        var adapter = LoraAdapter.FromPeft(peft, _device);
        try
        {
            return (adapter, Load(adapter, pinned), peft.Warnings);
        }
        catch
        {
            adapter.Dispose();
            throw;
        }
    }

    /// <summary>Module paths an adapter may target, with their (in, out) shapes.</summary>
    public IReadOnlyDictionary<string, (long In, long Out)> Targets { get; }

    public long TotalBytes => _resident.Values.Sum(r => r.Adapter.Bytes);

    public IReadOnlyList<ResidentAdapter> List() => _resident.Values
        .OrderBy(r => r.Adapter.Name, StringComparer.Ordinal)
        .Select(r => new ResidentAdapter(r.Adapter.Name, r.Adapter.Rank, r.Adapter.Scaling, r.Adapter.Modules.Count, r.Adapter.Bytes, r.LastUsed))
        .ToList();

    /// <summary>
    /// Makes <paramref name="adapter"/> resident (replacing one of the same name) and takes ownership of it. Returns the
    /// names unloaded to stay within <see cref="MaxResident"/>.
    /// </summary>
    /// <param name="pinned">Adapters in use, never unloaded to make room.</param>
    /// <exception cref="InvalidOperationException">The registry is full of pinned adapters.</exception>
    public IReadOnlyList<string> Load(LoraAdapter adapter, IReadOnlySet<string>? pinned = null)
    {
        if (!_resident.ContainsKey(adapter.Name) && _resident.Count >= MaxResident
            && _resident.Keys.All(n => pinned?.Contains(n) == true))
            throw new InvalidOperationException($"All {MaxResident} resident adapters are in use; '{adapter.Name}' must wait.");
        CheckModules(adapter);
        Unload(adapter.Name);
        AttachToLayers(adapter);
        _resident[adapter.Name] = (adapter, ++_clock);

        var evicted = new List<string>();
        while (_resident.Count > MaxResident)
        {
            var oldest = _resident.Values.Where(r => r.Adapter != adapter && pinned?.Contains(r.Adapter.Name) != true)
                .MinBy(r => r.LastUsed).Adapter.Name;
            Unload(oldest);
            evicted.Add(oldest);
        }
        return evicted;
    }

    /// <summary>
    /// Attaches an adapter being trained to the model's layers without making it resident: it is not listed, not
    /// counted against <see cref="MaxResident"/> and never unloaded to make room. The caller keeps ownership and
    /// detaches it with <see cref="DetachTraining"/>.
    /// </summary>
    public void AttachTraining(LoraAdapter adapter)
    {
        CheckModules(adapter);
        if (!_training.Add(adapter)) return;
        AttachToLayers(adapter);
    }

    /// <summary>Detaches an adapter attached by <see cref="AttachTraining"/> (it is not disposed).</summary>
    public void DetachTraining(LoraAdapter adapter)
    {
        if (!_training.Remove(adapter)) return;
        foreach (var path in adapter.Modules)
            _layers[path].Detach(adapter);
    }

    private void CheckModules(LoraAdapter adapter)
    {
        var unknown = adapter.Modules.Where(m => !_layers.ContainsKey(m)).Order(StringComparer.Ordinal).ToList();
        if (unknown.Count > 0)
            throw new ArgumentException($"Adapter '{adapter.Name}' targets modules the model does not have or cannot adapt: {string.Join(", ", unknown.Take(5))}.");
    }

    /// <summary>Attaches every module's weights to its layer, all or none.</summary>
    private void AttachToLayers(LoraAdapter adapter)
    {
        var attached = new List<LoraLinear>();
        try
        {
            foreach (var (path, weights) in adapter.Weights)
            {
                _layers[path].Attach(adapter, weights);
                attached.Add(_layers[path]);
            }
        }
        catch
        {
            foreach (var layer in attached) layer.Detach(adapter);
            throw;
        }
    }

    /// <summary>The resident adapter of that name, marked as just used; null when it is not resident.</summary>
    public LoraAdapter? Get(string name)
    {
        if (!_resident.TryGetValue(name, out var entry))
            return null;
        _resident[name] = (entry.Adapter, ++_clock);
        return entry.Adapter;
    }

    public bool Contains(string name) => _resident.ContainsKey(name);

    /// <summary>Detaches and frees the adapter; false when it was not resident.</summary>
    public bool Unload(string name)
    {
        if (!_resident.Remove(name, out var entry))
            return false;
        foreach (var path in entry.Adapter.Modules)
            _layers[path].Detach(entry.Adapter);
        entry.Adapter.Dispose();
        return true;
    }

    public void Dispose()
    {
        foreach (var adapter in _training.ToList())
            DetachTraining(adapter);
        foreach (var name in _resident.Keys.ToList())
            Unload(name);
    }
}

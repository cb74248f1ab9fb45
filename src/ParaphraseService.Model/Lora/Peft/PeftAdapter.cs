using ParaphraseService.Model.Checkpoints;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Lora.Peft;

/// <summary>
/// A validated LoRA adapter as plain data: its PEFT config and, for every module it adapts, lora_A [r, in] and
/// lora_B [out, r] as float32 CPU tensors. Made by <see cref="PeftAdapterFiles.Load"/> or <see cref="Create"/>, which
/// both check it against the base model, so whatever holds one can use it without checking again. Owns its tensors:
/// dispose it when done.
/// </summary>
public sealed class PeftAdapter : IDisposable
{
    private readonly SortedDictionary<string, LoraWeights> _modules;
    private readonly IReadOnlyDictionary<string, LoraWeights> _readOnlyModules;
    private bool _disposed;

    internal PeftAdapter(string name, PeftLoraConfig config, SortedDictionary<string, LoraWeights> modules,
        IReadOnlyDictionary<string, SelectedModule> selected, AdapterMetadata? metadata, IReadOnlyList<string> warnings)
    {
        Name = name;
        Config = config;
        _modules = modules;
        _readOnlyModules = modules.AsReadOnly();
        ModuleSettings = new SortedDictionary<string, LoraModuleSettings>(
            modules.Keys.ToDictionary(m => m, m => selected[m].Settings), StringComparer.Ordinal).AsReadOnly();
        Metadata = metadata;
        Warnings = warnings;
        Bytes = modules.Values.Sum(w => (w.A.NumberOfElements + w.B.NumberOfElements) * sizeof(float));
    }

    public string Name { get; }

    /// <summary>The config as PEFT would use it (fan_in_fan_out already set as the adapted layers need, see <see cref="Warnings"/>).</summary>
    public PeftLoraConfig Config { get; }

    /// <summary>Module path (e.g. "transformer.h.0.attn.q_proj") to its weights, in ordinal order of the paths.</summary>
    public IReadOnlyDictionary<string, LoraWeights> Modules
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _readOnlyModules;
        }
    }

    /// <summary>
    /// Each module of <see cref="Modules"/> with its rank, alpha and scaling: the config's r and lora_alpha unless its
    /// rank_pattern or alpha_pattern gives the module its own, exactly as PEFT assigns them.
    /// </summary>
    public IReadOnlyDictionary<string, LoraModuleSettings> ModuleSettings { get; }

    /// <summary>Our own metadata file's content; null for a plain PEFT adapter without one.</summary>
    public AdapterMetadata? Metadata { get; set; }

    /// <summary>Bytes held by the tensors.</summary>
    public long Bytes { get; }

    /// <summary>What was accepted but adjusted, worth a log line (PEFT warns about the same things).</summary>
    public IReadOnlyList<string> Warnings { get; }

    /// <summary>
    /// Builds an adapter from weights held in memory (a fine-tuning run), checked exactly as a loaded one. The
    /// tensors are copied to float32 on the CPU; the caller keeps ownership of <paramref name="modules"/>.
    /// </summary>
    /// <exception cref="AdapterValidationException">The config or weights do not fit <paramref name="target"/>.</exception>
    public static PeftAdapter Create(string name, PeftLoraConfig config, IReadOnlyDictionary<string, LoraWeights> modules,
        AdapterTarget target, AdapterMetadata? metadata = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(modules);
        ArgumentNullException.ThrowIfNull(target);

        var problems = new List<string>();
        var warnings = new List<string>();
        config = Prepare(config, target, problems, warnings);
        var tensors = new Dictionary<string, CheckpointTensorInfo>(StringComparer.Ordinal);
        var byKey = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (module, weights) in modules)
        {
            foreach (var (tensor, isA) in (ReadOnlySpan<(Tensor, bool)>)[(weights.A, true), (weights.B, false)])
            {
                var key = PeftStateDictKey.Standard(module, isA);
                tensors[key] = new CheckpointTensorInfo(key, tensor.dtype, tensor.shape);
                byKey[key] = tensor;
            }
        }
        var (plan, selected) = Plan(config, target, tensors, problems, warnings);
        var source = $"adapter '{name}'";
        if (problems.Count > 0)
        {
            throw new AdapterValidationException(source, problems);
        }
        // detach: a copy of a trained parameter must not carry its autograd history.
        var copied = ToFloat32(plan, selected, key => byKey[key].detach().cpu().clone(), source);
        return new PeftAdapter(name, config, copied, selected, metadata, warnings);
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        foreach (var weights in _modules.Values)
        {
            weights.A.Dispose();
            weights.B.Dispose();
        }
    }

    /// <summary>
    /// The config checks, and PEFT's one silent correction: fan_in_fan_out follows the adapted layers, false for
    /// nn.Linear (GPT-J, GPT-Neo), true for Conv1D (GPT-2).
    /// </summary>
    internal static PeftLoraConfig Prepare(PeftLoraConfig config, AdapterTarget target, List<string> problems, List<string> warnings)
    {
        PeftAdapterChecks.CheckConfig(config, problems);
        if (config.FanInFanOut == target.Conv1D)
        {
            return config;
        }
        if (target.Conv1D)
        {
            // PEFT's lora dispatch_default: "fan_in_fan_out is set to False but the target module is `Conv1D`. Setting
            // fan_in_fan_out to True." lora_A/lora_B are stored as for nn.Linear either way; the flag only transposes
            // the delta merged into a Conv1D weight ([in, out]).
            warnings.Add("fan_in_fan_out is false, but the adapted layers are Conv1D (weights stored [in, out]); " +
                "as PEFT does, it is set to true");
            return config with { FanInFanOut = true };
        }
        // PEFT's lora dispatch_default: "fan_in_fan_out is set to True but the target module is `torch.nn.Linear`.
        // Setting fan_in_fan_out to False." GPT-J's and GPT-Neo's targets are all nn.Linear (weights stored [out, in]).
        warnings.Add("fan_in_fan_out is true, but the adapted layers are nn.Linear (weights stored [out, in]); " +
            "as PEFT does, it is set to false");
        return config with { FanInFanOut = false };
    }

    /// <summary>
    /// What to load, as PEFT decides it: the modules the config selects (target_modules, layers_to_transform,
    /// exclude_modules) with their rank and alpha (rank_pattern, alpha_pattern), and the lora_A / lora_B keys of those the
    /// file has weights for.
    /// </summary>
    internal static (SortedDictionary<string, (string A, string B)> Plan, SortedDictionary<string, SelectedModule> Selected) Plan(
        PeftLoraConfig config, AdapterTarget target, IReadOnlyDictionary<string, CheckpointTensorInfo> tensors,
        List<string> problems, List<string> warnings)
    {
        var rules = PeftModuleRules.Read(config, problems);
        var modules = PeftAdapterChecks.ResolveTargets(config, target, rules, problems, warnings);
        var selected = PeftAdapterChecks.Settle(config, rules, modules, problems, warnings);
        var plan = PeftAdapterChecks.CheckTensors(config, target, selected, tensors, problems, warnings);
        if (problems.Count == 0)
            PeftAdapterChecks.CheckPatternVersions(config, rules, selected, plan.Keys, problems);
        return (plan, selected);
    }

    /// <summary>
    /// The largest update entry (scaling · B · A) a module may reach. Beyond it the update cannot be a fine-tune of any
    /// model's weights, and it overflows float32 on ordinary activations (1e30 · 4096 inputs · 1e5 is past 3.4e38): the
    /// requests using the adapter would fail with NaN logits.
    /// </summary>
    internal const double MaxUpdateEntry = 1e30;

    /// <summary>
    /// Produces each planned tensor through <paramref name="read"/> and turns it into a float32 CPU tensor owned by the
    /// result; nothing is left allocated if any tensor fails, holds NaN or infinity, or makes an update that could exceed
    /// <see cref="MaxUpdateEntry"/> with the module's scaling.
    /// </summary>
    internal static SortedDictionary<string, LoraWeights> ToFloat32(SortedDictionary<string, (string A, string B)> plan,
        IReadOnlyDictionary<string, SelectedModule> selected, Func<string, Tensor> read, string source)
    {
        using var scope = NewDisposeScope();
        var modules = new SortedDictionary<string, LoraWeights>(StringComparer.Ordinal);
        var notFinite = new List<string>();
        foreach (var (module, (aKey, bKey)) in plan)
        {
            var a = Convert(read(aKey), aKey, notFinite);
            var b = Convert(read(bKey), bKey, notFinite);
            modules[module] = new LoraWeights(a, b);
        }
        if (notFinite.Count > 0)
        {
            throw new AdapterValidationException(source, $"tensors holding NaN or infinite values: {PeftAdapterChecks.List(notFinite)}");
        }
        var overflowing = new List<string>();
        foreach (var (module, weights) in modules)
        {
            // |(B·A)[i, j]| = |Σ_k B[i, k] A[k, j]| ≤ r · max|B| · max|A|, in double: the bound itself may pass float's range
            var bound = Math.Abs(selected[module].Scaling) * weights.A.size(0) * weights.A.abs().max().item<float>() * weights.B.abs().max().item<float>();
            if (!(bound <= MaxUpdateEntry))
                overflowing.Add($"{module} (up to {bound:G3}: scaling {selected[module].Scaling:G3})");
        }
        if (overflowing.Count > 0)
        {
            throw new AdapterValidationException(source,
                $"updates whose entries could exceed {MaxUpdateEntry:G0}, which overflows float32 on ordinary inputs (check lora_alpha and the weights): {PeftAdapterChecks.List(overflowing)}");
        }
        foreach (var weights in modules.Values)
        {
            weights.A.DetachFromDisposeScope();
            weights.B.DetachFromDisposeScope();
        }
        return modules;
    }

    private static Tensor Convert(Tensor tensor, string key, List<string> notFinite)
    {
        var converted = tensor.dtype == ScalarType.Float32 ? tensor : tensor.to_type(ScalarType.Float32);
        var contiguous = converted.is_contiguous() ? converted : converted.contiguous();
        if (!isfinite(contiguous).all().item<bool>())
        {
            notFinite.Add(key);
        }
        return contiguous;
    }
}

using ParaphraseService.Model.Lora.Peft;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Lora;

/// <summary>
/// One LoRA adapter held in memory: for each module it targets, A [r, in] and B [out, r] in fp32 on the model's device,
/// and the scaling alpha / r (or alpha / sqrt(r) for rsLoRA). Modules may differ in rank and scaling (PEFT's
/// rank_pattern and alpha_pattern); <see cref="Rank"/> and <see cref="Scaling"/> are the adapter's defaults. Owns its
/// tensors.
/// </summary>
public sealed class LoraAdapter : IDisposable
{
    private readonly Dictionary<string, ModuleWeights> _modules;

    private LoraAdapter(string name, int rank, double scaling, Dictionary<string, ModuleWeights> modules)
    {
        Name = name;
        Rank = rank;
        Scaling = scaling;
        _modules = modules;
    }

    public string Name { get; }

    /// <summary>The rank of every module no rank_pattern gives another (the PEFT config's r).</summary>
    public int Rank { get; }

    /// <summary>The scaling of every module no pattern gives another (the PEFT config's lora_alpha over r).</summary>
    public double Scaling { get; }

    /// <summary>Whether some module has a rank or scaling other than <see cref="Rank"/> and <see cref="Scaling"/>.</summary>
    public bool HasModuleSettings => _modules.Values.Any(m => m.A.shape[0] != Rank || m.Scaling != Scaling);

    /// <summary>Module paths it changes, e.g. transformer.h.0.attn.q_proj.</summary>
    public IReadOnlyCollection<string> Modules => _modules.Keys;

    /// <summary>Bytes of its A and B matrices.</summary>
    public long Bytes => _modules.Values.Sum(m => (m.A.numel() + m.B.numel()) * m.A.ElementSize);

    internal IReadOnlyDictionary<string, ModuleWeights> Weights => _modules;

    /// <summary>An adapter from given matrices of one rank, all scaled alike (copied to fp32 on <paramref name="device"/>).</summary>
    /// <param name="weights">Module path → (A [r, in], B [out, r]).</param>
    public static LoraAdapter FromWeights(string name, double scaling, double dropout, IReadOnlyDictionary<string, (Tensor A, Tensor B)> weights, Device device)
    {
        if (weights.Count == 0)
            throw new ArgumentException($"Adapter '{name}' has no weights.");
        var ranks = weights.Values.Select(w => w.A.shape[0]).Distinct().ToList();
        if (ranks.Count != 1 || weights.Values.Any(w => w.B.shape[1] != ranks[0]))
            throw new ArgumentException($"Adapter '{name}' mixes ranks: every A must be [r, in] and every B [out, r] with one r.");
        return FromModules(name, (int)ranks[0], scaling, dropout, weights.ToDictionary(w => w.Key, w => (w.Value.A, w.Value.B, scaling)), device);
    }

    /// <summary>
    /// An adapter whose modules each have their own rank and scaling (copied to fp32 on <paramref name="device"/>);
    /// <paramref name="rank"/> and <paramref name="scaling"/> are the defaults it reports.
    /// </summary>
    /// <param name="modules">Module path → (A [r, in], B [out, r], scaling), r at least 1 and the same in A and B.</param>
    public static LoraAdapter FromModules(string name, int rank, double scaling, double dropout,
        IReadOnlyDictionary<string, (Tensor A, Tensor B, double Scaling)> modules, Device device)
    {
        if (modules.Count == 0)
            throw new ArgumentException($"Adapter '{name}' has no weights.");
        foreach (var (path, (a, b, moduleScaling)) in modules)
        {
            if (a.dim() != 2 || b.dim() != 2 || a.shape[0] < 1 || b.shape[1] != a.shape[0])
                throw new ArgumentException($"Adapter '{name}', module {path}: A [{string.Join(", ", a.shape)}] and " +
                    $"B [{string.Join(", ", b.shape)}] are not [r, in] and [out, r] with one r of at least 1.");
            if (!double.IsFinite(moduleScaling))
                throw new ArgumentException($"Adapter '{name}', module {path}: scaling {moduleScaling} is not a finite number.");
        }
        var weights = modules.ToDictionary(
            m => m.Key,
            m => new ModuleWeights(Copy(m.Value.A, device), Copy(m.Value.B, device), m.Value.Scaling, dropout));
        return new LoraAdapter(name, rank, scaling, weights);
    }

    /// <summary>
    /// An adapter read from PEFT files (already validated against the base), on <paramref name="device"/>: each module
    /// with the rank and scaling PEFT gives it.
    /// </summary>
    public static LoraAdapter FromPeft(PeftAdapter peft, Device device) =>
        FromModules(peft.Name, peft.Config.R, peft.Config.Scaling, peft.Config.LoraDropout,
            peft.Modules.ToDictionary(m => m.Key, m => (m.Value.A, m.Value.B, peft.ModuleSettings[m.Key].Scaling)), device);

    /// <summary>
    /// A fresh adapter as PEFT initialises one: A Kaiming-uniform (a = sqrt(5), like nn.Linear), B zero, so it changes
    /// nothing until trained.
    /// </summary>
    /// <param name="shapes">Module path → (in, out) of each targeted Linear.</param>
    public static LoraAdapter CreateNew(string name, int rank, double alpha, bool useRsLora, double dropout,
        IReadOnlyDictionary<string, (long In, long Out)> shapes, Device device, long seed)
    {
        if (rank is < 1 or > 256)
            throw new ArgumentOutOfRangeException(nameof(rank), $"LoRA rank must be 1-256 (got {rank}).");
        var scaling = useRsLora ? alpha / Math.Sqrt(rank) : alpha / rank;
        using var generator = new Generator((ulong)seed, CPU);
        var modules = new Dictionary<string, ModuleWeights>();
        foreach (var (path, (inFeatures, outFeatures)) in shapes.OrderBy(s => s.Key, StringComparer.Ordinal))
        {
            // kaiming_uniform_(a=sqrt(5)) on [r, in]: bound = 1 / sqrt(in)
            var bound = 1.0 / Math.Sqrt(inFeatures);
            using var a = rand([rank, inFeatures], generator: generator) * (2 * bound) - bound;
            using var b = zeros([outFeatures, rank]);
            modules[path] = new ModuleWeights(Copy(a, device), Copy(b, device), scaling, dropout);
        }
        return new LoraAdapter(name, rank, scaling, modules);
    }

    // Parameters (not plain tensors), so an optimizer can train them; frozen until Trainable() is called.
    private static Parameter Copy(Tensor t, Device device)
    {
        using var copy = t.to(ScalarType.Float32, device, copy: true);
        return (Parameter)new Parameter(copy, requires_grad: false).DetachFromDisposeScope();
    }

    /// <summary>The A and B matrices, switched to require gradients, for an optimizer to train.</summary>
    public IReadOnlyList<Parameter> Trainable()
    {
        var parameters = _modules.Values.SelectMany(m => new[] { m.A, m.B }).ToList();
        foreach (var p in parameters) p.requires_grad = true;
        return parameters;
    }

    /// <summary>Module path → (A, B) as they are now, for saving (the tensors are the adapter's own; do not dispose them).</summary>
    public IReadOnlyDictionary<string, (Tensor A, Tensor B)> Matrices => _modules.ToDictionary(m => m.Key, m => ((Tensor)m.Value.A, (Tensor)m.Value.B));

    public void Dispose()
    {
        foreach (var m in _modules.Values)
        {
            m.A.Dispose();
            m.B.Dispose();
        }
    }

    /// <summary>One targeted module's matrices and how they are applied.</summary>
    internal sealed record ModuleWeights(Parameter A, Parameter B, double Scaling, double Dropout);
}

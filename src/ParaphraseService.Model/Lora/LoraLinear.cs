using TorchSharp;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Lora;

/// <summary>
/// A Linear (full precision or int8) with LoRA adapters beside it: y = base(x) + dropout(x) · Aᵀ · Bᵀ · scaling, each
/// row of the batch with its own adapter (or none). The base matmul runs once for the whole batch; rows are grouped by
/// adapter and each group adds its delta. Adapter weights stay in fp32 whatever the base stores.
/// </summary>
public sealed class LoraLinear : nn.Module<Tensor, Tensor>
{
    // PEFT's name for the wrapped layer; the loader maps "<path>.base_layer.weight" back to the checkpoint's "<path>.weight".
    private nn.Module<Tensor, Tensor> base_layer;
    private readonly LoraRouting _routing;
    // A dictionary, not Tensor fields: adapters come and go and are not part of the base checkpoint.
    private readonly Dictionary<LoraAdapter, LoraAdapter.ModuleWeights> _adapters = new(ReferenceEqualityComparer.Instance);

    public LoraLinear(nn.Module<Tensor, Tensor> baseLayer, long inFeatures, long outFeatures, LoraRouting routing) : base(nameof(LoraLinear))
    {
        base_layer = baseLayer;
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        _routing = routing;
        RegisterComponents();
    }

    public long InFeatures { get; }
    public long OutFeatures { get; }

    /// <summary>Adapters currently attached to this layer.</summary>
    public int AdapterCount => _adapters.Count;

    internal void Attach(LoraAdapter adapter, LoraAdapter.ModuleWeights weights)
    {
        if (weights.A.shape[1] != InFeatures || weights.B.shape[0] != OutFeatures)
            throw new ArgumentException($"LoRA weights [{string.Join(", ", weights.A.shape)}] x [{string.Join(", ", weights.B.shape)}] do not fit a [{OutFeatures}, {InFeatures}] layer.");
        _adapters[adapter] = weights;
    }

    internal void Detach(LoraAdapter adapter) => _adapters.Remove(adapter);

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var y = base_layer.forward(x);
        if (_routing.Rows is { } rows && _adapters.Count > 0)
        {
            if (rows.Count != x.shape[0])
                throw new ArgumentException($"{rows.Count} adapter assignments for a batch of {x.shape[0]} rows.");
            foreach (var group in Enumerable.Range(0, rows.Count).Where(r => rows[r] is not null).GroupBy(r => rows[r]!))
            {
                if (!_adapters.TryGetValue(group.Key, out var weights))
                    continue; // that adapter does not target this layer
                var index = tensor(group.Select(r => (long)r).ToArray(), device: x.device);
                var input = x.index_select(0, index).to(ScalarType.Float32);
                if (training && weights.Dropout > 0)
                    input = nn.functional.dropout(input, weights.Dropout, training: true);
                // result = result + lora_B(lora_A(dropout(x))) * scaling
                var delta = input.matmul(weights.A.t()).matmul(weights.B.t()) * weights.Scaling;
                y = y.index_add(0, index, delta.to(y.dtype), 1);
            }
        }
        return y.MoveToOuterDisposeScope();
    }
}

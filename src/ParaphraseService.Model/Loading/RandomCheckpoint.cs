using System.Security.Cryptography;
using System.Text;
using ParaphraseService.Model.Checkpoints;
using ParaphraseService.Model.Core;
using ParaphraseService.Model.Families;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Loading;

/// <summary>
/// Weights of any supported family, named and shaped as the model holds them, drawn as Hugging Face initialises them (normal(0, 0.02) matrices, zero biases, unit LayerNorms), each
/// tensor from its own generator seeded by its name, so the values do not depend on the order they are read in.
/// </summary>
public sealed class RandomCheckpoint : ICheckpointSource
{
    private readonly long _seed;

    public RandomCheckpoint(ICausalLMConfig config, long seed)
    {
        _seed = seed;
        using var meta = ModelFamilies.Create(config, new Layers.LayerFactory(ScalarType.Float32, device("meta")));
        Tensors = meta.named_parameters().ToDictionary(
            p => p.name, p => new CheckpointTensorInfo(p.name, ScalarType.Float32, p.parameter.shape));
    }

    public IReadOnlyDictionary<string, CheckpointTensorInfo> Tensors { get; }

    public Tensor Read(string name)
    {
        var info = Tensors.TryGetValue(name, out var found) ? found : throw new CheckpointException($"random checkpoint: no tensor '{name}'.");
        if (name.Contains(".ln_") && name.EndsWith(".weight", StringComparison.Ordinal))
            return ones(info.Shape);
        if (name.EndsWith(".bias", StringComparison.Ordinal))
            return zeros(info.Shape);
        var nameHash = BitConverter.ToInt64(SHA256.HashData(Encoding.UTF8.GetBytes(name)));
        using var generator = new Generator((ulong)(_seed ^ nameHash), CPU);
        return normal(0, 0.02, info.Shape, generator: generator);
    }

    public void Dispose() { }
}

using System.Security.Cryptography;
using System.Text;
using ParaphraseService.Model.Checkpoints;
using ParaphraseService.Model.Core;
using ParaphraseService.Model.Families;
using ParaphraseService.Model.GptJ;
using ParaphraseService.Model.Tokenization;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Loading;

/// <summary>
/// A small GPT-J with deterministic random weights, so every command and endpoint works offline with no download.
/// Its output is not meaningful text.
/// </summary>
public static class DemoModel
{
    public const string SourceName = "demo";

    public const string Notice = "demo model: random weights, the output is not meaningful text";

    /// <summary>GPT-J's vocabulary and context with a small trunk (13M parameters, mostly the two vocabulary tables).</summary>
    public static GptJConfig Config { get; } = new()
    {
        VocabSize = 50400, MaxPositions = 2048, HiddenSize = 128, LayerCount = 4, HeadCount = 4, RotaryDim = 16,
    };

    public static LoadedModel Load(ModelLoadOptions options)
    {
        var (device, dtype) = options.Resolve();
        using var weights = new RandomCheckpoint(Config, seed: 0);
        var layers = ModelLoader.LayersFor(weights, options, dtype, device);
        var model = ModelLoader.Build(Config, weights, layers, SourceName);
        return new LoadedModel(model, Gpt2Tokenizer.BuiltIn(), SourceName, isDemo: true, device, dtype, layers.Quantization, options.MaxResidentAdapters)
        {
            OpenCheckpoint = () => new RandomCheckpoint(Config, seed: 0),
        };
    }
}

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

using ParaphraseService.Model.GptJ;
using ParaphraseService.Model.Tokenization;

namespace ParaphraseService.Model.Loading;

/// <summary>
/// A small GPT-J with deterministic random weights and GPT-2's vocabulary (<c>demo-random</c>): what the demo model was
/// before it was trained, kept for tests that need GPT-J's full vocabulary or weights with no structure. Its output is
/// not meaningful text.
/// </summary>
public static class RandomDemoModel
{
    public const string SourceName = "demo-random";

    public const string Notice = "random-weight demo model: the output is not meaningful text";

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
        var kvCache = options.ResolveKvCache(layers.Quantization, dtype, device.type);
        var model = ModelLoader.Build(Config, weights, layers, SourceName);
        model.KvCacheDtype = kvCache;
        return new LoadedModel(model, Gpt2Tokenizer.BuiltIn(), SourceName, isDemo: true, device, dtype, layers.Quantization, options.MaxResidentAdapters)
        {
            OpenCheckpoint = () => new RandomCheckpoint(Config, seed: 0),
            Notice = Notice,
        };
    }
}

using ParaphraseService.Model.Core;
using ParaphraseService.Model.GptJ;
using ParaphraseService.Model.Layers;
using ParaphraseService.Model.Loading;
using ParaphraseService.Model.Lora;
using TorchSharp;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Tests;

/// <summary>Small GPT-J models with deterministic random weights, built in memory through the real loader.</summary>
internal static class TinyModels
{
    public static GptJConfig Config { get; } = new()
    {
        VocabSize = 96, MaxPositions = 64, HiddenSize = 32, LayerCount = 2, HeadCount = 4, RotaryDim = 4,
        BosTokenId = 0, EosTokenId = 1,
    };

    public static GptJForCausalLM Create(GptJConfig? config = null, ScalarType dtype = ScalarType.Float32, long seed = 7,
        Quantization quantization = Quantization.None, Int8Options? int8 = null)
    {
        config ??= Config;
        using var weights = new RandomCheckpoint(config, seed);
        return ModelLoader.Build(config, weights, new LayerFactory(dtype, CPU, quantization, int8), "tiny");
    }

    public static Tensor Logits(CausalLM model, long[] ids)
    {
        using var noGrad = no_grad();
        return model.forward(new CausalLMInput(tensor(ids).unsqueeze(0)));
    }

    /// <summary>A tiny GPT-J built with LoRA support, and a registry holding two random rank-4 adapters, "x" and "y".</summary>
    public static LoraTinyModel WithTwoAdapters() => new();
}

/// <summary>See <see cref="TinyModels.WithTwoAdapters"/>.</summary>
internal sealed class LoraTinyModel : IDisposable
{
    private readonly RandomCheckpoint _weights = new(TinyModels.Config, 7);

    public LoraTinyModel()
    {
        Model = ModelLoader.Build(TinyModels.Config, _weights, new LayerFactory(ScalarType.Float32, CPU, Lora: new LoraRouting()), "tiny");
        Registry = new AdapterRegistry(Model, 2);
        var generator = new Generator(3, CPU);
        foreach (var name in new[] { "x", "y" })
            Registry.Load(LoraAdapter.FromWeights(name, 2.0, 0,
                Registry.Targets.ToDictionary(t => t.Key, t => (randn([4, t.Value.In], generator: generator) * 0.3f, randn([t.Value.Out, 4], generator: generator) * 0.3f)), CPU));
    }

    public CausalLM Model { get; }
    public AdapterRegistry Registry { get; }

    public void Dispose()
    {
        Registry.Dispose();
        Model.Dispose();
        _weights.Dispose();
    }
}

using ParaphraseService.Model.Core;
using ParaphraseService.Model.GptJ;
using ParaphraseService.Model.Layers;
using ParaphraseService.Model.Loading;
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
}

using ParaphraseService.Model.Layers;
using ParaphraseService.Model.Loading;
using ParaphraseService.Model.Lora;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Tests.Loading;

public class Int8TrainingMatricesTests
{
    private static readonly ParaphraseService.Model.GptJ.GptJConfig Config = DemoModel.Config with { LayerCount = 2, MaxPositions = 64 };

    private static ParaphraseService.Model.GptJ.GptJForCausalLM Build(bool keep)
    {
        using var weights = new RandomCheckpoint(Config, 3);
        return ModelLoader.Build(Config, weights,
            new LayerFactory(ScalarType.Float32, CPU, Quantization.Int8, new Int8Options(Int8Kernel.Fbgemm, KeepWeightForTraining: keep), new LoraRouting()), "t");
    }

    [Fact]
    public void MatricesDerivedAgainFromTheCheckpointEqualTheOnesKeptAtLoadAndAreReleasedAfter()
    {
        using var kept = Build(keep: true);
        using var served = Build(keep: false);
        var layers = served.modules().OfType<Int8Linear>().Count();
        Assert.True(layers > 0);
        Assert.Empty(Int8TrainingMatrices.Missing(kept));
        var missing = Int8TrainingMatrices.Missing(served);
        Assert.Equal(layers, missing.Count); // fbgemm alone cannot pass gradients
        Assert.Contains(missing, m => m.Key == "transformer.h.0.attn.q_proj.weight"); // checkpoint names, LoRA wrappers removed
        var before = served.modules().OfType<Int8Linear>().Sum(l => l.WeightBytes);

        using (var checkpoint = new RandomCheckpoint(Config, 3))
            foreach (var (key, layer) in missing)
                Int8TrainingMatrices.Attach(layer, key, checkpoint);
        Assert.Empty(Int8TrainingMatrices.Missing(served));
        var keptLayers = kept.named_modules().Where(m => m.module is Int8Linear).ToDictionary(m => m.name, m => (Int8Linear)m.module);
        foreach (var (name, module) in served.named_modules().Where(m => m.module is Int8Linear))
            Assert.True(((Int8Linear)module).QuantizedWeight().Q.eq(keptLayers[name].QuantizedWeight().Q).all().item<bool>(), name);
        Assert.True(served.modules().OfType<Int8Linear>().Sum(l => l.WeightBytes) > before);

        Assert.Equal(layers, Int8TrainingMatrices.Release(served));
        Assert.Equal(layers, Int8TrainingMatrices.Missing(served).Count);
        Assert.Equal(before, served.modules().OfType<Int8Linear>().Sum(l => l.WeightBytes));
    }

    [Fact]
    public void ACheckpointThatChangedIsRefusedWithAMessage()
    {
        using var served = Build(keep: false);
        var (key, layer) = Int8TrainingMatrices.Missing(served)[0];
        using var other = new RandomCheckpoint(Config with { HiddenSize = 64, HeadCount = 4 }, 3);
        var error = Assert.Throws<ParaphraseService.Model.Checkpoints.CheckpointException>(() => Int8TrainingMatrices.Attach(layer, key, other));
        Assert.Contains(key, error.Message);
    }
}

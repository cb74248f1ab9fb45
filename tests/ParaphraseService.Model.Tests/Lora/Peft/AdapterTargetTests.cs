using ParaphraseService.Model.GptJ;
using ParaphraseService.Model.Lora.Peft;

namespace ParaphraseService.Model.Tests.Lora.Peft;

public sealed class AdapterTargetTests
{
    [Fact]
    public void TinyGptJOffersItsSixLinearsPerLayer()
    {
        var target = GptJFamily.LoraTargets(GptJConfig.Load(Fixtures.Get("gptj-tiny", "safetensors", "config.json")));
        Assert.Equal("gptj", target.Architecture);
        Assert.Equal(64, target.HiddenSize);
        Assert.Equal(2, target.LayerCount);
        Assert.Equal(12, target.Modules.Count);
        Assert.Equal((64L, 64L), target.Modules["transformer.h.1.attn.out_proj"]);
        Assert.Equal((64L, 256L), target.Modules["transformer.h.0.mlp.fc_in"]);
        Assert.Equal((256L, 64L), target.Modules["transformer.h.0.mlp.fc_out"]);
        Assert.DoesNotContain("lm_head", target.Modules.Keys);
        Assert.Equal(["q_proj", "v_proj"], target.DefaultTargetModules!);
    }

    [Fact]
    public void GptJ6BShapes()
    {
        var target = GptJFamily.LoraTargets(GptJConfig.GptJ6B);
        Assert.Equal(28 * 6, target.Modules.Count);
        Assert.Equal((4096L, 4096L), target.Modules["transformer.h.27.attn.q_proj"]);
        Assert.Equal((4096L, 16384L), target.Modules["transformer.h.0.mlp.fc_in"]);
        Assert.Equal((16384L, 4096L), target.Modules["transformer.h.27.mlp.fc_out"]);
    }
}

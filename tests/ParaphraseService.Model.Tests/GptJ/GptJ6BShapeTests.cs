using ParaphraseService.Model.GptJ;
using TorchSharp;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Tests.GptJ;

public class GptJ6BShapeTests
{
    [Fact]
    public void FullConfigBuildsOnMetaWithTheHubParameterCountAndNoMemory()
    {
        // Warm up with a tiny meta build first: loading LibTorch's libraries alone costs hundreds of MB resident.
        using (new GptJForCausalLM(GptJConfig.GptJ6B with { LayerCount = 1, HiddenSize = 64, HeadCount = 4, RotaryDim = 8 }, ScalarType.Float16, torch.device("meta"))) { }
        var residentBefore = Environment.WorkingSet;
        using var model = new GptJForCausalLM(GptJConfig.GptJ6B, ScalarType.Float16, torch.device("meta"));
        // 12 GB of fp16 weights would show; a meta build costs only the rotary table and bookkeeping.
        Assert.InRange(Environment.WorkingSet - residentBefore, long.MinValue, 256L << 20);
        var parameters = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);

        // Counted from config.json: embeddings, 28 blocks, ln_f, lm_head with bias.
        Assert.Equal(6_050_882_784L, parameters.Values.Sum(p => p.numel()));
        Assert.All(parameters.Values, p => Assert.Equal(DeviceType.META, p.device_type));
        Assert.Equal(28 * 10 + 5, parameters.Count); // per block: ln_1 (2), q/k/v/out (4), fc_in (2), fc_out (2)

        Assert.Equal([50400L, 4096], parameters["transformer.wte.weight"].shape);
        Assert.Equal([4096L, 4096], parameters["transformer.h.27.attn.q_proj.weight"].shape);
        Assert.Equal([4096L, 4096], parameters["transformer.h.0.attn.out_proj.weight"].shape);
        Assert.Equal([16384L, 4096], parameters["transformer.h.0.mlp.fc_in.weight"].shape);
        Assert.Equal([16384L], parameters["transformer.h.0.mlp.fc_in.bias"].shape);
        Assert.Equal([4096L, 16384], parameters["transformer.h.0.mlp.fc_out.weight"].shape);
        Assert.Equal([4096L], parameters["transformer.h.0.ln_1.weight"].shape);
        Assert.Equal([4096L], parameters["transformer.ln_f.bias"].shape);
        Assert.Equal([50400L, 4096], parameters["lm_head.weight"].shape);
        Assert.Equal([50400L], parameters["lm_head.bias"].shape);
        Assert.DoesNotContain("transformer.h.0.attn.q_proj.bias", parameters.Keys);
        Assert.All(parameters.Values, p => Assert.Equal(ScalarType.Float16, p.dtype));
    }
}

using ParaphraseService.Model.Checkpoints;
using ParaphraseService.Model.Core;
using ParaphraseService.Model.Generation;
using ParaphraseService.Model.Loading;
using ParaphraseService.Model.Tokenization;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Tests.Families;

/// <summary>
/// Logits of tiny random GPT-Neo and GPT-2 checkpoints against PyTorch references written from Hugging Face's
/// modeling_gpt_neo.py and modeling_gpt2.py (tests/fixtures/make_family_fixtures.py). The issue asks for 1e-4 in fp32;
/// the bound is tighter so that small bugs (exact vs tanh GELU, a missing scale) still fail.
/// </summary>
public sealed class FamilyGoldenParityTests(ITestOutputHelper output)
{
    private const double Tolerance = 1e-5;
    internal static readonly ModelLoadOptions Fp32 = new() { Device = "cpu" };

    /// <summary>Fixture folder and each checkpoint layout it holds.</summary>
    public static TheoryData<string, string> Checkpoints() => new()
    {
        { "gptj-tiny", "safetensors" },     // GPT-J: single file, shards, PyTorch .bin and sharded .bin
        { "gptj-tiny", "sharded-safetensors" },
        { "gptj-tiny", "bin" },
        { "gptj-tiny", "sharded-bin" },
        { "gptneo-tiny", "safetensors" },   // transformer.* keys, fp32
        { "gptneo-tiny", "bin" },           // with attn.attention.bias/masked_bias buffers and a copy of the tied lm_head.weight
        { "gpt2-tiny", "safetensors" },     // the hub's layout: no "transformer." prefix, attn.bias buffers, Conv1D [in, out]
        { "gpt2-tiny", "prefixed-bin" },    // save_pretrained's layout: "transformer." prefix, tied head left out
    };

    public static TheoryData<string> Families() => ["gptneo-tiny", "gpt2-tiny"];

    public static TheoryData<string> AllFamilies() => ["gptj-tiny", "gptneo-tiny", "gpt2-tiny"];

    [Theory, MemberData(nameof(Checkpoints))]
    public void SingleSequenceLogitsMatchTheReference(string family, string format)
    {
        using var golden = new SafetensorsReader(Fixtures.Get(family, "golden.safetensors"));
        using var model = ModelLoader.LoadFolder(Fixtures.Get(family, format), Fp32);
        using var ids = golden.Read("single.input_ids");
        using var expected = golden.Read("single.logits");
        using var noGrad = no_grad();
        using var logits = model.Model.forward(new CausalLMInput(ids));

        var error = (logits - expected).abs().max().item<float>();
        output.WriteLine($"{family}/{format}: max |Δlogit| = {error:E2} over {expected.numel()} logits (up to {expected.abs().max().item<float>():F3})");
        Assert.InRange(error, 0, Tolerance);
    }

    [Theory, MemberData(nameof(Families))]
    public void LeftPaddedBatchMatchesTheReferenceAtEveryRealPosition(string family)
    {
        using var golden = new SafetensorsReader(Fixtures.Get(family, "golden.safetensors"));
        using var model = ModelLoader.LoadFolder(Fixtures.Get(family, "safetensors"), Fp32);
        using var ids = golden.Read("batch.input_ids");
        using var mask = golden.Read("batch.attention_mask");
        using var expected = golden.Read("batch.logits");
        using var noGrad = no_grad();

        using var logits = model.Model.forward(new CausalLMInput(ids, mask));
        using var real = mask.to(ScalarType.Bool);
        var error = (logits[real] - expected[real]).abs().max().item<float>();
        output.WriteLine($"{family} left-padded batch: max |Δlogit| over real positions = {error:E2}");
        Assert.InRange(error, 0, Tolerance);
        Assert.False(logits.isnan().any().item<bool>());
    }

    [Theory, MemberData(nameof(AllFamilies))]
    public void GreedyGenerationMatchesTheReference(string family)
    {
        using var golden = new SafetensorsReader(Fixtures.Get(family, "golden.safetensors"));
        using var model = ModelLoader.LoadFolder(Fixtures.Get(family, "safetensors"), Fp32);
        using var prompt = golden.Read("greedy.prompt_ids");
        using var expected = golden.Read("greedy.generated_ids");
        var promptIds = prompt[0].data<long>().Select(i => (int)i).ToArray();

        var result = new TextGenerator(model.Model, Gpt2Tokenizer.BuiltIn())
            .Generate(promptIds, new GenerationOptions { Greedy = true, MaxNewTokens = (int)expected.shape[1] });

        Assert.Equal(expected[0].data<long>().Select(i => (int)i), result.GeneratedIds);
    }

    [Theory, MemberData(nameof(Families))]
    public void Bfloat16ModelTracksTheReference(string family)
    {
        using var golden = new SafetensorsReader(Fixtures.Get(family, "golden.safetensors"));
        using var model = ModelLoader.LoadFolder(Fixtures.Get(family, "safetensors"), new ModelLoadOptions { Device = "cpu", Dtype = "bfloat16" });
        Assert.All(model.Model.parameters(), p => Assert.Equal(ScalarType.BFloat16, p.dtype));
        using var ids = golden.Read("single.input_ids");
        using var expected = golden.Read("single.logits");
        using var noGrad = no_grad();
        using var logits = model.Model.forward(new CausalLMInput(ids));
        var error = (logits - expected).abs().max().item<float>();
        output.WriteLine($"{family} bfloat16: max |Δlogit| = {error:E2}");
        Assert.InRange(error, 1e-7, 5e-2);
    }
}

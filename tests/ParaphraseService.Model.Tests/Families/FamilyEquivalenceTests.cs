using ParaphraseService.Model.Checkpoints;
using ParaphraseService.Model.Core;
using ParaphraseService.Model.Families;
using ParaphraseService.Model.Generation;
using ParaphraseService.Model.Gpt2;
using ParaphraseService.Model.GptNeo;
using ParaphraseService.Model.Layers;
using ParaphraseService.Model.Loading;
using ParaphraseService.Model.Tests.Checkpoints;
using ParaphraseService.Model.Tokenization;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Tests.Families;

/// <summary>
/// What must hold for every family beyond the reference numbers: the cached paths (a KV cache, the continuous
/// batcher's slot cache) and padded batches equal the plain forward, int8 works with the tied head, and the full-size
/// configurations have the published parameter counts. The GPT-Neo fixture has a window of 4, so every sequence here
/// reaches past it.
/// </summary>
public sealed class FamilyEquivalenceTests(ITestOutputHelper output)
{
    private static readonly long[] Sequence = [5, 17, 42, 8, 91, 3, 60, 22, 14, 77, 35, 101, 9];

    public static TheoryData<string> Families() => FamilyGoldenParityTests.Families();

    private static LoadedModel Load(string family, ModelLoadOptions? options = null) =>
        ModelLoader.LoadFolder(Fixtures.Get(family, "safetensors"), options ?? FamilyGoldenParityTests.Fp32);

    [Theory, MemberData(nameof(Families))]
    public void IncrementalDecodingWithTheCacheEqualsTheFullForward(string family)
    {
        using var model = Load(family);
        using var full = TinyModels.Logits(model.Model, Sequence);

        using var noGrad = no_grad();
        using var cache = new KvCache(model.Config.LayerCount, Sequence.Length);
        const int prefill = 3;
        var pieces = new List<Tensor> { model.Model.forward(new CausalLMInput(tensor(Sequence[..prefill]).unsqueeze(0), Cache: cache)) };
        for (var t = prefill; t < Sequence.Length; t++)
            pieces.Add(model.Model.forward(new CausalLMInput(tensor(new[] { Sequence[t] }).unsqueeze(0), Cache: cache)));
        using var incremental = cat(pieces, 1);
        pieces.ForEach(p => p.Dispose());

        Assert.Equal(Sequence.Length, cache.Length);
        var error = (full - incremental).abs().max().item<float>();
        output.WriteLine($"{family}: cached vs full forward, max |Δ| = {error:E2}");
        Assert.InRange(error, 0, 1e-5);
    }

    [Theory, MemberData(nameof(Families))]
    public void LeftPaddedBatchRowEqualsTheRowRunAlone(string family)
    {
        using var model = Load(family);
        long[][] rows = [Sequence[..10], Sequence[3..10], Sequence[..2]];
        var (ids, mask) = LeftPadded.Batch(rows.Select(r => (IReadOnlyList<int>)r.Select(i => (int)i).ToList()).ToList(), 1, CPU);
        using (ids)
        using (mask)
        using (no_grad())
        {
            using var batch = model.Model.forward(new CausalLMInput(ids, mask));
            for (var r = 0; r < rows.Length; r++)
            {
                using var alone = TinyModels.Logits(model.Model, rows[r]);
                using var inBatch = batch[r, (10 - rows[r].Length)..];
                Assert.True(alone[0].allclose(inBatch, rtol: 0, atol: 1e-5), $"{family} row {r}: max |Δ| = {(alone[0] - inBatch).abs().max().item<float>()}");
            }
        }
    }

    [Theory, MemberData(nameof(Families))]
    public void ContinuousBatchingProducesWhatEachSequenceProducesAlone(string family)
    {
        // Sequences join and leave mid-stream. (Sampling from a tiny random model's flat distributions hides small logit
        // errors; the slot cache's logits are compared directly in the test above.)
        using var model = Load(family);
        var tokenizer = Gpt2Tokenizer.BuiltIn();
        var alone = new TextGenerator(model.Model, tokenizer);
        GenerationOptions Options(int seed, int maxNew) => new() { Seed = seed, Temperature = 1.2, MaxNewTokens = maxNew, EosTokenId = -1 };
        IReadOnlyList<int> p1 = [5, 17, 42, 8, 91, 3], p2 = [9, 9], p3 = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3];
        using var batcher = new ContinuousBatcher(model.Model, tokenizer, slots: 2, capacity: 32);
        var names = new Dictionary<int, string>();
        var results = new Dictionary<string, GenerationResult>();
        var arrivals = new Dictionary<int, (string, IReadOnlyList<int>, GenerationOptions)[]>
        {
            [0] = [("a", p1, Options(1, 10))],
            [2] = [("b", p2, Options(2, 4))],
            [7] = [("c", p3, Options(3, 8))],
        };
        for (var step = 0; step < 60 && results.Count < 3; step++)
        {
            foreach (var (name, prompt, options) in arrivals.GetValueOrDefault(step) ?? [])
                names[batcher.Admit(prompt, options)] = name;
            foreach (var update in batcher.Step().Where(u => u.Finished))
                results[names[update.Slot]] = update.Result!;
        }

        Assert.Equal(alone.Generate(p1, Options(1, 10)).GeneratedIds, results["a"].GeneratedIds);
        Assert.Equal(alone.Generate(p2, Options(2, 4)).GeneratedIds, results["b"].GeneratedIds);
        Assert.Equal(alone.Generate(p3, Options(3, 8)).GeneratedIds, results["c"].GeneratedIds);
    }

    [Theory, MemberData(nameof(Families))]
    public void SlotCacheDecodingOfRowsOfDifferentLengthsEqualsTheirFullForwards(string family)
    {
        // The continuous batcher's cache: each slot holds its own length, and a decode step's query of a shorter row
        // does not sit at the cache's last index. GPT-Neo's local window must follow each row's own positions.
        using var model = Load(family);
        long[][] prompts = [Sequence[..9], Sequence[..3]];
        long[][] next = [[7, 30, 12], [44, 2, 19]];
        using var noGrad = no_grad();
        using var slots = new SlotKvCache(model.Config.LayerCount, slots: 2, capacity: 16);
        for (var r = 0; r < 2; r++)
        {
            using var prefill = new KvCache(model.Config.LayerCount, prompts[r].Length);
            using var _ = model.Model.forward(new CausalLMInput(tensor(prompts[r]).unsqueeze(0), Cache: prefill));
            slots.Load(r, prefill, 0, 0, prompts[r].Length);
        }
        for (var step = 0; step < 3; step++)
        {
            using var ids = tensor(new[,] { { next[0][step] }, { next[1][step] } });
            using var mask = slots.StepMask(CPU);
            using var positions = slots.StepPositions(CPU);
            using var logits = model.Model.forward(new CausalLMInput(ids, mask, positions, slots, LastTokens: 1));
            for (var r = 0; r < 2; r++)
            {
                using var full = TinyModels.Logits(model.Model, [.. prompts[r], .. next[r][..(step + 1)]]);
                var error = (logits[r, 0] - full[0, -1]).abs().max().item<float>();
                Assert.True(error < 1e-5, $"{family} step {step} row {r}: max |Δ| = {error}");
            }
        }
    }

    [Theory]
    [InlineData("gptneo-tiny", Int8Kernel.Avx2)]
    [InlineData("gptneo-tiny", Int8Kernel.Fbgemm)]
    [InlineData("gptneo-tiny", Int8Kernel.Dequantize)]
    [InlineData("gpt2-tiny", Int8Kernel.Avx2)]
    [InlineData("gpt2-tiny", Int8Kernel.Fbgemm)]
    [InlineData("gpt2-tiny", Int8Kernel.Dequantize)]
    public void Int8WeightsIncludingTheTiedHeadTrackFloat32(string family, Int8Kernel kernel)
    {
        using var fp32 = Load(family);
        using var int8 = Load(family, new ModelLoadOptions { Device = "cpu", Quantization = "int8", Int8 = new Int8Options(kernel) });
        // Every Linear and the token embedding are int8; the position table stays full precision; the head has no weight of its own.
        var quantized = int8.Model.named_modules().Where(m => m.module is IQuantizedWeightLayer).Select(m => m.name).ToList();
        Assert.Contains("transformer.wte", quantized);
        Assert.DoesNotContain("transformer.wpe", quantized);
        Assert.DoesNotContain(quantized, n => n.StartsWith("lm_head", StringComparison.Ordinal));
        Assert.Equal(int8.Config.LayerCount * (family == "gpt2-tiny" ? 4 : 6) + 1, quantized.Count);

        using var a = TinyModels.Logits(fp32.Model, Sequence);
        using var b = TinyModels.Logits(int8.Model, Sequence);
        var error = ((a - b).norm() / a.norm()).item<float>();
        output.WriteLine($"{family} int8 ({kernel}): relative L2 error of the logits {error:E2}");
        Assert.InRange(error, 1e-5f, 5e-2f);
    }

    [Theory, MemberData(nameof(Families))]
    public void QuantizedCheckpointLoadsToTheSameModelAsQuantizingOnLoad(string family)
    {
        using var temp = new TempFolder();
        var folder = Path.Combine(temp.Path, "int8");
        QuantizedCheckpoint.Write(Fixtures.Get(family, "safetensors"), folder);
        using (var written = new SafetensorsReader(Path.Combine(folder, "model.safetensors")))
        {
            // The model's names and layout: "transformer." prefix, Linear [out, in] (GPT-2's c_attn: [3E, E]), no mask buffers.
            Assert.All(written.Tensors.Keys, k => Assert.True(k.StartsWith("transformer.", StringComparison.Ordinal), k));
            Assert.DoesNotContain(written.Tensors.Keys, k => k.EndsWith(".attn.bias", StringComparison.Ordinal) || k.Contains("masked_bias"));
            if (family == "gpt2-tiny")
                Assert.Equal([192L, 64L], written.Tensors["transformer.h.0.attn.c_attn.weight"].Shape);
        }
        var int8 = new ModelLoadOptions { Device = "cpu", Quantization = "int8", Int8 = new Int8Options(Int8Kernel.Dequantize) };
        using var onLoad = Load(family, int8);
        using var preQuantized = ModelLoader.LoadFolder(folder, int8 with { Quantization = "auto" });
        using var a = TinyModels.Logits(onLoad.Model, Sequence);
        using var b = TinyModels.Logits(preQuantized.Model, Sequence);
        Assert.True(a.eq(b).all().item<bool>());
    }

    [Fact]
    public void FullSizeConfigurationsHaveThePublishedParameterCounts()
    {
        // Shapes only, on the meta device: EleutherAI/gpt-neo-2.7B and openai-community/gpt2 (tied heads counted once).
        using var neo = new GptNeoForCausalLM(GptNeoConfig.GptNeo27B, ScalarType.Float16, device("meta"));
        Assert.Equal(2_651_307_520, neo.parameters().Sum(p => p.numel()));
        Assert.Equal(["global", "local"], GptNeoConfig.GptNeo27B.AttentionLayers.Take(2));
        using var gpt2 = new Gpt2ForCausalLM(Gpt2Config.Gpt2Small, ScalarType.Float32, device("meta"));
        Assert.Equal(124_439_808, gpt2.parameters().Sum(p => p.numel()));
        Assert.Contains(gpt2.named_parameters(), p => p.name == "transformer.h.11.attn.c_attn.weight" && p.parameter.shape.SequenceEqual([2304L, 768L]));
        Assert.DoesNotContain(gpt2.named_parameters(), p => p.name.StartsWith("lm_head", StringComparison.Ordinal));
    }

    [Fact]
    public void TheFamilyComesFromModelTypeAndUnknownTypesAreListed()
    {
        using var neo = Load("gptneo-tiny");
        using var gpt2 = Load("gpt2-tiny");
        Assert.IsType<GptNeoForCausalLM>(neo.Model);
        Assert.IsType<Gpt2ForCausalLM>(gpt2.Model);
        Assert.Equal("gpt_neo", neo.Model.ModelType);
        Assert.Equal(["gptj", "gpt_neo", "gpt2"], ModelFamilies.Supported.Select(f => f.ModelType));
        var error = Assert.Throws<NotSupportedException>(() => ModelFamilies.Get("llama"));
        Assert.Contains("'gptj' (GPT-J), 'gpt_neo' (GPT-Neo), 'gpt2' (GPT-2)", error.Message);
    }
}

using System.Text.Json.Nodes;
using ParaphraseService.Model.Checkpoints;
using ParaphraseService.Model.Core;
using ParaphraseService.Model.Layers;
using ParaphraseService.Model.Loading;
using ParaphraseService.Model.Lora;
using ParaphraseService.Model.Tests.Checkpoints;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Tests.Families;

/// <summary>
/// LoRA on GPT-Neo and GPT-2. The GPT-2 fixture adapter was written as PEFT writes one for GPT-2 (fan_in_fan_out:
/// true, targets c_attn, c_proj, c_fc; lora_A [r, in], lora_B [out, r]); its expected logits come from the reference,
/// where the adapter runs beside HF's Conv1D layers (and, merged with the transposed delta, gives the same).
/// </summary>
public sealed class FamilyLoraTests(ITestOutputHelper output)
{
    private static readonly string Adapter = Fixtures.Get("gpt2-tiny", "peft-fan-in-fan-out");
    private static readonly ModelLoadOptions WithLora = new() { Device = "cpu", MaxResidentAdapters = 2 };

    private static Tensor Golden(string name)
    {
        using var golden = new SafetensorsReader(Fixtures.Get("gpt2-tiny", "golden.safetensors"));
        return golden.Read(name);
    }

    [Theory]
    [InlineData("safetensors")]
    [InlineData("prefixed-bin")]
    public void Gpt2PeftAdapterWithFanInFanOutGivesTheReferenceChange(string format)
    {
        using var model = ModelLoader.LoadFolder(Fixtures.Get("gpt2-tiny", format), WithLora);
        var (adapter, _, warnings) = model.Adapters!.LoadFolder(Adapter);
        Assert.Empty(warnings); // fan_in_fan_out: true is what Conv1D targets need
        Assert.Equal(8, adapter.Modules.Count); // c_attn, attn.c_proj, c_fc, mlp.c_proj in both layers
        Assert.Equal(2.0, adapter.Scaling);

        using var ids = Golden("single.input_ids");
        using var expected = Golden("peft.logits");
        using var baseLogits = Golden("single.logits");
        using var noGrad = no_grad();
        using var logits = model.Model.forward(new CausalLMInput(ids, Adapters: [adapter]));
        var error = (logits - expected).abs().max().item<float>();
        var change = (expected - baseLogits).abs().max().item<float>();
        output.WriteLine($"gpt2-tiny/{format} + adapter: max |Δlogit| = {error:E2} (the adapter moves logits by up to {change:F3})");
        Assert.InRange(error, 0, 1e-5);
    }

    [Fact]
    public void FanInFanOutFalseIsCorrectedForConv1DTargetsAsPeftDoes()
    {
        using var temp = new TempFolder();
        foreach (var file in Directory.GetFiles(Adapter))
            File.Copy(file, Path.Combine(temp.Path, Path.GetFileName(file)));
        var configPath = Path.Combine(temp.Path, "adapter_config.json");
        var config = JsonNode.Parse(File.ReadAllText(configPath))!.AsObject();
        config["fan_in_fan_out"] = false;
        File.WriteAllText(configPath, config.ToJsonString());

        using var model = ModelLoader.LoadFolder(Fixtures.Get("gpt2-tiny", "safetensors"), WithLora);
        var (adapter, _, warnings) = model.Adapters!.LoadFolder(temp.Path, "corrected");
        Assert.Contains(warnings, w => w.Contains("fan_in_fan_out is false", StringComparison.Ordinal) && w.Contains("Conv1D", StringComparison.Ordinal));
        using var ids = Golden("single.input_ids");
        using var expected = Golden("peft.logits");
        using var noGrad = no_grad();
        using var logits = model.Model.forward(new CausalLMInput(ids, Adapters: [adapter]));
        Assert.InRange((logits - expected).abs().max().item<float>(), 0, 1e-5);
    }

    [Fact]
    public void MixedBatchRowsEachComputeWhatTheyComputeAlone()
    {
        using var model = ModelLoader.LoadFolder(Fixtures.Get("gpt2-tiny", "safetensors"), WithLora);
        var (adapter, _, _) = model.Adapters!.LoadFolder(Adapter);
        using var ids = Golden("single.input_ids");
        using var batchIds = ids.expand(3, -1).contiguous();
        using var noGrad = no_grad();
        using var mixed = model.Model.forward(new CausalLMInput(batchIds, Adapters: [adapter, null, adapter]));
        using var withAdapter = model.Model.forward(new CausalLMInput(ids, Adapters: [adapter]));
        using var without = model.Model.forward(new CausalLMInput(ids));
        Assert.True(mixed[0].allclose(withAdapter[0], rtol: 0, atol: 1e-5));
        Assert.True(mixed[1].allclose(without[0], rtol: 0, atol: 1e-5));
        Assert.True(mixed[2].allclose(withAdapter[0], rtol: 0, atol: 1e-5));
        Assert.False(mixed[0].allclose(mixed[1], rtol: 0, atol: 1e-3));
    }

    [Fact]
    public void MergingIntoGpt2WritesTheTransposedDeltaIntoItsConv1DWeights()
    {
        using var temp = new TempFolder();
        var merged = Path.Combine(temp.Path, "merged");
        using (var model = ModelLoader.LoadFolder(Fixtures.Get("gpt2-tiny", "safetensors"), WithLora))
        {
            var (adapter, _, _) = model.Adapters!.LoadFolder(Adapter);
            AdapterMerge.Export(Fixtures.Get("gpt2-tiny", "safetensors"), adapter, merged);
        }
        using (var written = new SafetensorsReader(Path.Combine(merged, "model.safetensors")))
            Assert.Equal([64L, 192L], written.Tensors["h.0.attn.c_attn.weight"].Shape); // still the hub's layout

        using var plain = ModelLoader.LoadFolder(merged, FamilyGoldenParityTests.Fp32);
        using var ids = Golden("single.input_ids");
        using var expected = Golden("peft.logits");
        using var noGrad = no_grad();
        using var logits = plain.Model.forward(new CausalLMInput(ids));
        Assert.InRange((logits - expected).abs().max().item<float>(), 0, 1e-4);
    }

    [Fact]
    public void AdapterOnAnInt8Gpt2BaseTracksTheReference()
    {
        using var model = ModelLoader.LoadFolder(Fixtures.Get("gpt2-tiny", "safetensors"),
            WithLora with { Quantization = "int8", Int8 = new Int8Options(Int8Kernel.Dequantize) });
        var (adapter, _, _) = model.Adapters!.LoadFolder(Adapter);
        using var ids = Golden("single.input_ids");
        using var expected = Golden("peft.logits");
        using var noGrad = no_grad();
        using var logits = model.Model.forward(new CausalLMInput(ids, Adapters: [adapter]));
        var error = ((logits - expected).norm() / expected.norm()).item<float>();
        output.WriteLine($"int8 gpt2-tiny + adapter: relative L2 error {error:E2}");
        Assert.InRange(error, 1e-6f, 5e-2f);
    }

    [Fact]
    public void GptNeoPeftAdapterGivesTheBasePlusEachModulesScaledDeltaByHand()
    {
        // As PEFT 0.18 writes one for GPT-Neo: keys under attn.attention, rsLoRA, a rank_pattern and an alpha_pattern, and
        // fan_in_fan_out set wrongly (PEFT sets it back to false for nn.Linear and runs the same math).
        using var temp = new TempFolder();
        var folder = temp.File("neo-adapter");
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "adapter_config.json"), """
            {"peft_type": "LORA", "peft_version": "0.18.0", "task_type": "CAUSAL_LM", "r": 4, "lora_alpha": 8,
             "use_rslora": true, "fan_in_fan_out": true, "target_modules": ["q_proj", "v_proj", "c_fc"],
             "rank_pattern": {"c_fc": 2}, "alpha_pattern": {"v_proj": 32}, "lora_dropout": 0.1, "bias": "none"}
            """);
        // module -> (r, alpha / sqrt(r)), from the config above
        var expected = new Dictionary<string, (int R, double Scaling)>();
        for (var layer = 0; layer < 4; layer++)
        {
            expected[$"transformer.h.{layer}.attn.attention.q_proj"] = (4, 8 / 2.0);
            expected[$"transformer.h.{layer}.attn.attention.v_proj"] = (4, 32 / 2.0);
            expected[$"transformer.h.{layer}.mlp.c_fc"] = (2, 8 / Math.Sqrt(2));
        }
        using var generator = new Generator(7, CPU);
        var tensors = new Dictionary<string, Tensor>();
        foreach (var (module, (r, _)) in expected)
        {
            var outFeatures = module.EndsWith("c_fc", StringComparison.Ordinal) ? 256 : 64;
            tensors[$"base_model.model.{module}.lora_A.weight"] = randn([r, 64], generator: generator) * 0.1;
            tensors[$"base_model.model.{module}.lora_B.weight"] = randn([outFeatures, r], generator: generator) * 0.1;
        }
        SafetensorsWriter.Write(Path.Combine(folder, "adapter_model.safetensors"), tensors, new Dictionary<string, string> { ["format"] = "pt" });

        var source = Fixtures.Get("gptneo-tiny", "safetensors");
        using var model = ModelLoader.LoadFolder(source, WithLora);
        var (adapter, _, warnings) = model.Adapters!.LoadFolder(folder);
        Assert.Contains(warnings, w => w.StartsWith("fan_in_fan_out is true, but the adapted layers are nn.Linear", StringComparison.Ordinal));
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), adapter.Modules.Order(StringComparer.Ordinal));

        // W + scaling · B · A written into a plain model's weights.
        using var plain = ModelLoader.LoadFolder(source, new ModelLoadOptions { Device = "cpu" });
        var parameters = plain.Model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        using var noGrad = no_grad();
        foreach (var (module, (_, scaling)) in expected)
            parameters[module + ".weight"].add_(tensors[$"base_model.model.{module}.lora_B.weight"].matmul(tensors[$"base_model.model.{module}.lora_A.weight"]) * scaling);
        foreach (var t in tensors.Values) t.Dispose();

        using var ids = tensor(new long[] { 5, 17, 42, 8, 91, 3, 60, 11 }).unsqueeze(0);
        using var reference = plain.Model.forward(new CausalLMInput(ids));
        using var actual = model.Model.forward(new CausalLMInput(ids, Adapters: [adapter]));
        using var baseOnly = model.Model.forward(new CausalLMInput(ids));
        Assert.True(actual.allclose(reference, rtol: 0, atol: 1e-5), $"max |Δ| {(actual - reference).abs().max().item<float>()}");
        Assert.False(actual.allclose(baseOnly, rtol: 0, atol: 1e-3));
    }

    [Theory]
    [InlineData("gptneo-tiny")]
    [InlineData("gpt2-tiny")]
    public void EveryAdaptableLayerIsAPeftTargetUnderItsCheckpointName(string family)
    {
        using var model = ModelLoader.LoadFolder(Fixtures.Get(family, "safetensors"), WithLora);
        var registry = model.Adapters!;
        Assert.Equal(registry.Target.Modules.OrderBy(m => m.Key, StringComparer.Ordinal), registry.Targets.OrderBy(m => m.Key, StringComparer.Ordinal));
        Assert.Equal(family == "gpt2-tiny", registry.Target.Conv1D);
        var q = family == "gpt2-tiny" ? "transformer.h.0.attn.c_attn" : "transformer.h.0.attn.attention.q_proj";
        Assert.Contains(q, registry.Targets.Keys);

        // A fresh adapter (B = 0) changes nothing; one with B moved changes the output, mixed per row.
        var fresh = LoraAdapter.CreateNew("fresh", 4, 8, false, 0, registry.Targets, CPU, seed: 1);
        registry.Load(fresh);
        using var ids = tensor(new long[] { 5, 17, 42, 8, 91, 3, 60 }).unsqueeze(0);
        using var noGrad = no_grad();
        using var without = model.Model.forward(new CausalLMInput(ids));
        using var withFresh = model.Model.forward(new CausalLMInput(ids, Adapters: [fresh]));
        Assert.True(without.allclose(withFresh, rtol: 0, atol: 1e-6));
        foreach (var (_, b) in fresh.Matrices.Values) b.normal_(0, 0.1);
        registry.Load(LoraAdapter.FromWeights("moved", fresh.Scaling, 0, fresh.Matrices, CPU));
        using var moved = model.Model.forward(new CausalLMInput(ids, Adapters: [registry.Get("moved")]));
        Assert.False(without.allclose(moved, rtol: 0, atol: 1e-3));
    }
}

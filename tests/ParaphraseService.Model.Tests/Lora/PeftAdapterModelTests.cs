using ParaphraseService.Model.Checkpoints;
using ParaphraseService.Model.Core;
using ParaphraseService.Model.Families;
using ParaphraseService.Model.GptJ;
using ParaphraseService.Model.Loading;
using ParaphraseService.Model.Lora.Peft;
using ParaphraseService.Model.Tests.Checkpoints;
using ParaphraseService.Model.Tests.Lora.Peft;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Tests.Lora;

/// <summary>PEFT adapter folders on the tiny GPT-J, checked against a direct computation with the merged weights.</summary>
public sealed class PeftAdapterModelTests : IDisposable
{
    private readonly TempFolder _temp = new();

    public void Dispose() => _temp.Dispose();

    private static readonly string Base = Fixtures.Get("gptj-tiny", "safetensors");
    private static readonly long[] Ids = [1, 2, 3, 5, 8, 13, 21, 34];

    [Theory]
    [InlineData("q-v")]
    [InlineData("q-v-bin")]
    [InlineData("q-v-fp16")]
    [InlineData("regex-mlp")]
    [InlineData("all-linear-rslora")]
    public void AdapterChangesTheOutputExactlyAsMergingItsWeightsByHand(string fixture)
    {
        var folder = Fixtures.Get("peft", fixture);
        using var model = ModelLoader.LoadFolder(Base, new ModelLoadOptions { Device = "cpu", MaxResidentAdapters = 2 });
        var (adapter, _, _) = model.Adapters!.LoadFolder(folder);

        // Direct computation: W + scaling * B @ A written into a plain model's weights, from the raw adapter file.
        var config = PeftLoraConfig.Load(Path.Combine(folder, "adapter_config.json"));
        using var peft = PeftAdapterFiles.Load(folder, AdapterTarget.For(model.Config));
        using var plain = ModelLoader.LoadFolder(Base, new ModelLoadOptions { Device = "cpu" });
        var parameters = plain.Model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        using (no_grad())
        {
            foreach (var (path, weights) in peft.Modules)
                parameters[path + ".weight"].add_(weights.B.matmul(weights.A) * config.Scaling);
        }

        using var ids = tensor(Ids).unsqueeze(0);
        using var noGrad = no_grad();
        using var expected = plain.Model.forward(new CausalLMInput(ids));
        using var actual = model.Model.forward(new CausalLMInput(ids, Adapters: [adapter]));
        using var baseOnly = model.Model.forward(new CausalLMInput(ids));
        Assert.True(actual.allclose(expected, rtol: 0, atol: 1e-5), $"max |Δ| {(actual - expected).abs().max().item<float>()}");
        Assert.False(actual.allclose(baseOnly, rtol: 0, atol: 1e-4)); // the adapter is not a no-op
        Assert.Equal(config.Scaling, adapter.Scaling);
    }

    [Fact]
    public void AdapterForAnotherBaseIsRefusedWithTheReason()
    {
        var wider = GptJConfig.Load(Path.Combine(Base, "config.json")) with { HiddenSize = 128 };
        using var checkpoint = new RandomCheckpoint(wider, 1);
        using var model = ModelLoader.Build(wider, checkpoint, new Model.Layers.LayerFactory(ScalarType.Float32, CPU, Lora: new Model.Lora.LoraRouting()), "wide");
        using var registry = new Model.Lora.AdapterRegistry(model, 1);
        var error = Assert.Throws<AdapterValidationException>(() => registry.LoadFolder(Fixtures.Get("peft", "q-v")));
        Assert.Contains("q_proj", error.Message);
        Assert.Empty(registry.List());
    }

    [Theory]
    [InlineData("q-v")]
    [InlineData("q-v-fp16")]
    [InlineData("q-v-bin")]
    public void AnAdapterWithANaNNeverReachesTheModel(string fixture)
    {
        // PEFT loads such an adapter; it can only produce NaN, and in a mixed batch its rows share the layers' low-rank
        // matmul with other adapters' rows. Refused when read, whatever the file format, before anything is attached.
        const string poisoned = "base_model.model.transformer.h.0.attn.q_proj.lora_B.weight";
        var folder = PeftFixtures.Copy(fixture, _temp.File(fixture));
        if (fixture.EndsWith("-bin", StringComparison.Ordinal))
            PoisonFirstValue(Path.Combine(folder, PeftAdapterFiles.LegacyBinFileName), poisoned);
        else
            PeftFixtures.EditTensors(folder, t => t[poisoned][3, 1] = float.NaN);
        using var model = ModelLoader.LoadFolder(Base, new ModelLoadOptions { Device = "cpu", MaxResidentAdapters = 2 });

        var error = Assert.Throws<AdapterValidationException>(() => model.Adapters!.LoadFolder(folder, "poisoned"));
        Assert.Equal($"{folder}: tensors holding NaN or infinite values: {poisoned}", error.Message);
        Assert.Empty(model.Adapters!.List());
        Assert.All(model.Model.modules().OfType<Model.Lora.LoraLinear>(), layer => Assert.Equal(0, layer.AdapterCount));

        // The registry is unharmed: the intact adapter loads beside the base rows and every logit is finite.
        var (adapter, _, _) = model.Adapters.LoadFolder(Fixtures.Get("peft", fixture), "intact");
        using var ids = tensor(Ids).unsqueeze(0).expand(2, -1);
        using var noGrad = no_grad();
        using var logits = model.Model.forward(new CausalLMInput(ids, Adapters: [adapter, null]));
        Assert.True(isfinite(logits).all().item<bool>());
    }

    /// <summary>
    /// Overwrites the first value of a float32 tensor in a PyTorch zip checkpoint with NaN: torch.save stores entries
    /// uncompressed, so the tensor's bytes appear as they are in the file.
    /// </summary>
    private static void PoisonFirstValue(string path, string key)
    {
        float[] values;
        using (var reader = new PyTorchCheckpointReader(path))
        using (var stored = reader.Read(key))
        {
            Assert.Equal(ScalarType.Float32, stored.dtype);
            values = stored.contiguous().data<float>().ToArray();
        }
        var bytes = File.ReadAllBytes(path);
        var pattern = System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
        var at = bytes.AsSpan().IndexOf(pattern);
        Assert.True(at >= 0 && bytes.AsSpan(at + 1).IndexOf(pattern) < 0, "the tensor's bytes are not found once in the file");
        BitConverter.GetBytes(float.NaN).CopyTo(bytes, at);
        File.WriteAllBytes(path, bytes);
    }
}

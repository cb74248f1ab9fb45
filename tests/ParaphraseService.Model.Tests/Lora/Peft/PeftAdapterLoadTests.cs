using System.Text.Json.Nodes;
using ParaphraseService.Model.Lora.Peft;
using ParaphraseService.Model.Tests.Checkpoints;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Tests.Lora.Peft;

/// <summary>Adapters PEFT would load: the fixtures and the key and config forms PEFT accepts.</summary>
public sealed class PeftAdapterLoadTests : IDisposable
{
    private static readonly string[] QvModules =
        ["transformer.h.0.attn.q_proj", "transformer.h.0.attn.v_proj", "transformer.h.1.attn.q_proj", "transformer.h.1.attn.v_proj"];

    private readonly TempFolder _temp = new();

    public void Dispose() => _temp.Dispose();

    [Theory]
    [InlineData("q-v")]
    [InlineData("q-v-fp16")]  // converted to float32; the values are exact in float16
    [InlineData("q-v-bin")]   // legacy torch.save file
    public void LoadsTheQvAdaptersBitExactAsFloat32(string fixture)
    {
        using var adapter = PeftAdapterFiles.Load(PeftFixtures.Folder(fixture), PeftFixtures.Target);

        Assert.Equal(fixture, adapter.Name);
        Assert.Equal(QvModules, adapter.Modules.Keys);
        Assert.Equal(4, adapter.Config.R);
        Assert.Equal(2.0, adapter.Config.Scaling);
        Assert.Null(adapter.Metadata);
        Assert.Empty(adapter.Warnings);
        AssertFixtureValues(adapter, 4);
        Assert.Equal(4 * (4 * 64 + 64 * 4) * 4L, adapter.Bytes);
    }

    [Fact]
    public void RegexTargetsSelectTheModulesTheyFullMatch()
    {
        using var adapter = PeftAdapterFiles.Load(PeftFixtures.Folder("regex-mlp"), PeftFixtures.Target);

        Assert.Equal(["transformer.h.0.mlp.fc_in", "transformer.h.0.mlp.fc_out", "transformer.h.1.mlp.fc_in", "transformer.h.1.mlp.fc_out"],
            adapter.Modules.Keys);
        Assert.Equal([2L, 64L], adapter.Modules["transformer.h.0.mlp.fc_in"].A.shape);
        Assert.Equal([256L, 2L], adapter.Modules["transformer.h.0.mlp.fc_in"].B.shape);
        Assert.Equal([2L, 256L], adapter.Modules["transformer.h.0.mlp.fc_out"].A.shape);
        Assert.Equal(2.0, adapter.Config.Scaling);
        AssertFixtureValues(adapter, 2);
    }

    [Fact]
    public void FullPathTargetsAndOurMetadataLoad()
    {
        using var adapter = PeftAdapterFiles.Load(PeftFixtures.Folder("all-linear-rslora"), PeftFixtures.Target, name: "paws");

        Assert.Equal("paws", adapter.Name);
        Assert.Equal(PeftFixtures.Target.Modules.Keys, adapter.Modules.Keys);
        Assert.Equal(8.0, adapter.Config.Scaling);  // 16 / sqrt(4)
        Assert.Equal(AdapterOrigin.FineTune, adapter.Metadata!.Origin);
        Assert.Equal("a future version", adapter.Metadata.OtherFields["written_by"].GetString());
        AssertFixtureValues(adapter, 4);
    }

    [Theory]
    [InlineData("all-linear")]
    [InlineData("ALL-LINEAR")]
    public void AllLinearSelectsEveryOfferedModule(string shorthand)
    {
        var folder = PeftFixtures.Copy("all-linear-rslora", _temp.File("all-linear"));
        PeftFixtures.EditConfig(folder, c => c["target_modules"] = shorthand);

        using var adapter = PeftAdapterFiles.Load(folder, PeftFixtures.Target);

        Assert.Equal(12, adapter.Modules.Count);
        Assert.True(adapter.Config.TargetModules!.IsAllLinear);
    }

    [Fact]
    public void WithoutTargetModulesPeftsGptJDefaultApplies()
    {
        var folder = PeftFixtures.Copy("q-v", _temp.File("default-targets"));
        PeftFixtures.EditConfig(folder, c => c.Remove("target_modules"));

        using var adapter = PeftAdapterFiles.Load(folder, PeftFixtures.Target);

        Assert.Equal(QvModules, adapter.Modules.Keys);
        Assert.Null(adapter.Config.TargetModules);
    }

    [Fact]
    public void ExcludeModulesRemovesModulesFromTheSelection()
    {
        var folder = PeftFixtures.Copy("q-v", _temp.File("exclude"));
        PeftFixtures.EditConfig(folder, c => c["exclude_modules"] = new JsonArray("transformer.h.1.attn.v_proj"));
        PeftFixtures.EditTensors(folder, t =>
        {
            PeftFixtures.Remove(t, PeftFixtures.Key("transformer.h.1.attn.v_proj", "lora_A"));
            PeftFixtures.Remove(t, PeftFixtures.Key("transformer.h.1.attn.v_proj", "lora_B"));
        });

        using var adapter = PeftAdapterFiles.Load(folder, PeftFixtures.Target);

        Assert.Equal(QvModules[..3], adapter.Modules.Keys);
    }

    [Theory]
    [InlineData("base_model.model.{0}.{1}.default.weight")]  // PEFT's in-memory form, with the adapter name
    [InlineData("{0}.{1}.weight")]                         // transformers' PEFT integration saves without the prefix
    [InlineData("{0}.{1}.paws.weight")]
    public void OtherKeyFormsPeftLoadsAreAccepted(string format)
    {
        var folder = PeftFixtures.Copy("q-v", _temp.File("keys"));
        PeftFixtures.EditTensors(folder, tensors =>
        {
            foreach (var key in tensors.Keys.ToList())
            {
                var factor = key.Contains(".lora_A.") ? "lora_A" : "lora_B";
                var module = key["base_model.model.".Length..key.IndexOf("." + factor, StringComparison.Ordinal)];
                tensors.Remove(key, out var tensor);
                tensors[string.Format(format, module, factor)] = tensor!;
            }
        });

        using var adapter = PeftAdapterFiles.Load(folder, PeftFixtures.Target);

        Assert.Equal(QvModules, adapter.Modules.Keys);
        AssertFixtureValues(adapter, 4);
    }

    [Fact]
    public void Bfloat16AndFloat64AreConvertedToFloat32()
    {
        var folder = PeftFixtures.Copy("q-v", _temp.File("mixed"));
        PeftFixtures.EditTensors(folder, tensors =>
        {
            var a = PeftFixtures.Key("transformer.h.0.attn.q_proj", "lora_A");
            var b = PeftFixtures.Key("transformer.h.0.attn.q_proj", "lora_B");
            PeftFixtures.Replace(tensors, a, tensors[a].to_type(ScalarType.BFloat16));
            PeftFixtures.Replace(tensors, b, tensors[b].to_type(ScalarType.Float64));
        });

        using var adapter = PeftAdapterFiles.Load(folder, PeftFixtures.Target);

        AssertFixtureValues(adapter, 4);  // the fixture values are exact in bfloat16 too
    }

    [Fact]
    public void FanInFanOutIsForcedToFalseWithAWarning()
    {
        var folder = PeftFixtures.Copy("q-v", _temp.File("fan-in-fan-out"));
        PeftFixtures.EditConfig(folder, c => c["fan_in_fan_out"] = true);

        using var adapter = PeftAdapterFiles.Load(folder, PeftFixtures.Target);

        Assert.False(adapter.Config.FanInFanOut);
        var warning = Assert.Single(adapter.Warnings);
        Assert.Contains("fan_in_fan_out is true", warning);
        Assert.Contains("set to false", warning);
        AssertFixtureValues(adapter, 4);  // the weights are used as stored, not transposed
    }

    [Theory]
    [InlineData(null)]
    [InlineData("CAUSAL_LM")]
    public void TaskTypeMayBeCausalLmOrAbsent(string? taskType)
    {
        var folder = PeftFixtures.Copy("q-v", _temp.File("task"));
        PeftFixtures.EditConfig(folder, c => c["task_type"] = taskType);

        using var adapter = PeftAdapterFiles.Load(folder, PeftFixtures.Target);

        Assert.Equal(taskType, adapter.Config.TaskType);
    }

    [Theory]
    [InlineData("false")]
    [InlineData("gaussian")]
    [InlineData("eva")]
    [InlineData("orthogonal")]
    [InlineData("mica")]
    public void InitialisationsThatLeaveTheBaseAloneAreAccepted(string init)
    {
        var folder = PeftFixtures.Copy("q-v", _temp.File("init"));
        PeftFixtures.EditConfig(folder, c => c["init_lora_weights"] = init == "false" ? JsonValue.Create(false) : JsonValue.Create(init));

        using var adapter = PeftAdapterFiles.Load(folder, PeftFixtures.Target);

        Assert.Equal(init, adapter.Config.InitLoraWeights);
    }

    [Fact]
    public void SafetensorsIsPreferredOverBinWithAWarning()
    {
        var folder = PeftFixtures.Copy("q-v", _temp.File("both"));
        File.Copy(Path.Combine(PeftFixtures.Folder("q-v-bin"), "adapter_model.bin"), Path.Combine(folder, "adapter_model.bin"));

        using var adapter = PeftAdapterFiles.Load(folder, PeftFixtures.Target);

        Assert.Contains("adapter_model.safetensors is used", Assert.Single(adapter.Warnings));
    }

    [Fact]
    public void DisposeReleasesTheTensors()
    {
        var adapter = PeftAdapterFiles.Load(PeftFixtures.Folder("q-v"), PeftFixtures.Target);
        var a = adapter.Modules["transformer.h.0.attn.q_proj"].A;

        adapter.Dispose();
        adapter.Dispose();

        Assert.True(a.IsInvalid);
        Assert.Throws<ObjectDisposedException>(() => adapter.Modules);
    }

    /// <summary>Every module holds make_peft_fixtures.py's values, as contiguous float32 CPU tensors.</summary>
    internal static void AssertFixtureValues(PeftAdapter adapter, long r)
    {
        foreach (var (module, weights) in adapter.Modules)
        {
            var (expectedA, expectedB) = PeftFixtures.Expected(module, r);
            using (expectedA)
            using (expectedB)
            {
                TestTensors.AssertSame(expectedA, weights.A, $"{module} lora_A");
                TestTensors.AssertSame(expectedB, weights.B, $"{module} lora_B");
            }
            Assert.Equal(TorchSharp.DeviceType.CPU, weights.A.device_type);
            Assert.True(weights.A.is_contiguous() && weights.B.is_contiguous());
        }
    }
}

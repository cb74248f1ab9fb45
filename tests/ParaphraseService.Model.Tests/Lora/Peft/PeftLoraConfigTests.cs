using System.Text.Json;
using ParaphraseService.Model.Lora.Peft;
using ParaphraseService.Model.Tests.Checkpoints;

namespace ParaphraseService.Model.Tests.Lora.Peft;

public sealed class PeftLoraConfigTests : IDisposable
{
    private readonly TempFolder _temp = new();

    public void Dispose() => _temp.Dispose();

    [Fact]
    public void ReadsPeftsFields()
    {
        var config = PeftLoraConfig.Load(Path.Combine(PeftFixtures.Folder("q-v"), PeftLoraConfig.FileName));

        Assert.Equal("LORA", config.PeftType);
        Assert.Equal("CAUSAL_LM", config.TaskType);
        Assert.Equal(4, config.R);
        Assert.Equal(8, config.LoraAlpha);
        Assert.Equal(0.05, config.LoraDropout);
        Assert.Equal(PeftTargetModules.FromNames(["v_proj", "q_proj"]), config.TargetModules);
        Assert.Null(config.ExcludeModules);
        Assert.Equal("tests/fixtures/gptj-tiny/safetensors", config.BaseModelNameOrPath);
        Assert.False(config.FanInFanOut);
        Assert.Equal("none", config.Bias);
        Assert.False(config.UseRslora);
        Assert.False(config.UseDora);
        Assert.Null(config.ModulesToSave);
        Assert.Equal(PeftLoraConfig.InitTrue, config.InitLoraWeights);
        Assert.True(config.InferenceMode);
        Assert.Equal(2.0, config.Scaling);
        // Everything else PEFT wrote is kept as it was.
        Assert.Equal("0.19.1", config.OtherFields["peft_version"].GetString());
        Assert.Equal(JsonValueKind.Object, config.OtherFields["rank_pattern"].ValueKind);
        Assert.Equal("megatron.core", config.OtherFields["megatron_core"].GetString());
        Assert.Equal(22, config.OtherFields.Count);
    }

    [Fact]
    public void ScalingIsAlphaOverRankOrOverItsSquareRootWithRsLora()
    {
        var config = new PeftLoraConfig { R = 16, LoraAlpha = 32 };
        Assert.Equal(2.0, config.Scaling);
        Assert.Equal(8.0, (config with { UseRslora = true }).Scaling);
        Assert.Equal(16 / Math.Sqrt(4), PeftLoraConfig.Load(Path.Combine(PeftFixtures.Folder("all-linear-rslora"), PeftLoraConfig.FileName)).Scaling);
    }

    [Theory]
    [InlineData("q-v")]
    [InlineData("regex-mlp")]
    [InlineData("all-linear-rslora")]
    public void SavingAPeftConfigReproducesPeftsBytes(string fixture)
    {
        // Same fields, sorted keys, two-space indent: what Python's json.dumps(indent=2, sort_keys=True) wrote.
        var original = File.ReadAllText(Path.Combine(PeftFixtures.Folder(fixture), PeftLoraConfig.FileName));
        var config = PeftLoraConfig.FromJson(original, fixture);
        var path = _temp.File("adapter_config.json");

        config.Save(path);

        Assert.Equal(original, File.ReadAllText(path));
        Assert.Equal(config, PeftLoraConfig.Load(path));
        Assert.False(File.Exists(path + ".tmp"));
    }

    [Fact]
    public void MissingFieldsTakePeftsDefaults()
    {
        var config = PeftLoraConfig.FromJson("""{"peft_type": "LORA"}""", "minimal");
        Assert.Equal(8, config.R);
        Assert.Equal(8, config.LoraAlpha);
        Assert.Equal(0, config.LoraDropout);
        Assert.Null(config.TaskType);
        Assert.Null(config.TargetModules);
        Assert.Equal("none", config.Bias);
        Assert.Equal(PeftLoraConfig.InitTrue, config.InitLoraWeights);
        Assert.Empty(config.OtherFields);
    }

    [Theory]
    [InlineData("false", "false")]
    [InlineData("\"gaussian\"", "gaussian")]
    [InlineData("\"pissa_niter_4\"", "pissa_niter_4")]
    public void InitLoraWeightsKeepsItsJsonForm(string json, string expected)
    {
        var config = PeftLoraConfig.FromJson($$"""{"peft_type": "LORA", "init_lora_weights": {{json}}}""", "init");
        Assert.Equal(expected, config.InitLoraWeights);
        Assert.Contains($"\"init_lora_weights\": {json}", config.ToJson());
    }

    [Fact]
    public void TargetModulesAsAStringIsAPatternAndRoundTrips()
    {
        var config = PeftLoraConfig.FromJson("""{"peft_type": "LORA", "target_modules": ".*\\.mlp\\.fc_(in|out)"}""", "regex");
        Assert.Equal(@".*\.mlp\.fc_(in|out)", config.TargetModules!.Pattern);
        Assert.Null(config.TargetModules.Names);
        Assert.Equal(config, PeftLoraConfig.FromJson(config.ToJson(), "again"));
    }

    [Fact]
    public void EveryMistypedFieldIsReportedAtOnce()
    {
        var json = """
            {"peft_type": "LORA", "r": "8", "lora_alpha": "sixteen", "use_dora": "no", "target_modules": 3,
             "modules_to_save": [1], "init_lora_weights": 1, "bias": false}
            """;
        var error = Assert.Throws<AdapterValidationException>(() => PeftLoraConfig.FromJson(json, "mistyped.json"));
        Assert.Equal("mistyped.json", error.Path);
        Assert.Equal(7, error.Problems.Count);
        Assert.Contains("r must be an integer, not \"8\"", error.Message);
        Assert.Contains("lora_alpha must be a number", error.Message);
        Assert.Contains("use_dora must be true or false", error.Message);
        Assert.Contains("target_modules must be a list of module names or a regular expression string, not 3", error.Message);
        Assert.Contains("modules_to_save must be a list of strings", error.Message);
        Assert.Contains("init_lora_weights must be true, false or a method name", error.Message);
        Assert.Contains("bias must be a string", error.Message);
        Assert.StartsWith("mistyped.json: 7 problems: (1) ", error.Message);
    }

    [Theory]
    [InlineData("{\"r\": 8,", "not valid JSON")]
    [InlineData("[1, 2]", "not a JSON object but a Array")]
    [InlineData("{\"target_modules\": \"(q|v\"}", "target_modules '(q|v' is not a valid regular expression")]
    [InlineData("{\"r\": 4.5}", "r must be an integer, not 4.5")]
    public void InvalidFilesAreRefused(string json, string expected)
    {
        var error = Assert.Throws<AdapterValidationException>(() => PeftLoraConfig.FromJson(json, "bad.json"));
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void AMissingFileIsReported()
    {
        var path = _temp.File("adapter_config.json");
        var error = Assert.Throws<AdapterValidationException>(() => PeftLoraConfig.Load(path));
        Assert.Equal($"{path}: file not found", error.Message);
    }

    [Fact]
    public void EqualityIsStructural()
    {
        var json = File.ReadAllText(Path.Combine(PeftFixtures.Folder("all-linear-rslora"), PeftLoraConfig.FileName));
        var a = PeftLoraConfig.FromJson(json, "a");
        var b = PeftLoraConfig.FromJson(json, "b");
        Assert.Equal(a, b);
        Assert.NotEqual(a, a with { R = 8 });
        Assert.NotEqual(a, a with { ModulesToSave = ["lm_head"] });
        Assert.NotEqual(a, PeftLoraConfig.FromJson(json.Replace("\"peft_version\": \"0.19.1\"", "\"peft_version\": \"0.19.2\""), "c"));
    }
}

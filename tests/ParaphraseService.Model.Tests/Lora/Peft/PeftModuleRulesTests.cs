using System.Text.Json.Nodes;
using ParaphraseService.Model.Gpt2;
using ParaphraseService.Model.GptJ;
using ParaphraseService.Model.GptNeo;
using ParaphraseService.Model.Lora.Peft;

namespace ParaphraseService.Model.Tests.Lora.Peft;

/// <summary>
/// Which modules a config adapts and with which r and alpha, against module-rules.json: the answers of PEFT's own
/// check_target_module_exists and get_pattern_key (make_module_rules.py runs them from PEFT's source) for configs using
/// layers_to_transform, layers_pattern, rank_pattern and alpha_pattern on GPT-J, GPT-Neo and GPT-2 module paths.
/// </summary>
public sealed class PeftModuleRulesTests
{
    public static TheoryData<string> Cases()
    {
        var data = new TheoryData<string>();
        foreach (var c in Golden()["cases"]!.AsArray())
            data.Add(c!["name"]!.GetValue<string>());
        return data;
    }

    [Fact]
    public void TheGoldenFileCoversEveryKindOfCase()
    {
        var cases = Golden()["cases"]!.AsArray();
        Assert.True(cases.Count >= 20);
        Assert.Contains(cases, c => c!["error"] is not null);
        Assert.Contains(cases, c => c!["modules"] is JsonObject { Count: 0 });
        Assert.Contains(cases, c => c!["modules"] is JsonObject m && m.Any(p => p.Value!["r"]!.GetValue<int>() != 8));
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void ModulesRanksAndAlphasAreWhatPeftComputes(string name)
    {
        var golden = Golden()["cases"]!.AsArray().Single(c => c!["name"]!.GetValue<string>() == name)!;
        var layers = golden["layers"]!.GetValue<int>();
        var target = golden["family"]!.GetValue<string>() switch
        {
            "gptj" => GptJFamily.LoraTargets(GptJConfig.GptJ6B with { LayerCount = layers, HiddenSize = 64 }),
            "gpt_neo" => GptNeoFamily.LoraTargets(GptNeoConfig.GptNeo27B with { LayerCount = layers, HiddenSize = 64 }),
            "gpt2" => Gpt2Family.LoraTargets(Gpt2Config.Gpt2Small with { LayerCount = layers, HiddenSize = 64 }),
            var other => throw new InvalidOperationException(other),
        };
        // PEFT's LoraConfig defaults for what the case leaves out (make_module_rules.py's `fields`).
        var json = new JsonObject { ["peft_type"] = "LORA", ["r"] = 8, ["lora_alpha"] = 8 };
        foreach (var (field, value) in golden["config"]!.AsObject())
            json[field] = value?.DeepClone();
        var config = PeftLoraConfig.FromJson(json.ToJsonString(), name);

        var problems = new List<string>();
        var warnings = new List<string>();
        var rules = PeftModuleRules.Read(config, problems);
        var selected = PeftAdapterChecks.ResolveTargets(config, target, rules, problems, warnings);
        var settled = PeftAdapterChecks.Settle(config, rules, selected, problems, warnings);

        if (golden["error"] is not null || golden["modules"]!.AsObject().Count == 0)
        {
            // PEFT raises (a config error, or NoMatchingPeftModuleError when nothing is left): a clear refusal here.
            Assert.NotEmpty(problems);
            return;
        }
        Assert.Empty(problems);
        var expected = golden["modules"]!.AsObject();
        Assert.Equal(expected.Select(p => p.Key).Order(StringComparer.Ordinal), settled.Keys);
        foreach (var (module, want) in expected)
        {
            var got = settled[module];
            Assert.True(want!["r"]!.GetValue<int>() == got.R, $"{module}: r {got.R}, PEFT {want["r"]}");
            Assert.True(want["alpha"]!.GetValue<double>() == got.Alpha, $"{module}: alpha {got.Alpha}, PEFT {want["alpha"]}");
            Assert.True(Math.Abs(want["scaling"]!.GetValue<double>() - got.Scaling) < 1e-12, $"{module}: scaling {got.Scaling}, PEFT {want["scaling"]}");
        }
    }

    [Theory]
    [InlineData("layers pattern without a layer index group", "layers_pattern 'h|layers' matches 'transformer.h.0.attn.q_proj' but its first group captures nothing, not the layer index")]
    [InlineData("layers pattern capturing a group", "layers_pattern '(h)' matches 'transformer.h.0.attn.q_proj' but its first group captures 'h', not the layer index")]
    [InlineData("regex target_modules with layers", @"layers_to_transform is [0], but target_modules is the string '.*\.q_proj': PEFT restricts layers only for a list of module names")]
    [InlineData("all-linear with layers", "layers_to_transform is [0], but target_modules is the string 'all-linear'")]
    [InlineData("layers pattern without layers", "layers_pattern is \"h\" without layers_to_transform")]
    [InlineData("pattern that is the whole prefix", "target_modules with layers_to_transform [0] selects no module of the gptj base: PEFT reads a module's layer as the number after '.<layers_pattern>.'")]
    public void WhatPeftRefusesIsRefusedWithTheReason(string name, string expected)
    {
        var golden = Golden()["cases"]!.AsArray().Single(c => c!["name"]!.GetValue<string>() == name)!;
        var json = new JsonObject { ["peft_type"] = "LORA" };
        foreach (var (field, value) in golden["config"]!.AsObject())
            json[field] = value?.DeepClone();
        var config = PeftLoraConfig.FromJson(json.ToJsonString(), name);
        var target = GptJFamily.LoraTargets(GptJConfig.GptJ6B with { LayerCount = golden["layers"]!.GetValue<int>(), HiddenSize = 64 });

        var problems = new List<string>();
        var rules = PeftModuleRules.Read(config, problems);
        PeftAdapterChecks.ResolveTargets(config, target, rules, problems, []);

        Assert.Contains(problems, p => p.Contains(expected, StringComparison.Ordinal));
        Assert.Single(problems);  // once, not once per module
    }

    [Theory]
    [InlineData("layers_to_transform", "\"1\"", "layers_to_transform must be a layer index or a list of layer indexes, not \"1\"")]
    [InlineData("layers_to_transform", "[0, true]", "layers_to_transform must be a layer index or a list of layer indexes, not [0,true]")]
    [InlineData("layers_to_transform", "1.5", "layers_to_transform must be a layer index or a list of layer indexes, not 1.5")]
    [InlineData("layers_pattern", "3", "layers_pattern must be a string or a list of strings, not 3")]
    [InlineData("layers_pattern", "\"h(\"", "layers_pattern 'h(' does not make a valid regular expression")]
    [InlineData("rank_pattern", "[8]", "rank_pattern must be an object mapping module name patterns to a rank, not [8]")]
    [InlineData("rank_pattern", "{\"q_proj\": 0}", "rank_pattern gives 'q_proj' 0: the rank must be between 1 and 256")]
    [InlineData("rank_pattern", "{\"q_proj\": 300}", "rank_pattern gives 'q_proj' 300: the rank must be between 1 and 256")]
    [InlineData("rank_pattern", "{\"q_proj\": 4.5}", "rank_pattern gives 'q_proj' 4.5, not an integer rank")]
    [InlineData("rank_pattern", "{\"q_proj\": \"8\"}", "rank_pattern gives 'q_proj' \"8\", not an integer rank")]
    [InlineData("rank_pattern", "{\"q_proj[\": 8}", "rank_pattern key 'q_proj[' does not make a valid regular expression")]
    [InlineData("alpha_pattern", "{\"v_proj\": -2}", "alpha_pattern gives 'v_proj' -2: it must be positive")]
    [InlineData("alpha_pattern", "{\"v_proj\": 0}", "alpha_pattern gives 'v_proj' 0: it must be positive")]
    [InlineData("alpha_pattern", "{\"v_proj\": null}", "alpha_pattern gives 'v_proj' null, not a number")]
    [InlineData("alpha_pattern", "\"v_proj\"", "alpha_pattern must be an object mapping module name patterns to an alpha, not \"v_proj\"")]
    public void BadValuesAreRefusedNamingTheField(string field, string value, string expected)
    {
        var json = new JsonObject { ["peft_type"] = "LORA", ["target_modules"] = new JsonArray("q_proj", "v_proj"), [field] = JsonNode.Parse(value) };
        if (field == "layers_pattern")
            json["layers_to_transform"] = new JsonArray(0);
        var config = PeftLoraConfig.FromJson(json.ToJsonString(), "bad");

        var problems = new List<string>();
        PeftModuleRules.Read(config, problems);

        Assert.Equal([expected], problems.Select(p => p[..Math.Min(p.Length, expected.Length)]));
    }

    [Fact]
    public void ARepeatedKeyKeepsItsFirstPlaceWithItsLastValueAsPythonsJsonDoes()
    {
        // {"q_proj": 2, "proj": 6, "q_proj": 3}: Python's dict is {"q_proj": 3, "proj": 6}, q_proj first.
        var config = PeftLoraConfig.FromJson(
            """{"peft_type": "LORA", "r": 8, "target_modules": ["q_proj", "k_proj"], "rank_pattern": {"q_proj": 2, "proj": 6, "q_proj": 3}}""", "repeated");
        var problems = new List<string>();
        var rules = PeftModuleRules.Read(config, problems);

        Assert.Empty(problems);
        Assert.Equal(["q_proj", "proj"], rules.RankKeys);
        Assert.Equal(3, rules.For("transformer.h.0.attn.q_proj").R);
        Assert.Equal(8, rules.For("transformer.h.0.attn.k_proj").R);  // "proj" needs a '.' before it: no match
    }

    [Fact]
    public void KeysThatDecideNothingAndLayersTheBaseLacksAreWarnedAbout()
    {
        var config = PeftLoraConfig.FromJson("""
            {"peft_type": "LORA", "target_modules": ["q_proj"], "layers_to_transform": [1, 7],
             "rank_pattern": {"q_proj": 2, "attn.q_proj": 4, "fc_in": 6}, "alpha_pattern": {"nothing": 3}}
            """, "unused");
        var target = GptJFamily.LoraTargets(GptJConfig.GptJ6B with { LayerCount = 2, HiddenSize = 64 });
        var problems = new List<string>();
        var warnings = new List<string>();
        var rules = PeftModuleRules.Read(config, problems);
        var selected = PeftAdapterChecks.ResolveTargets(config, target, rules, problems, warnings);
        var settled = PeftAdapterChecks.Settle(config, rules, selected, problems, warnings);

        Assert.Empty(problems);
        Assert.Equal(["transformer.h.1.attn.q_proj"], settled.Keys);
        Assert.Equal(2, settled["transformer.h.1.attn.q_proj"].R);
        Assert.Equal(
        [
            "layers_to_transform lists layers the gptj base does not have (it has 2: 0 to 1): 7; they adapt nothing",
            "rank_pattern keys that decide no adapted module (they match none, or an earlier key matches first), so they change nothing: 'attn.q_proj', 'fc_in'",
            "alpha_pattern keys that decide no adapted module (they match none, or an earlier key matches first), so they change nothing: 'nothing'",
        ], warnings);
    }

    private static JsonNode Golden() =>
        JsonNode.Parse(File.ReadAllText(Fixtures.Get("peft", "module-rules.json")))!;
}

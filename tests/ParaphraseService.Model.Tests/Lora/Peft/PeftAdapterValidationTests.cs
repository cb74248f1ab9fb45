using System.Text.Json.Nodes;
using ParaphraseService.Model.GptJ;
using ParaphraseService.Model.Lora.Peft;
using ParaphraseService.Model.Tests.Checkpoints;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Tests.Lora.Peft;

/// <summary>Every way an adapter folder can fail to fit the base model, each with the message a user would see.</summary>
public sealed class PeftAdapterValidationTests : IDisposable
{
    private const string Q0 = "transformer.h.0.attn.q_proj";
    private const string V1 = "transformer.h.1.attn.v_proj";

    private readonly TempFolder _temp = new();
    private int _copies;

    public void Dispose() => _temp.Dispose();

    // ---------------------------------------------------------------- base mismatch

    [Fact]
    public void AnAdapterForAnotherArchitectureIsRefused()
    {
        // A LLaMA adapter: its target names partly exist in GPT-J too, its module paths not at all.
        var folder = Copy("q-v");
        PeftFixtures.EditConfig(folder, c => c["target_modules"] = new JsonArray("q_proj", "v_proj", "o_proj"));
        PeftFixtures.EditTensors(folder, tensors =>
        {
            foreach (var key in tensors.Keys.ToList())
            {
                tensors.Remove(key, out var tensor);
                tensors[key.Replace("transformer.h.", "model.layers.").Replace(".attn.", ".self_attn.")] = tensor!;
            }
        });

        var error = Refused(folder,
            "none of the adapter's modules is an adaptable Linear layer of the gptj base (hidden size 64, 2 layers): " +
            "model.layers.0.self_attn.q_proj, model.layers.0.self_attn.v_proj",
            "the adapter was made for another architecture",
            "the file holds LoRA weights for none of the 4 modules the config selects: transformer.h.0.attn.q_proj, ");
        // o_proj matching nothing is no problem of its own while q_proj and v_proj match (as in PEFT)
        Assert.Equal(2, error.Problems.Count);
    }

    [Fact]
    public void AnAdapterForAnotherHiddenSizeIsRefused()
    {
        var wider = GptJFamily.LoraTargets(PeftFixtures.TinyConfig with { HiddenSize = 128 });

        var error = Refused(PeftFixtures.Folder("q-v"), wider,
            "shapes that do not fit the gptj base (hidden size 128): " +
            "base_model.model.transformer.h.0.attn.q_proj.lora_A.weight is [4, 64] but the layer takes 128 inputs, " +
            "base_model.model.transformer.h.0.attn.q_proj.lora_B.weight is [64, 4] but the layer has 128 outputs",
            "and 2 more; the adapter was made for a model of another size");
        Assert.Single(error.Problems);
    }

    [Fact]
    public void AnAdapterForADeeperModelIsRefused()
    {
        var shallower = GptJFamily.LoraTargets(PeftFixtures.TinyConfig with { LayerCount = 1 });

        var error = Refused(PeftFixtures.Folder("q-v"), shallower,
            "LoRA weights for layers beyond the base's 1 (0 to 0): transformer.h.1.attn.q_proj, transformer.h.1.attn.v_proj; " +
            "the adapter was made for a model with at least 2 layers");
        Assert.Single(error.Problems);
    }

    [Theory]
    // Past int the index wrapped: "at least -2147483648 layers".
    [InlineData("99999999999999999999", "at least 100000000000000000000 layers")]
    [InlineData("2147483647", "at least 2147483648 layers")]
    public void AnAdapterForAnAbsurdlyDeepModelSaysHowDeep(string layer, string expected)
    {
        var folder = Copy("q-v");
        PeftFixtures.EditTensors(folder, t =>
        {
            foreach (var key in t.Keys.Where(k => k.Contains(".h.1.", StringComparison.Ordinal)).ToList())
            {
                t.Remove(key, out var tensor);
                t[key.Replace(".h.1.", $".h.{layer}.", StringComparison.Ordinal)] = tensor!;
            }
        });

        var error = Refused(folder, expected);
        Assert.DoesNotContain("-", error.Problems.Single(p => p.Contains("at least", StringComparison.Ordinal)).Split("at least")[1]);
    }

    [Fact]
    public void WeightsForTheOutputLayerAreRefused()
    {
        var folder = Copy("q-v");
        PeftFixtures.EditTensors(folder, t =>
        {
            t[PeftFixtures.Key("lm_head", "lora_A")] = zeros(4, 64);
            t[PeftFixtures.Key("lm_head", "lora_B")] = zeros(128, 4);
        });

        Refused(folder, "LoRA weights for modules that are not adaptable Linear layers of the gptj base (hidden size 64, 2 layers): lm_head");
    }

    // ---------------------------------------------------------------- target_modules

    [Fact]
    public void TargetNamesMatchingNothingBesideOnesThatMatchAreAWarningAsInPeft()
    {
        // PEFT refuses a target list only when none of its names matches: lists copied from another architecture's
        // recipe (LLaMA's o_proj and MLP names, GPT-2's c_attn) load, adapting what matches.
        var folder = Copy("q-v");
        PeftFixtures.EditConfig(folder, c => c["target_modules"] = new JsonArray("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
            "down_proj", "c_attn", "lm_head"));

        using var adapter = PeftAdapterFiles.Load(folder, PeftFixtures.Target);

        var warning = Assert.Single(adapter.Warnings, w => w.StartsWith("target_modules", StringComparison.Ordinal));
        Assert.StartsWith("target_modules has names that match no adaptable Linear module of the gptj base: " +
            "'o_proj', 'gate_proj', 'up_proj', 'down_proj', 'c_attn', 'lm_head' (a name selects the modules whose path equals it or " +
            "ends with '.' + name, e.g. 'k_proj' or 'transformer.h.0.attn.k_proj'); they adapt nothing", warning);
        // what the file holds is applied as it would be with the list cut to what matches
        using var plain = PeftAdapterFiles.Load(PeftFixtures.Folder("q-v"), PeftFixtures.Target);
        Assert.Equal(plain.Modules.Keys.Order(), adapter.Modules.Keys.Order());
    }

    [Fact]
    public void ATargetListMatchingNothingIsRefused()
    {
        var folder = Copy("q-v");
        PeftFixtures.EditConfig(folder, c => c["target_modules"] = new JsonArray("query_key_value", "attn"));

        Refused(folder,
            "target_modules has names that match no adaptable Linear module of the gptj base: 'query_key_value', 'attn' " +
            "(a name selects the modules whose path equals it or ends with '.' + name, e.g. 'k_proj' or 'transformer.h.0.attn.k_proj')");
    }

    [Fact]
    public void ARegexMatchingNothingIsRefused()
    {
        var folder = Copy("regex-mlp");
        PeftFixtures.EditConfig(folder, c => c["target_modules"] = @"mlp\.fc_(in|out)");  // not a whole path

        Refused(folder,
            @"target_modules regex 'mlp\.fc_(in|out)' matches no adaptable Linear module of the gptj base (it must match a whole module path",
            "LoRA weights for modules target_modules does not select: transformer.h.0.mlp.fc_in");
    }

    [Fact]
    public void TargetingTheOutputLayerIsRefused()
    {
        // lm_head is a Linear of GPT-J, but not one this service adapts (see GptJFamily.LoraTargets): its weights are refused.
        var folder = Copy("q-v");
        PeftFixtures.EditConfig(folder, c => c["target_modules"] = new JsonArray("lm_head"));

        Refused(folder, "target_modules has names that match no adaptable Linear module of the gptj base: 'lm_head'");
    }

    [Fact]
    public void AnEmptyTargetListIsRefused()
    {
        var folder = Copy("q-v");
        PeftFixtures.EditConfig(folder, c => c["target_modules"] = new JsonArray());

        Refused(folder, "target_modules is an empty list: the adapter adapts nothing");
    }

    [Fact]
    public void ExcludingEverythingIsRefused()
    {
        var folder = Copy("q-v");
        PeftFixtures.EditConfig(folder, c => c["exclude_modules"] = ".*");

        Refused(folder, "exclude_modules excludes every module target_modules selects");
    }

    // ---------------------------------------------------------------- shapes

    [Fact]
    public void RankMismatchesAreRefused()
    {
        var folder = Copy("q-v");
        PeftFixtures.EditConfig(folder, c => c["r"] = 8);

        var error = Refused(folder,
            "shapes that do not match r = 8: base_model.model.transformer.h.0.attn.q_proj.lora_A.weight is [4, 64] (lora_A needs r rows), " +
            "base_model.model.transformer.h.0.attn.q_proj.lora_B.weight is [64, 4] (lora_B needs r columns)");
        Assert.Single(error.Problems);
    }

    [Fact]
    public void AAndBOfDifferentRanksAreRefused()
    {
        var folder = Copy("q-v");
        PeftFixtures.EditTensors(folder, t => PeftFixtures.Replace(t, PeftFixtures.Key(V1, "lora_B"), zeros(64, 3)));

        Refused(folder, "shapes that do not match r = 4: base_model.model.transformer.h.1.attn.v_proj.lora_B.weight is [64, 3] (lora_B needs r columns)");
    }

    [Fact]
    public void FactorsThatDoNotFitTheLayerAreRefused()
    {
        var folder = Copy("regex-mlp");
        PeftFixtures.EditTensors(folder, t =>
        {
            // fc_in's factors swapped with fc_out's shapes: right rank, wrong sides.
            PeftFixtures.Replace(t, PeftFixtures.Key("transformer.h.0.mlp.fc_in", "lora_A"), zeros(2, 256));
            PeftFixtures.Replace(t, PeftFixtures.Key("transformer.h.0.mlp.fc_in", "lora_B"), zeros(64, 2));
        });

        Refused(folder,
            "base_model.model.transformer.h.0.mlp.fc_in.lora_A.weight is [2, 256] but the layer takes 64 inputs",
            "base_model.model.transformer.h.0.mlp.fc_in.lora_B.weight is [64, 2] but the layer has 256 outputs");
    }

    [Fact]
    public void TensorsThatAreNotFloatMatricesAreRefused()
    {
        var folder = Copy("q-v");
        PeftFixtures.EditTensors(folder, t =>
        {
            PeftFixtures.Replace(t, PeftFixtures.Key(Q0, "lora_A"), zeros([4, 64], ScalarType.Int8));
            PeftFixtures.Replace(t, PeftFixtures.Key(V1, "lora_B"), zeros(64, 4, 1));
        });

        Refused(folder,
            "tensors that are not floating point: base_model.model.transformer.h.0.attn.q_proj.lora_A.weight (Int8)",
            "tensors that are not matrices: base_model.model.transformer.h.1.attn.v_proj.lora_B.weight [64, 4, 1]");
    }

    // ---------------------------------------------------------------- keys

    [Fact]
    public void AFactorWithoutItsPartnerIsRefused()
    {
        // A module with no factor at all is left unadapted (PeftPatternAdapterTests); one with a single factor is a
        // broken file: PEFT would pair it with a freshly initialised other half.
        var folder = Copy("q-v");
        PeftFixtures.EditTensors(folder, t =>
        {
            PeftFixtures.Remove(t, PeftFixtures.Key(V1, "lora_B"));
            PeftFixtures.Remove(t, PeftFixtures.Key(Q0, "lora_A"));
            PeftFixtures.Remove(t, PeftFixtures.Key(Q0, "lora_B"));
        });

        var error = Refused(folder,
            "modules stored with one LoRA factor but not the other; missing: base_model.model.transformer.h.1.attn.v_proj.lora_B.weight " +
            "(beside base_model.model.transformer.h.1.attn.v_proj.lora_A.weight)");
        Assert.Single(error.Problems);
    }

    [Theory]
    [InlineData("false")]
    [InlineData("\"orthogonal\"")]
    public void ModulesWithoutWeightsAreRefusedWhenPeftWouldInitialiseThemRandomly(string init)
    {
        var folder = Copy("q-v");
        PeftFixtures.EditConfig(folder, c => c["init_lora_weights"] = JsonNode.Parse(init));
        PeftFixtures.EditTensors(folder, t =>
        {
            PeftFixtures.Remove(t, PeftFixtures.Key(V1, "lora_A"));
            PeftFixtures.Remove(t, PeftFixtures.Key(V1, "lora_B"));
        });

        var error = Refused(folder,
            $"init_lora_weights is {init.Trim('"')}, and 1 of the 4 modules the config selects have no LoRA weights in the file " +
            "(layer 1: attn.v_proj): PEFT would run them with randomly initialised factors");
        Assert.Single(error.Problems);
    }

    [Theory]
    [InlineData("all")]
    [InlineData("lora_only")]
    public void TrainedBiasesAreRefusedWhereTheFileHoldsThemAndNothingElseIs(string bias)
    {
        // bias 'all' or 'lora_only' saves the trained base biases beside the factors; GPT-J's q_proj and v_proj have none,
        // so an adapter of them alone is exactly its factors, as PEFT loads it.
        var folder = Copy("q-v");
        PeftFixtures.EditConfig(folder, c => c["bias"] = bias);
        using (var adapter = PeftAdapterFiles.Load(folder, PeftFixtures.Target))
        {
            using var plain = PeftAdapterFiles.Load(PeftFixtures.Folder("q-v"), PeftFixtures.Target);
            Assert.Equal(plain.Modules.Keys, adapter.Modules.Keys);
            foreach (var (name, weights) in plain.Modules)
                Assert.True(weights.B.eq(adapter.Modules[name].B).all().item<bool>(), name);
        }

        PeftFixtures.EditTensors(folder, t => t["base_model.model.transformer.h.0.mlp.fc_in.bias"] = zeros(256));
        Refused(folder, "base_model.model.transformer.h.0.mlp.fc_in.bias (a trained base bias (bias 'all' or 'lora_only'))");
    }

    [Fact]
    public void ExtraTensorsAreRefusedWithWhatTheyProbablyAre()
    {
        var folder = Copy("q-v");
        PeftFixtures.EditTensors(folder, t =>
        {
            t["base_model.model.transformer.wte.lora_embedding_A"] = zeros(4, 128);
            t["base_model.model.transformer.h.0.mlp.fc_in.bias"] = zeros(256);
            t["base_model.model.transformer.h.0.attn.q_proj.lora_magnitude_vector"] = zeros(64);
            t["base_model.model.transformer.h.0.attn.q_proj.lora_B.bias"] = zeros(64);
            t["base_model.model.lm_head.modules_to_save.default.weight"] = zeros(128, 64);
            t["something.else"] = zeros(1);
            t[PeftFixtures.Key("transformer.h.0.attn.k_proj", "lora_A")] = zeros(4, 64);
            t[PeftFixtures.Key("transformer.h.0.attn.k_proj", "lora_B")] = zeros(64, 4);
        });

        var error = Refused(folder,
            "unexpected tensors that are not lora_A/lora_B weights: ",
            "base_model.model.transformer.wte.lora_embedding_A (LoRA on an embedding layer)",
            "base_model.model.transformer.h.0.mlp.fc_in.bias (a trained base bias (bias 'all' or 'lora_only'))",
            "base_model.model.transformer.h.0.attn.q_proj.lora_magnitude_vector (a DoRA magnitude vector)",
            "base_model.model.transformer.h.0.attn.q_proj.lora_B.bias (a lora_B bias (lora_bias))",
            "base_model.model.lm_head.modules_to_save.default.weight (a modules_to_save copy of a base module)",
            "something.else",
            "LoRA weights for modules target_modules does not select: transformer.h.0.attn.k_proj");
        Assert.Equal(2, error.Problems.Count);
    }

    [Fact]
    public void WholeLayersPeftSavesBesideTheFactorsAreNamed()
    {
        // A fine-tune that resized the vocabulary: PEFT's get_peft_model_state_dict saves the embedding layers whole,
        // with nothing in the config to say so; PEFT 0.15 and later save modules_to_save copies under the layer's own key.
        var folder = Copy("q-v");
        PeftFixtures.EditTensors(folder, t =>
        {
            t["base_model.model.transformer.wte.weight"] = zeros(130, 64);
            t["base_model.model.lm_head.weight"] = zeros(130, 64);
            t["base_model.model.transformer.wte.token_adapter.trainable_tokens_delta"] = zeros(2, 64);
        });

        var error = Refused(folder,
            "unexpected tensors that are not lora_A/lora_B weights: ",
            "base_model.model.transformer.wte.weight (a whole base layer: PEFT saves the embedding layers when the vocabulary " +
            "was resized, and modules_to_save copies)",
            "base_model.model.lm_head.weight (a whole base layer",
            "base_model.model.transformer.wte.token_adapter.trainable_tokens_delta (trainable token embeddings (trainable_token_indices))");
        Assert.Single(error.Problems);
    }

    [Fact]
    public void AFactorStoredTwiceIsRefused()
    {
        var folder = Copy("q-v");
        PeftFixtures.EditTensors(folder, t => t[$"base_model.model.{Q0}.lora_A.default.weight"] = zeros(4, 64));

        Refused(folder, $"{Q0}: lora_A is stored twice, as base_model.model.{Q0}.lora_A.default.weight and base_model.model.{Q0}.lora_A.weight");
    }

    // ---------------------------------------------------------------- config features

    public static TheoryData<string, string, string> UnsupportedFeatures => new()
    {
        { "use_dora", "true", "use_dora is true: DoRA adapters (a magnitude vector per module) are not supported, only plain LoRA" },
        { "modules_to_save", "[\"lm_head\"]", "modules_to_save is [lm_head]: adapters that carry fully trained copies of base modules are not supported" },
        { "bias", "\"some\"", "bias is 'some', which PEFT does not define (\"none\", \"all\" or \"lora_only\")" },
        { "lora_bias", "true", "lora_bias is true: a bias on lora_B is not supported" },
        { "use_qalora", "true", "use_qalora is true: QA-LoRA (pooled inputs) is not supported" },
        { "alora_invocation_tokens", "[42]", "alora_invocation_tokens is [42]: Activated LoRA is not supported" },
        { "target_parameters", "[\"mlp.experts.down_proj\"]", "target_parameters is [\"mlp.experts.down_proj\"]: LoRA on parameters is not supported" },
        { "use_bdlora", "{\"nblocks\": 2}", "use_bdlora is {\"nblocks\":2}: block-diagonal LoRA is not supported" },
        { "peft_type", "\"IA3\"", "peft_type is 'IA3': only LoRA adapters (\"LORA\") are supported" },
        { "task_type", "\"SEQ_CLS\"", "task_type is 'SEQ_CLS': only causal language model adapters (\"CAUSAL_LM\", or none) fit text generation" },
        { "r", "0", "r is 0: the rank must be between 1 and 256" },
        { "r", "257", "r is 257: the rank must be between 1 and 256" },
        { "lora_alpha", "0", "lora_alpha is 0: it must be positive" },
        { "lora_dropout", "1.5", "lora_dropout is 1.5: it must be between 0 and 1" },
        { "init_lora_weights", "\"pissa\"", "init_lora_weights is 'pissa': that initialisation changes the base model's weights, so the adapter only works on that changed base; convert it to a plain LoRA first" },
        { "init_lora_weights", "\"pissa_niter_16\"", "init_lora_weights is 'pissa_niter_16': that initialisation changes the base model's weights" },
        { "init_lora_weights", "\"olora\"", "init_lora_weights is 'olora': that initialisation changes the base model's weights" },
        { "init_lora_weights", "\"corda\"", "init_lora_weights is 'corda': that initialisation changes the base model's weights" },
        { "init_lora_weights", "\"lora_ga\"", "init_lora_weights is 'lora_ga': that initialisation changes the base model's weights" },
        { "init_lora_weights", "\"loftq\"", "init_lora_weights is 'loftq': LoftQ replaces the base model's weights by their quantized approximation, so the adapter only works on that changed base" },
        { "init_lora_weights", "\"xavier\"", "init_lora_weights is 'xavier', which PEFT does not define" },
    };

    [Theory]
    [MemberData(nameof(UnsupportedFeatures))]
    public void UnsupportedFeaturesAreNamed(string field, string json, string expected)
    {
        var folder = Copy("q-v");
        PeftFixtures.EditConfig(folder, c => c[field] = JsonNode.Parse(json));

        var error = Refused(folder, expected);
        // r outside the range also makes every shape disagree with it; everything else is the one problem.
        Assert.Equal(field == "r" ? 2 : 1, error.Problems.Count);
    }

    [Fact]
    public void AMissingPeftTypeIsRefused()
    {
        var folder = Copy("q-v");
        PeftFixtures.EditConfig(folder, c => c.Remove("peft_type"));

        Refused(folder, "peft_type is missing (PEFT writes \"LORA\")");
    }

    [Fact]
    public void UnsetOptionsAreNotProblems()
    {
        var folder = Copy("q-v");
        PeftFixtures.EditConfig(folder, c =>
        {
            c["modules_to_save"] = new JsonArray();
            c["layers_to_transform"] = new JsonArray();
            c["layers_pattern"] = "";
            c["lora_bias"] = false;
            c["use_bdlora"] = null;
        });

        using var adapter = PeftAdapterFiles.Load(folder, PeftFixtures.Target);
        Assert.Equal(4, adapter.Modules.Count);
    }

    // ---------------------------------------------------------------- files

    [Fact]
    public void AMissingFolderIsRefused()
    {
        var folder = _temp.File("nowhere");
        var error = Assert.Throws<AdapterValidationException>(() => PeftAdapterFiles.Load(folder, PeftFixtures.Target));
        Assert.Equal($"{folder}: adapter folder does not exist", error.Message);
    }

    [Fact]
    public void AFolderWithoutPeftFilesIsRefused()
    {
        var folder = _temp.File("not-an-adapter");
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "config.json"), "{}");

        var error = Refused(folder,
            "adapter_config.json is missing: this is not a PEFT adapter folder (it holds config.json)",
            "no weights: neither adapter_model.safetensors nor adapter_model.bin is in the folder (it holds config.json)");
        Assert.Equal(2, error.Problems.Count);
    }

    [Theory]
    [InlineData("{\"peft_type\": \"LORA\", \"r\": ", "adapter_config.json: not valid JSON")]
    [InlineData("\"LORA\"", "adapter_config.json: not a JSON object but a String")]
    [InlineData("{\"peft_type\": \"LORA\", \"r\": \"4\"}", "adapter_config.json: r must be an integer, not \"4\"")]
    public void AnInvalidConfigIsRefused(string json, string expected)
    {
        var folder = Copy("q-v");
        File.WriteAllText(Path.Combine(folder, "adapter_config.json"), json);

        var error = Refused(folder, expected);
        Assert.Single(error.Problems);  // the weights are not judged against a config that could not be read
    }

    [Fact]
    public void AHugeConfigIsNotRead()
    {
        var folder = Copy("q-v");
        using (var file = File.OpenWrite(Path.Combine(folder, "adapter_config.json")))
        {
            file.SetLength(17 << 20);
        }

        Refused(folder, "adapter_config.json: is 17825792 bytes, too large for this small JSON file");
    }

    [Fact]
    public void ATruncatedSafetensorsFileIsRefused()
    {
        var folder = Copy("q-v");
        var path = Path.Combine(folder, "adapter_model.safetensors");
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..^100]);

        Refused(folder, "adapter_model.safetensors is corrupt: file is truncated");
    }

    [Fact]
    public void AGarbageWeightsFileIsRefused()
    {
        var folder = Copy("q-v");
        File.WriteAllText(Path.Combine(folder, "adapter_model.safetensors"), "this is not a safetensors file at all");

        Refused(folder, "adapter_model.safetensors is corrupt: header length");
    }

    [Fact]
    public void ACorruptBinIsRefused()
    {
        var folder = Copy("q-v-bin");
        var path = Path.Combine(folder, "adapter_model.bin");
        File.WriteAllBytes(path, File.ReadAllBytes(path)[..2000]);

        Refused(folder, "adapter_model.bin is corrupt: ");
    }

    [Fact]
    public void NonFiniteValuesAreRefused()
    {
        var folder = Copy("q-v");
        PeftFixtures.EditTensors(folder, t =>
        {
            t[PeftFixtures.Key(Q0, "lora_B")][3, 1] = float.NaN;
            t[PeftFixtures.Key(V1, "lora_A")][0, 0] = float.PositiveInfinity;
        });

        Refused(folder,
            "tensors holding NaN or infinite values: base_model.model.transformer.h.0.attn.q_proj.lora_B.weight, " +
            "base_model.model.transformer.h.1.attn.v_proj.lora_A.weight");
    }

    [Fact]
    public void UpdatesThatOverflowFloatAreRefusedAndLargeFiniteOnesLoad()
    {
        // Finite numbers whose update scaling · B · A overflows float32 on any input: every request using the adapter
        // would fail with NaN logits. An alpha of 1e308, or weights near float's largest value.
        var alpha = Copy("q-v");
        PeftFixtures.EditConfig(alpha, c => c["lora_alpha"] = 1e308);
        Refused(alpha, "updates whose entries could exceed 1E+30", "transformer.h.0.attn.q_proj (up to ");

        var weights = Copy("q-v");
        PeftFixtures.EditTensors(weights, t =>
        {
            t[PeftFixtures.Key(V1, "lora_A")][0, 0] = 3e38f;
            t[PeftFixtures.Key(V1, "lora_B")][2, 0] = 1e10f;
        });
        var error = Refused(weights, "transformer.h.1.attn.v_proj (up to ");
        Assert.DoesNotContain("h.0.attn.q_proj", error.Message, StringComparison.Ordinal);

        // Large but usable: an alpha of 1e6 on these weights stays far below the limit.
        var large = Copy("q-v");
        PeftFixtures.EditConfig(large, c => c["lora_alpha"] = 1e6);
        using var adapter = PeftAdapterFiles.Load(large, PeftFixtures.Target);
        Assert.NotEmpty(adapter.Modules);
    }

    [Fact]
    public void AnInvalidMetadataFileIsRefused()
    {
        var folder = Copy("q-v");
        File.WriteAllText(Path.Combine(folder, AdapterMetadata.FileName), """{"origin": "elsewhere", "created": "yesterday"}""");

        var error = Refused(folder,
            "paraphrase_adapter.json: origin is 'elsewhere', not \"upload\" or \"fine-tune\"",
            "paraphrase_adapter.json: created must be an ISO 8601 time with a zone");
        Assert.Equal(2, error.Problems.Count);
    }

    [Fact]
    public void EveryProblemIsReportedInOneMessage()
    {
        var folder = Copy("q-v");
        PeftFixtures.EditConfig(folder, c =>
        {
            c["use_dora"] = true;
            c["task_type"] = "SEQ_2_SEQ_LM";
            c["lora_dropout"] = 2;
        });
        PeftFixtures.EditTensors(folder, t => PeftFixtures.Remove(t, PeftFixtures.Key(V1, "lora_A")));

        var error = Refused(folder, "task_type is 'SEQ_2_SEQ_LM'", "use_dora is true", "lora_dropout is 2", "one LoRA factor but not the other");
        Assert.Equal(4, error.Problems.Count);
        Assert.StartsWith($"{folder}: 4 problems: (1) ", error.Message);
    }

    private string Copy(string fixture) => PeftFixtures.Copy(fixture, _temp.File($"{fixture}-{_copies++}"));

    private static AdapterValidationException Refused(string folder, params string[] expected) =>
        Refused(folder, PeftFixtures.Target, expected);

    /// <summary>Loading fails with a message that names the folder and contains every expected piece.</summary>
    private static AdapterValidationException Refused(string folder, AdapterTarget target, params string[] expected)
    {
        var error = Assert.Throws<AdapterValidationException>(() => PeftAdapterFiles.Load(folder, target).Dispose());
        Assert.Equal(folder, error.Path);
        Assert.StartsWith(folder + ": ", error.Message);
        foreach (var piece in expected)
        {
            Assert.True(error.Message.Contains(piece, StringComparison.Ordinal), $"Expected <{piece}> in <{error.Message}>");
        }
        return error;
    }
}

using System.Text.Json.Nodes;
using ParaphraseService.Model.Core;
using ParaphraseService.Model.Loading;
using ParaphraseService.Model.Lora;
using ParaphraseService.Model.Lora.Peft;
using ParaphraseService.Model.Tests.Lora.Peft;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Tests.Lora;

/// <summary>
/// PEFT adapters that adapt only some layers or give modules their own rank and alpha (tests/fixtures/peft, made by
/// make_peft_pattern_fixtures.py in PEFT's file layout), on the tiny GPT-J: the adapted model must compute the base plus,
/// for exactly the modules PEFT adapts, scaling · B · A with each module's own scaling, written out here by hand.
/// </summary>
public sealed class PeftPatternAdapterTests : IDisposable
{
    private static readonly string Base = Fixtures.Get("gptj-tiny", "safetensors");
    private static readonly long[] Ids = [1, 2, 3, 5, 8, 13, 21, 34];

    private readonly string _root = Directory.CreateTempSubdirectory("lora-patterns-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    /// <summary>Per fixture: every adapted module with (r, scaling), as PEFT computes them from the config.</summary>
    public static readonly Dictionary<string, Dictionary<string, (int R, double Scaling)>> Expected = new()
    {
        // r 4, alpha 8: scaling 2; layer 1's q_proj and v_proj are selected but have no weights (unadapted).
        ["partial-layers"] = new()
        {
            ["transformer.h.0.attn.q_proj"] = (4, 2.0), ["transformer.h.0.attn.v_proj"] = (4, 2.0),
        },
        // layers_to_transform [1] with layers_pattern "h".
        ["layers-to-transform"] = new()
        {
            ["transformer.h.1.attn.q_proj"] = (4, 2.0), ["transformer.h.1.attn.v_proj"] = (4, 2.0), ["transformer.h.1.mlp.fc_in"] = (4, 2.0),
        },
        // rank_pattern {"q_proj": 8, "h.1.attn.v_proj": 2}, alpha 8: 8/8, 8/4, 8/2.
        ["rank-pattern"] = new()
        {
            ["transformer.h.0.attn.q_proj"] = (8, 1.0), ["transformer.h.1.attn.q_proj"] = (8, 1.0),
            ["transformer.h.0.attn.v_proj"] = (4, 2.0), ["transformer.h.1.attn.v_proj"] = (2, 4.0),
            ["transformer.h.0.mlp.fc_out"] = (4, 2.0), ["transformer.h.1.mlp.fc_out"] = (4, 2.0),
        },
        // alpha_pattern {"v_proj": 32, "^transformer.h.1.attn.q_proj": 2}, r 4: 32/4, 2/4, 8/4.
        ["alpha-pattern"] = new()
        {
            ["transformer.h.0.attn.q_proj"] = (4, 2.0), ["transformer.h.1.attn.q_proj"] = (4, 0.5),
            ["transformer.h.0.attn.v_proj"] = (4, 8.0), ["transformer.h.1.attn.v_proj"] = (4, 8.0),
        },
        // rsLoRA, alpha 16, r 4: alpha / sqrt(r). rank_pattern mlp r 16, k_proj r 1; alpha_pattern layer 0's v_proj 4.
        ["rslora-patterns"] = Enumerable.Range(0, 2).SelectMany(layer => new (string, (int, double))[]
        {
            ($"transformer.h.{layer}.attn.q_proj", (4, 8.0)), ($"transformer.h.{layer}.attn.k_proj", (1, 16.0)),
            ($"transformer.h.{layer}.attn.v_proj", (4, layer == 0 ? 2.0 : 8.0)), ($"transformer.h.{layer}.attn.out_proj", (4, 8.0)),
            ($"transformer.h.{layer}.mlp.fc_in", (16, 4.0)), ($"transformer.h.{layer}.mlp.fc_out", (16, 4.0)),
        }).ToDictionary(p => p.Item1, p => p.Item2),
    };

    public static TheoryData<string> Fixtures_ => new(Expected.Keys);

    [Theory]
    [MemberData(nameof(Fixtures_))]
    public void LoadsEachModuleWithTheRankAndScalingPeftGivesIt(string fixture)
    {
        using var adapter = PeftAdapterFiles.Load(PeftFixtures.Folder(fixture), PeftFixtures.Target);

        Assert.Equal(Expected[fixture].Keys.Order(StringComparer.Ordinal), adapter.Modules.Keys);
        foreach (var (module, (r, scaling)) in Expected[fixture])
        {
            Assert.Equal(r, adapter.ModuleSettings[module].R);
            Assert.Equal(scaling, adapter.ModuleSettings[module].Scaling, 12);
            var (a, b) = PeftFixtures.Expected(module, r);
            using (a)
            using (b)
            {
                Assert.True(adapter.Modules[module].A.Equals(a), $"{module} lora_A");
                Assert.True(adapter.Modules[module].B.Equals(b), $"{module} lora_B");
            }
        }
        if (fixture != "partial-layers")
            Assert.Empty(adapter.Warnings);
    }

    [Theory]
    [InlineData("rank-pattern")]
    [InlineData("partial-layers")]
    [InlineData("layers-to-transform")]
    public void SavingKeepsThePatternsAndEachModulesRank(string fixture)
    {
        using var loaded = PeftAdapterFiles.Load(PeftFixtures.Folder(fixture), PeftFixtures.Target);
        var folder = Path.Combine(_root, "saved-" + fixture);

        PeftAdapterFiles.Save(folder, loaded);
        using var again = PeftAdapterFiles.Load(folder, PeftFixtures.Target);

        Assert.Equal(loaded.Config, again.Config);
        Assert.Equal(loaded.ModuleSettings, again.ModuleSettings);
        Assert.Equal(loaded.Warnings, again.Warnings);
        Assert.All(loaded.Modules, m => Assert.True(m.Value.A.Equals(again.Modules[m.Key].A) && m.Value.B.Equals(again.Modules[m.Key].B)));
    }

    [Fact]
    public void SelectedModulesWithoutWeightsAreLeftUnadaptedWithAWarningNamingThem()
    {
        using var adapter = PeftAdapterFiles.Load(PeftFixtures.Folder("partial-layers"), PeftFixtures.Target);

        Assert.Equal(
            ["2 of the 4 modules the config selects have no LoRA weights in the file and are left unadapted, as PEFT leaves them " +
             "(it warns of missing adapter keys): layer 1: every selected module (attn.q_proj, attn.v_proj)"], adapter.Warnings);
    }

    [Fact]
    public void MissingModulesAcrossLayersAreListedLayerByLayer()
    {
        var folder = PeftFixtures.Copy("q-v", Path.Combine(_root, "gaps"));
        PeftFixtures.EditConfig(folder, c => c["target_modules"] = new JsonArray("q_proj", "v_proj", "fc_in"));

        using var adapter = PeftAdapterFiles.Load(folder, PeftFixtures.Target);

        Assert.Equal(4, adapter.Modules.Count);
        Assert.Equal(
            ["2 of the 6 modules the config selects have no LoRA weights in the file and are left unadapted, as PEFT leaves them " +
             "(it warns of missing adapter keys): layer 0: mlp.fc_in; layer 1: mlp.fc_in"], adapter.Warnings);
    }

    [Fact]
    public void AnAdapterWithNoWeightForAnySelectedModuleIsRefused()
    {
        var folder = PeftFixtures.Copy("layers-to-transform", Path.Combine(_root, "other-layer"));
        PeftFixtures.EditConfig(folder, c => c["target_modules"] = new JsonArray("k_proj", "out_proj"));

        var error = Assert.Throws<AdapterValidationException>(() => PeftAdapterFiles.Load(folder, PeftFixtures.Target));

        Assert.Contains("the file holds LoRA weights for none of the 2 modules the config selects: " +
            "transformer.h.1.attn.k_proj, transformer.h.1.attn.out_proj", error.Message);
    }

    [Fact]
    public void WeightsOutsideTheTransformedLayersAreRefused()
    {
        // The config adapts layer 1 only; weights for layer 0 mean the file and its config disagree.
        var folder = PeftFixtures.Copy("layers-to-transform", Path.Combine(_root, "disagree"));
        PeftFixtures.EditConfig(folder, c => c["layers_to_transform"] = 0);

        var error = Assert.Throws<AdapterValidationException>(() => PeftAdapterFiles.Load(folder, PeftFixtures.Target));

        Assert.Contains("the file holds LoRA weights for none of the 3 modules the config selects", error.Message);
        Assert.Contains("LoRA weights for modules target_modules does not select: transformer.h.1.attn.q_proj", error.Message);
    }

    [Fact]
    public void ARankPatternTheWeightsDoNotFollowIsRefusedNamingTheKey()
    {
        var folder = PeftFixtures.Copy("rank-pattern", Path.Combine(_root, "wrong-rank"));
        PeftFixtures.EditConfig(folder, c => c["rank_pattern"] = new JsonObject { ["q_proj"] = 8, ["v_proj"] = 2 });

        var error = Assert.Throws<AdapterValidationException>(() => PeftAdapterFiles.Load(folder, PeftFixtures.Target));

        Assert.Contains("shapes that do not match the modules' ranks (r = 4, or rank_pattern's): " +
            "base_model.model.transformer.h.0.attn.v_proj.lora_A.weight is [4, 64] (lora_A needs 2 rows, rank_pattern 'v_proj')", error.Message);
    }

    // ---------------------------------------------------------------- pattern keys read by PEFT before 0.15

    [Fact]
    public void AnAlphaPatternKeyEarlierPeftReadOtherwiseIsRefusedWithoutPeftVersion()
    {
        // alpha_pattern {"^transformer.h.1.attn.q_proj": 2, "v_proj": 32}, r 4, lora_alpha 8. PEFT 0.15 and later,
        // re.match(rf"(.*\.)?({key})$", path): h.1's q_proj alpha 2 (scaling 0.5). Before, re.match(rf".*\.{key}$", path)
        // never matches a key anchored at the path's start: alpha 8 (scaling 2), the delta it was trained with if an
        // earlier PEFT trained it. A config without peft_version (written before PEFT 0.18) cannot say which.
        var folder = PeftFixtures.Copy("alpha-pattern", Path.Combine(_root, "no-version"));
        PeftFixtures.EditConfig(folder, c => c.Remove("peft_version"));

        var error = Assert.Throws<AdapterValidationException>(() => PeftAdapterFiles.Load(folder, PeftFixtures.Target));

        var problem = Assert.Single(error.Problems);
        Assert.StartsWith("rank_pattern / alpha_pattern give modules another lora_alpha depending on the PEFT that reads them", problem);
        Assert.Contains("no peft_version says which PEFT trained the adapter: " +
            "transformer.h.1.attn.q_proj (alpha 2 in PEFT 0.15 and later, 8 in PEFT 0.6 to 0.13, 8 in PEFT 0.14); " +
            "add \"peft_version\"", problem);
        Assert.StartsWith(folder, error.Message);
    }

    [Fact]
    public void OneKeyGivingRankAndAlphaBeforePeft014IsRefusedWhereTheReadingsDiffer()
    {
        // rank_pattern {"h.1.attn.v_proj": 2, "q_proj": 8} and alpha_pattern {"v_proj": 16}. PEFT 0.6 to 0.13 took the first
        // key of either pattern that matches and looked both values up under it: h.1's v_proj matches "h.1.attn.v_proj"
        // first, which alpha_pattern lacks, so alpha 8; PEFT 0.14 and later give it alpha 16. h.0's v_proj: "v_proj" in
        // every version.
        var folder = PeftFixtures.Copy("rank-pattern", Path.Combine(_root, "chained"));
        PeftFixtures.EditConfig(folder, c =>
        {
            c.Remove("peft_version");
            c["alpha_pattern"] = new JsonObject { ["v_proj"] = 16 };
        });

        var error = Assert.Throws<AdapterValidationException>(() => PeftAdapterFiles.Load(folder, PeftFixtures.Target));

        var problem = Assert.Single(error.Problems);
        Assert.EndsWith("which PEFT trained the adapter: transformer.h.1.attn.v_proj (alpha 16 in PEFT 0.15 and later, 8 in PEFT 0.6 to 0.13); " +
            "add \"peft_version\" (e.g. \"0.15.0\") to adapter_config.json if a PEFT of 0.15 or later trained it, " +
            "or rewrite the keys so that every version reads them alike", problem);

        // Said to be 0.15 or later, it loads with PEFT's present reading.
        PeftFixtures.EditConfig(folder, c => c["peft_version"] = "0.15.2");
        using var adapter = PeftAdapterFiles.Load(folder, PeftFixtures.Target);
        Assert.Equal(new LoraModuleSettings(2, 16, 8.0), adapter.ModuleSettings["transformer.h.1.attn.v_proj"]);
        Assert.Equal(new LoraModuleSettings(4, 16, 4.0), adapter.ModuleSettings["transformer.h.0.attn.v_proj"]);
    }

    [Fact]
    public void ShapesThatOnlyPeft015CouldHaveWrittenSettleTheReading()
    {
        // Before 0.15 "^transformer.h.1.attn.v_proj" matched nothing: h.1's v_proj would be r 4, but its tensors are r 2,
        // so PEFT 0.15 or later wrote them and its alpha 4 (scaling 2) applies.
        var folder = PeftFixtures.Copy("rank-pattern", Path.Combine(_root, "shapes-decide"));
        PeftFixtures.EditConfig(folder, c =>
        {
            c.Remove("peft_version");
            c["rank_pattern"] = new JsonObject { ["^transformer.h.1.attn.v_proj"] = 2, ["q_proj"] = 8 };
            c["alpha_pattern"] = new JsonObject { ["^transformer.h.1.attn.v_proj"] = 4 };
        });

        using var adapter = PeftAdapterFiles.Load(folder, PeftFixtures.Target);

        Assert.Equal(new LoraModuleSettings(2, 4, 2.0), adapter.ModuleSettings["transformer.h.1.attn.v_proj"]);
        Assert.Equal(new LoraModuleSettings(4, 8, 2.0), adapter.ModuleSettings["transformer.h.0.attn.v_proj"]);
    }

    [Theory]
    [InlineData("rank-pattern")]
    [InlineData("rslora-patterns")]
    public void PatternsEveryPeftReadsAlikeLoadWithoutPeftVersion(string fixture)
    {
        var folder = PeftFixtures.Copy(fixture, Path.Combine(_root, "unversioned-" + fixture));
        PeftFixtures.EditConfig(folder, c => c.Remove("peft_version"));

        using var adapter = PeftAdapterFiles.Load(folder, PeftFixtures.Target);

        Assert.Equal(Expected[fixture].ToDictionary(p => p.Key, p => p.Value.R), adapter.ModuleSettings.ToDictionary(p => p.Key, p => p.Value.R));
        Assert.All(Expected[fixture], p => Assert.Equal(p.Value.Scaling, adapter.ModuleSettings[p.Key].Scaling, 12));
    }

    [Theory]
    [MemberData(nameof(Fixtures_))]
    public void TheAdaptedModelComputesTheBasePlusEachModulesOwnDelta(string fixture)
    {
        using var model = ModelLoader.LoadFolder(Base, new ModelLoadOptions { Device = "cpu", MaxResidentAdapters = 1 });
        var (adapter, _, warnings) = model.Adapters!.LoadFolder(PeftFixtures.Folder(fixture));
        Assert.Equal(fixture == "partial-layers" ? 1 : 0, warnings.Count);
        Assert.Equal(4, adapter.Rank);
        Assert.Equal(Expected[fixture].Count, adapter.Modules.Count);

        using var plain = ModelLoader.LoadFolder(Base, new ModelLoadOptions { Device = "cpu" });
        AddDeltasByHand(plain, fixture);

        using var ids = tensor(Ids).unsqueeze(0);
        using var noGrad = no_grad();
        using var expected = plain.Model.forward(new CausalLMInput(ids));
        using var actual = model.Model.forward(new CausalLMInput(ids, Adapters: [adapter]));
        using var baseOnly = model.Model.forward(new CausalLMInput(ids));
        Assert.True(actual.allclose(expected, rtol: 0, atol: 1e-5), $"max |Δ| {(actual - expected).abs().max().item<float>()}");
        Assert.False(actual.allclose(baseOnly, rtol: 0, atol: 1e-3)); // the adapter does something
    }

    [Theory]
    [InlineData("rank-pattern")]
    [InlineData("partial-layers")]
    [InlineData("rslora-patterns")]
    public void MergingBakesEachModuleWithItsOwnRankAndScaling(string fixture)
    {
        using var model = ModelLoader.LoadFolder(Base, new ModelLoadOptions { Device = "cpu", MaxResidentAdapters = 1 });
        var (adapter, _, _) = model.Adapters!.LoadFolder(PeftFixtures.Folder(fixture));
        var output = Path.Combine(_root, fixture);

        AdapterMerge.Export(Base, adapter, output);

        using var merged = ModelLoader.LoadFolder(output, new ModelLoadOptions { Device = "cpu" });
        using var ids = tensor(Ids).unsqueeze(0);
        using var noGrad = no_grad();
        using var expected = model.Model.forward(new CausalLMInput(ids, Adapters: [adapter]));
        using var actual = merged.Model.forward(new CausalLMInput(ids));
        Assert.True(actual.allclose(expected, rtol: 0, atol: 1e-5), $"max |Δ| {(actual - expected).abs().max().item<float>()}");
        var note = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "config.json")))!["merged_lora_adapter"]!;
        Assert.Equal(4, note["rank"]!.GetValue<int>());
        if (fixture == "partial-layers")
        {
            Assert.Null(note["modules"]);  // every module it has is at r 4, scaling 2
        }
        else
        {
            Assert.Equal(Expected[fixture].Count, note["modules"]!.AsObject().Count);
            var first = Expected[fixture].First();
            Assert.Equal(first.Value.R, note["modules"]![first.Key]!["rank"]!.GetValue<int>());
            Assert.Equal(first.Value.Scaling, note["modules"]![first.Key]!["scaling"]!.GetValue<double>(), 12);
        }
    }

    [Fact]
    public void MixedBatchRowsEqualEachRowAloneWhateverTheRanksAndCoverage()
    {
        // Adapters of different ranks per module, one that leaves layer 1 alone, one on other layers entirely, and a
        // row without adapter, in one batch: each row must be what it is alone.
        using var model = ModelLoader.LoadFolder(Base, new ModelLoadOptions { Device = "cpu", MaxResidentAdapters = 4 });
        var registry = model.Adapters!;
        var rank = registry.LoadFolder(PeftFixtures.Folder("rank-pattern")).Adapter;
        var partial = registry.LoadFolder(PeftFixtures.Folder("partial-layers")).Adapter;
        var layer1 = registry.LoadFolder(PeftFixtures.Folder("layers-to-transform")).Adapter;
        var rslora = registry.LoadFolder(PeftFixtures.Folder("rslora-patterns")).Adapter;
        LoraAdapter?[] rows = [rank, null, partial, layer1, rslora, partial, rank];

        var ids = new long[rows.Length, Ids.Length];
        for (var r = 0; r < rows.Length; r++)
            for (var t = 0; t < Ids.Length; t++)
                ids[r, t] = Ids[(t + r) % Ids.Length];
        using var noGrad = no_grad();
        using var batch = model.Model.forward(new CausalLMInput(tensor(ids), Adapters: rows));
        for (var r = 0; r < rows.Length; r++)
        {
            using var row = tensor(Enumerable.Range(0, Ids.Length).Select(t => ids[r, t]).ToArray()).unsqueeze(0);
            using var alone = model.Model.forward(new CausalLMInput(row, Adapters: rows[r] is null ? null : [rows[r]]));
            Assert.True(alone[0].allclose(batch[r], rtol: 0, atol: 1e-5), $"row {r} ({rows[r]?.Name ?? "base"}): max |Δ| {(alone[0] - batch[r]).abs().max().item<float>()}");
        }
    }

    /// <summary>W += scaling · B · A for every module of <see cref="Expected"/>, from the fixture formula, not the file.</summary>
    private static void AddDeltasByHand(LoadedModel plain, string fixture)
    {
        var parameters = plain.Model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        using var noGrad = no_grad();
        foreach (var (module, (r, scaling)) in Expected[fixture])
        {
            var (a, b) = PeftFixtures.Expected(module, r);
            using (a)
            using (b)
            using (var delta = b.matmul(a).mul(scaling))
                parameters[module + ".weight"].add_(delta);
        }
    }
}

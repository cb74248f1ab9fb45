using ParaphraseService.Model.Core;
using ParaphraseService.Model.Families;
using ParaphraseService.Model.Generation;
using ParaphraseService.Model.Layers;
using ParaphraseService.Model.Loading;
using ParaphraseService.Model.Lora;
using ParaphraseService.Model.Lora.Peft;
using ParaphraseService.Model.Tests.Families;
using ParaphraseService.Model.Tokenization;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Tests.Generation;

/// <summary>
/// Prompt-lookup speculation changes how many forward passes a sequence takes, never what it generates: every test
/// compares a run with speculation against the same run without it, token for token, and checks that drafts were
/// actually accepted (so the speculative path was exercised, not skipped).
/// </summary>
public sealed class SpeculativeDecodingTests(ITestOutputHelper output)
{
    private static readonly Gpt2Tokenizer Tokenizer = Gpt2Tokenizer.BuiltIn();
    // Every row drafts what the budget allows (what it proposes, not what the measured step cost says pays), so the
    // speculative path is exercised whatever this machine's timings; the cost-aware choice has its own tests below.
    private static readonly SpeculationOptions On = new() { MaxDraftTokens = 6, MaxStepTokens = 64, CostAware = false };

    /// <summary>A fixed cost by positions, and the steps a batcher reported.</summary>
    private sealed class FixedCost(Func<int, double> cost) : IStepCost
    {
        public List<(int Positions, double Seconds)> Observed { get; } = [];
        public void Observe(int positions, double seconds) => Observed.Add((positions, seconds));
        public double Cost(int positions) => cost(positions);
    }

    /// <summary>Prompts that repeat themselves, as a paraphrase prompt repeats its source: tiny random models copy such spans.</summary>
    private static IReadOnlyList<IReadOnlyList<int>> Prompts(int count, int vocabulary, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ =>
        {
            var span = Enumerable.Range(0, random.Next(2, 7)).Select(_ => random.Next(2, vocabulary)).ToList();
            var prompt = new List<int>();
            for (var i = 0; i < random.Next(2, 4); i++)
            {
                prompt.AddRange(span);
                prompt.Add(random.Next(2, vocabulary));
            }
            return (IReadOnlyList<int>)prompt;
        }).ToList();
    }

    public static TheoryData<string, string> Models() => new()
    {
        { "gptj-tiny", "none" }, { "gptj-tiny", "int8" }, { "gptneo-tiny", "none" }, { "gptneo-tiny", "int8" },
        { "gpt2-tiny", "none" }, { "gpt2-tiny", "int8" },
    };

    private static LoadedModel Load(string family, string quantization) =>
        ModelLoader.LoadFolder(Fixtures.Get(family, "safetensors"), new ModelLoadOptions { Device = "cpu", Quantization = quantization });

    private (IReadOnlyList<GenerationResult> Plain, IReadOnlyList<GenerationResult> Speculative, SpeculationStats Stats) Both(
        CausalLM model, IReadOnlyList<IReadOnlyList<int>> prompts, IReadOnlyList<GenerationOptions> options, IReadOnlyList<LoraAdapter?>? adapters = null,
        SpeculationOptions? speculation = null)
    {
        var plain = new TextGenerator(model, Tokenizer).Generate(prompts, options, adapters: adapters);
        var generator = new TextGenerator(model, Tokenizer, speculation ?? On);
        var speculative = generator.Generate(prompts, options, adapters: adapters);
        var stats = generator.LastStats!;
        output.WriteLine($"{stats.Steps} steps, {stats.Tokens} tokens ({stats.TokensPerStep:F2}/step), {stats.Accepted}/{stats.Drafted} drafts accepted");
        return (plain, speculative, stats);
    }

    [Theory, MemberData(nameof(Models))]
    public void GreedyGivesTheSameTokensAtEveryBatchSize(string family, string quantization)
    {
        using var model = Load(family, quantization);
        var vocabulary = model.Config.VocabSize;
        var greedy = new GenerationOptions { Greedy = true, MaxNewTokens = 20, EosTokenId = -1 };
        var accepted = 0L;
        foreach (var (batch, seed) in new[] { (1, 1), (3, 3), (6, 4) })
        {
            var prompts = Prompts(batch, vocabulary, seed);
            var (plain, speculative, stats) = Both(model.Model, prompts, prompts.Select(_ => greedy).ToList());
            for (var i = 0; i < batch; i++)
                Assert.Equal(plain[i].GeneratedIds, speculative[i].GeneratedIds);
            Assert.True(stats.Steps < stats.Tokens, "speculation never produced two tokens in one step");
            accepted += stats.Accepted;
        }
        Assert.True(accepted > 0);
    }

    [Fact]
    public void SampledSequencesAreTheSameForTheSameSeed()
    {
        // Each token is drawn by the row's own sampler, one number per token, from the logits of the tokens before it;
        // a draft token is kept only when it is the token drawn. So the output distribution is the one without
        // speculation, and the same seed gives the same text: compared here over many seeds and sampling settings.
        using var model = TinyModels.Create();
        var prompts = Prompts(4, TinyModels.Config.VocabSize, 11);
        var accepted = 0L;
        for (var seed = 0; seed < 6; seed++)
        {
            var options = prompts.Select((_, i) => new GenerationOptions
            {
                Seed = seed * 10 + i, Temperature = 0.3 + 0.2 * i, TopK = i == 1 ? 20 : 0, TopP = i == 2 ? 0.9 : 1.0,
                RepetitionPenalty = i == 3 ? 1.3 : 1.0, MaxNewTokens = 20, EosTokenId = -1,
            }).ToList();
            var (plain, speculative, stats) = Both(model, prompts, options);
            for (var i = 0; i < prompts.Count; i++)
                Assert.Equal(plain[i].GeneratedIds, speculative[i].GeneratedIds);
            accepted += stats.Accepted;
        }
        Assert.True(accepted > 0);
    }

    [Fact]
    public void RowsOfDifferentAdaptersVerifyTheirDraftsInOneBatch()
    {
        using var lora = TinyModels.WithTwoAdapters();
        var (model, registry) = (lora.Model, lora.Registry);
        var prompts = Prompts(5, TinyModels.Config.VocabSize, 5);
        var greedy = new GenerationOptions { Greedy = true, MaxNewTokens = 20, EosTokenId = -1 };
        LoraAdapter?[] adapters = [registry.Get("x"), null, registry.Get("y"), registry.Get("x"), null];

        var (plain, speculative, stats) = Both(model, prompts, prompts.Select(_ => greedy).ToList(), adapters);
        for (var i = 0; i < prompts.Count; i++)
            Assert.Equal(plain[i].GeneratedIds, speculative[i].GeneratedIds);
        Assert.True(stats.Accepted > 0);
    }

    [Fact]
    public void ThePromptsPassVerifiesADraftAndKeepsOnlyItsAcceptedTokens()
    {
        // A paraphrase prompt ends where the copy of its source begins ("Paraphrase:" after "Original:"), so the prompt's
        // own pass verifies a draft: the trained demo model with its adapter accepts it. Greedy rows and groups of sampled
        // candidates (one prefill, each member verifying the shared draft with its own seed; one member not speculating)
        // must generate what they generate without speculation: each slot's cache holds the prompt and exactly its
        // accepted draft tokens.
        using var demo = DemoModel.Load(new ModelLoadOptions { Device = "cpu", MaxResidentAdapters = 1 });
        var (adapter, _, _) = demo.Adapters!.LoadFolder(demo.BundledAdapter!.Folder);
        var template = AdapterMetadata.Load(Path.Combine(demo.BundledAdapter.Folder, AdapterMetadata.FileName)).PromptTemplate!;
        string[] sources =
        [
            "The river flows through the old town before it reaches the sea .",
            "She was born in Paris and later moved to London with her family .",
            "The team won the championship in 1998 and again in 2004 .",
            "He played football for the club for five years before retiring .",
        ];
        var prompts = sources.Select(s => (IReadOnlyList<int>)demo.Tokenizer.Encode(template.Replace("{text}", s))).ToList();
        var greedy = new GenerationOptions { Greedy = true, MaxNewTokens = 16, EosTokenId = -1 };
        var (plainGreedy, speculativeGreedy) = (new TextGenerator(demo.Model, demo.Tokenizer), new TextGenerator(demo.Model, demo.Tokenizer, On));
        var (prefillAccepted, firstTokens, rows) = (0L, 0, 0);
        foreach (var prompt in prompts)
        {
            var candidates = Enumerable.Range(0, 3).Select(c => c == 0 ? greedy : new GenerationOptions
            {
                Seed = 100 + c, Temperature = 0.7, MaxNewTokens = 16, EosTokenId = -1, Speculate = c != 2,
            }).ToList();
            var results = new Dictionary<GenerationOptions, GenerationResult>();
            foreach (var withSpeculation in new[] { false, true })
            {
                using var batcher = new ContinuousBatcher(demo.Model, demo.Tokenizer, slots: 3, capacity: 128, withSpeculation ? On : null);
                var slots = batcher.AdmitGroup(prompt, candidates, adapter);
                var first = batcher.Step(); // the prompt's pass only: nothing was running
                Assert.Equal(0, batcher.Stats.Steps);
                if (withSpeculation)
                {
                    prefillAccepted += batcher.Stats.Accepted;
                    (firstTokens, rows) = (firstTokens + first.Count, rows + slots.Count);
                    // the member that does not speculate reads the logits after the prompt only
                    Assert.Single(first, u => u.Slot == slots[2]);
                }
                var done = first.Where(u => u.Finished).ToList();
                while (batcher.ActiveCount > 0) done.AddRange(batcher.Step().Where(u => u.Finished));
                foreach (var (slot, options) in slots.Zip(candidates))
                {
                    var result = done.Single(u => u.Slot == slot).Result!;
                    if (withSpeculation) Assert.Equal(results[options].GeneratedIds, result.GeneratedIds);
                    else results[options] = result;
                }
            }
            // the same through TextGenerator, one row
            Assert.Equal(plainGreedy.Generate(prompt, greedy, adapter: adapter).GeneratedIds, speculativeGreedy.Generate(prompt, greedy, adapter: adapter).GeneratedIds);
        }
        output.WriteLine($"prompt passes: {firstTokens} tokens for {rows} rows, {prefillAccepted} draft tokens accepted");
        Assert.True(prefillAccepted >= prompts.Count, "prompts' passes accepted too few draft tokens: the path was barely exercised");
        Assert.True(firstTokens > rows);
    }

    [Theory, MemberData(nameof(Models))]
    public void ARolledBackSlotEqualsACacheThatNeverSawTheRejectedTokens(string family, string quantization)
    {
        using var model = Load(family, quantization);
        int[] prompt = [5, 17, 42, 8, 91, 3];
        long[] fed = [60, 22, 14, 77];           // the next input and a draft of three
        const int kept = 2;                      // the input and the first draft token survive verification
        long[] next = [35, 9];                   // what the slot is fed afterwards
        using var noGrad = no_grad();
        // int8 models keep their caches in bfloat16 (ModelLoadOptions.KvCache "auto"): the references below attend to the
        // same rounded keys and values, through a cache of their own.
        var storage = model.Model.KvCacheDtype;
        Assert.Equal(quantization == "int8" ? ScalarType.BFloat16 : (ScalarType?)null, storage);
        Tensor Full(long[] ids)
        {
            using var cache = new KvCache(model.Config.LayerCount, ids.Length, storage);
            return model.Model.forward(new CausalLMInput(tensor(ids).unsqueeze(0), Cache: cache));
        }
        using var slots = new SlotKvCache(model.Config.LayerCount, slots: 2, capacity: 32, storage);
        using (var prefill = new KvCache(model.Config.LayerCount, prompt.Length, storage))
        {
            using var _ = model.Model.forward(new CausalLMInput(tensor(prompt.Select(i => (long)i).ToArray()).unsqueeze(0), Cache: prefill));
            slots.Load(1, prefill, 0, 0, prompt.Length);
        }
        slots.BeginStep([1], fed.Length);
        using (var mask = slots.StepMask(CPU))
        using (var positions = slots.StepPositions(CPU))
        using (var logits = model.Model.forward(new CausalLMInput(tensor(fed).unsqueeze(0), mask, positions, slots)))
        {
            // Each position of the verifying pass equals the full forward up to it.
            for (var t = 0; t < fed.Length; t++)
            {
                using var full = Full([.. prompt.Select(i => (long)i), .. fed[..(t + 1)]]);
                Assert.True((logits[0, t] - full[0, -1]).abs().max().item<float>() < 2e-5, $"verifying position {t}");
            }
        }
        slots.Truncate(1, prompt.Length + kept);
        foreach (var (token, step) in next.Select((n, i) => (n, i)))
        {
            slots.BeginStep([1], 1);
            using var mask = slots.StepMask(CPU);
            using var positions = slots.StepPositions(CPU);
            using var logits = model.Model.forward(new CausalLMInput(tensor(new[] { token }).unsqueeze(0), mask, positions, slots, LastTokens: 1));
            using var full = Full([.. prompt.Select(i => (long)i), .. fed[..kept], .. next[..(step + 1)]]);
            var error = (logits[0, 0] - full[0, -1]).abs().max().item<float>();
            Assert.True(error < 2e-5, $"{family} {quantization} step {step} after rollback: max |Δ| = {error}");
        }
    }

    [Fact]
    public void StopSequencesMaxTokensAndCancellationInsideADraftBehaveAsWithout()
    {
        using var model = TinyModels.Create();
        var prompts = Prompts(4, TinyModels.Config.VocabSize, 21);
        var greedy = new GenerationOptions { Greedy = true, MaxNewTokens = 30, EosTokenId = -1 };
        var free = new TextGenerator(model, Tokenizer).Generate(prompts, prompts.Select(_ => greedy).ToList());
        // A stop sequence from the middle of what each row generates (likely inside an accepted draft), and token limits
        // that end rows mid-draft.
        var options = prompts.Select((_, i) => i % 2 == 0
            ? greedy with { StopSequences = [Tokenizer.Decode(free[i].GeneratedIds.Skip(9).Take(2).ToList())] }
            : greedy with { MaxNewTokens = 7 + i }).ToList();
        var (plain, speculative, stats) = Both(model, prompts, options);
        for (var i = 0; i < prompts.Count; i++)
        {
            Assert.Equal(plain[i].GeneratedIds, speculative[i].GeneratedIds);
            Assert.Equal(plain[i].Text, speculative[i].Text);
            Assert.Equal(plain[i].FinishReason, speculative[i].FinishReason);
        }
        Assert.True(stats.Accepted > 0);

        // A row cancelled between steps while it was drafting: the row beside it is unaffected.
        using var batcher = new ContinuousBatcher(model, Tokenizer, slots: 2, capacity: 64, On);
        var kept = batcher.Admit(prompts[1], greedy);
        var dropped = batcher.Admit(prompts[3], greedy);
        GenerationResult? result = null;
        for (var step = 0; result is null && step < 40; step++)
        {
            if (step == 3) batcher.Cancel(dropped);
            result = batcher.Step().FirstOrDefault(u => u.Slot == kept && u.Finished)?.Result;
        }
        Assert.Equal(free[1].GeneratedIds, result!.GeneratedIds);
        Assert.Equal(2, batcher.FreeSlots);
    }

    [Fact]
    public void AStepComputesAtMostMaxStepTokensPositionsDraftsIncluded()
    {
        // Rows of a step are padded to the longest draft: 4 rows under a cap of 9 positions get drafts of 1 at most
        // (4 · (1 + 1) = 8), not the 5 left after one position each (drafts start at 2 tokens).
        using var model = TinyModels.Create();
        var prompts = Prompts(4, TinyModels.Config.VocabSize, 37);
        var options = On with { MaxStepTokens = 9 };
        using var batcher = new ContinuousBatcher(model, Tokenizer, slots: 4, capacity: 96, options);
        foreach (var prompt in prompts)
            batcher.Admit(prompt, new GenerationOptions { Greedy = true, MaxNewTokens = 40, EosTokenId = -1 });
        var (steps, drafting) = (0, 0);
        while (batcher.ActiveCount > 0)
        {
            var before = batcher.Stats;
            var rows = batcher.ActiveCount;
            batcher.Step();
            var drafted = batcher.Stats.Drafted - before.Drafted;
            Assert.True(drafted <= (options.MaxStepTokens / rows - 1) * rows, $"step {steps}: {rows} rows drafted {drafted} tokens");
            if (drafted > 0) drafting++;
            steps++;
        }
        Assert.True(drafting > 0, "no step drafted: the cap was never tested");
    }

    [Fact]
    public void ABatchWithNoPositionsToSpareDecodesOneTokenPerRow()
    {
        using var model = TinyModels.Create();
        var prompts = Prompts(4, TinyModels.Config.VocabSize, 31);
        var greedy = prompts.Select(_ => new GenerationOptions { Greedy = true, MaxNewTokens = 16, EosTokenId = -1 }).ToList();
        var (plain, speculative, stats) = Both(model, prompts, greedy, speculation: On with { MaxStepTokens = 4 });
        for (var i = 0; i < prompts.Count; i++)
            Assert.Equal(plain[i].GeneratedIds, speculative[i].GeneratedIds);
        Assert.Equal(0, stats.Drafted);
        // A request that asks for no speculation gets none, in a batch that speculates for the others.
        var mixed = greedy.Select((o, i) => i == 0 ? o with { Speculate = false } : o).ToList();
        using var batcher = new ContinuousBatcher(model, Tokenizer, slots: 1, capacity: 64, On);
        batcher.Admit(prompts[0], mixed[0]);
        while (batcher.ActiveCount > 0) batcher.Step();
        Assert.Equal(0, batcher.Stats.Drafted);
    }

    [Fact]
    public void CostAwareDraftsNothingWhenAPositionCostsAsMuchAsAStepAndTheOutputIsTheSame()
    {
        using var model = TinyModels.Create();
        var prompts = Prompts(3, TinyModels.Config.VocabSize, 37);
        var greedy = new GenerationOptions { Greedy = true, MaxNewTokens = 24, EosTokenId = -1 };
        var plain = new TextGenerator(model, Tokenizer).Generate(prompts, prompts.Select(_ => greedy).ToList());
        foreach (var (slope, drafts) in new[] { (1.0, false), (0.0, true) })
        {
            var cost = new FixedCost(p => 1 + slope * (p - 1));
            using var batcher = new ContinuousBatcher(model, Tokenizer, slots: 3, capacity: 96, On with { CostAware = true }, cost);
            var slots = prompts.Select(p => batcher.Admit(p, greedy)).ToList();
            var results = new Dictionary<int, GenerationResult>();
            var widths = new List<int>();
            while (batcher.ActiveCount > 0)
            {
                var rows = batcher.ActiveCount;
                var steps = cost.Observed.Count;
                foreach (var update in batcher.Step().Where(u => u.Finished)) results[update.Slot] = update.Result!;
                // each decode step reports its positions (rows × width) and a time
                if (cost.Observed.Count > steps)
                {
                    var (positions, seconds) = cost.Observed[^1];
                    Assert.True(seconds > 0);
                    Assert.Equal(0, positions % rows);
                    widths.Add(positions / rows);
                }
            }
            for (var i = 0; i < prompts.Count; i++)
                Assert.Equal(plain[i].GeneratedIds, results[slots[i]].GeneratedIds);
            Assert.Equal(drafts, batcher.Stats.Drafted > 0);
            Assert.Equal(drafts, widths.Any(w => w > 1));
        }
    }
}

using ParaphraseService.Model.Generation;
using ParaphraseService.Model.GptJ;
using ParaphraseService.Model.Layers;
using ParaphraseService.Model.Loading;
using ParaphraseService.Model.Lora;
using ParaphraseService.Model.Tokenization;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Tests.Generation;

public class ContinuousBatcherTests
{
    private static readonly Gpt2Tokenizer Tokenizer = Gpt2Tokenizer.BuiltIn();

    private static GenerationOptions Sampled(long seed, int maxNew = 9) =>
        new() { Seed = seed, Temperature = 1.3, TopK = 40, MaxNewTokens = maxNew, EosTokenId = -1 };

    /// <summary>Runs steps until every admitted sequence finished; admits more on the given steps.</summary>
    private static Dictionary<string, GenerationResult> Drive(ContinuousBatcher batcher, Dictionary<int, List<(string Name, IReadOnlyList<int> Prompt, GenerationOptions Options, LoraAdapter? Adapter)>> arrivals)
    {
        var names = new Dictionary<int, string>();
        var results = new Dictionary<string, GenerationResult>();
        for (var step = 0; step < 100 && (results.Count < arrivals.Values.Sum(a => a.Count)); step++)
        {
            foreach (var (name, prompt, options, adapter) in arrivals.GetValueOrDefault(step) ?? [])
                names[batcher.Admit(prompt, options, adapter)] = name;
            foreach (var update in batcher.Step().Where(u => u.Finished))
                results[names[update.Slot]] = update.Result!;
        }
        return results;
    }

    [Fact]
    public void SequencesJoiningAndLeavingMidStreamProduceWhatTheyProduceAlone()
    {
        using var model = TinyModels.Create();
        var alone = new TextGenerator(model, Tokenizer);
        IReadOnlyList<int> p1 = [5, 17, 42, 8], p2 = [9, 9], p3 = [3, 1, 4, 1, 5, 9, 2, 6];
        using var batcher = new ContinuousBatcher(model, Tokenizer, slots: 2, capacity: 32);
        var results = Drive(batcher, new()
        {
            [0] = [("a", p1, Sampled(1), null)],
            [3] = [("b", p2, Sampled(2, maxNew: 4), null)],
            [7] = [("c", p3, Sampled(3), null)], // takes b's slot, freed in step 6
        });

        Assert.Equal(alone.Generate(p1, Sampled(1)).GeneratedIds, results["a"].GeneratedIds);
        Assert.Equal(alone.Generate(p2, Sampled(2, maxNew: 4)).GeneratedIds, results["b"].GeneratedIds);
        Assert.Equal(alone.Generate(p3, Sampled(3)).GeneratedIds, results["c"].GeneratedIds);
        Assert.Equal(2, batcher.FreeSlots);
    }

    [Fact]
    public void EachSlotUsesItsOwnAdapter()
    {
        using var lora = TinyModels.WithTwoAdapters();
        var (model, registry) = (lora.Model, lora.Registry);
        var alone = new TextGenerator(model, Tokenizer);
        var greedy = new GenerationOptions { Greedy = true, MaxNewTokens = 8, EosTokenId = -1 };
        IReadOnlyList<int> prompt = [5, 17, 42];

        using var batcher = new ContinuousBatcher(model, Tokenizer, slots: 3, capacity: 32);
        var results = Drive(batcher, new()
        {
            [0] = [("x", prompt, greedy, registry.Get("x")), ("base", prompt, greedy, null)],
            [2] = [("y", prompt, greedy, registry.Get("y"))],
        });
        foreach (var name in new[] { "x", "y" })
            Assert.Equal(alone.Generate(prompt, greedy, adapter: registry.Get(name)).GeneratedIds, results[name].GeneratedIds);
        Assert.Equal(alone.Generate(prompt, greedy).GeneratedIds, results["base"].GeneratedIds);
        Assert.NotEqual(results["x"].GeneratedIds, results["base"].GeneratedIds);
    }

    [Fact]
    public void FullBatchRefusesCancelFreesAndLimitsAreChecked()
    {
        using var model = TinyModels.Create();
        using var batcher = new ContinuousBatcher(model, Tokenizer, slots: 1, capacity: 16);
        var slot = batcher.Admit([1, 2, 3], Sampled(1));
        Assert.Throws<InvalidOperationException>(() => batcher.Admit([1], Sampled(2)));
        batcher.Step();
        batcher.Cancel(slot);
        Assert.Equal(1, batcher.FreeSlots);
        Assert.Empty(batcher.Step());
        Assert.Contains("context of 16", Assert.Throws<ArgumentException>(() => batcher.Admit([1, 2, 3, 4, 5, 6, 7, 8], Sampled(1, maxNew: 9))).Message);
        var finishedAtOnce = batcher.Admit([1, 2], Sampled(4, maxNew: 1));
        var update = Assert.Single(batcher.Step());
        Assert.True(update.Finished);
        Assert.Equal(finishedAtOnce, update.Slot);
        Assert.Single(update.Result!.GeneratedIds);
    }

    [Fact]
    public void CandidatesShareOnePrefillAndEachFollowsItsSeed()
    {
        using var model = TinyModels.Create();
        var alone = new TextGenerator(model, Tokenizer);
        IReadOnlyList<int> prompt = [5, 17, 42, 8];
        using var batcher = new ContinuousBatcher(model, Tokenizer, slots: 4, capacity: 32);
        var slots = batcher.AdmitGroup(prompt, [Sampled(10), Sampled(11), Sampled(12)]);
        Assert.Equal(1, batcher.FreeSlots);
        var results = new Dictionary<int, GenerationResult>();
        while (results.Count < 3)
            foreach (var update in batcher.Step().Where(u => u.Finished))
                results[update.Slot] = update.Result!;
        for (var i = 0; i < 3; i++)
            Assert.Equal(alone.Generate(prompt, Sampled(10 + i)).GeneratedIds, results[slots[i]].GeneratedIds);
        Assert.Throws<InvalidOperationException>(() => batcher.AdmitGroup(prompt, [Sampled(1), Sampled(2), Sampled(3), Sampled(4), Sampled(5)]));
    }
}

using ParaphraseService.Model.Generation;
using ParaphraseService.Model.Loading;
using ParaphraseService.Model.Tokenization;

namespace ParaphraseService.Model.Tests.Generation;

/// <summary>Banned text and a character limit, enforced while decoding.</summary>
public class ConstraintTests
{
    private static readonly Lazy<LoadedModel> s_demo = new(() => DemoModel.Load(new ModelLoadOptions { Device = "cpu" }));
    private const string Prompt = "The weather in the city today";

    private static GenerationResult Generate(GenerationOptions options) => s_demo.Value.CreateGenerator().Generate(Prompt, options);

    [Fact]
    public void ABannedTermNeverAppearsHoweverItIsSplitOrCased()
    {
        var free = Generate(new GenerationOptions { Greedy = true, MaxNewTokens = 24 });
        var tokenizer = s_demo.Value.Tokenizer;
        // A term the model writes when free, cut across a token boundary: its first token's end and the next token's start.
        var pieces = free.GeneratedIds.Select(id => tokenizer.Decode([id])).ToList();
        var i = pieces.FindIndex(p => p.Trim().Length >= 2);
        Assert.True(i >= 0 && i + 1 < pieces.Count, $"no usable token in '{free.Text}'");
        var term = (pieces[i].Trim()[^2..] + pieces[i + 1]).Trim();
        Assert.Contains(term, free.Text, StringComparison.OrdinalIgnoreCase);
        var shouted = term.ToUpperInvariant(); // banned as given, the model's own casing must go too

        var banned = Generate(new GenerationOptions { Greedy = true, MaxNewTokens = 24, BannedText = [shouted] });
        Assert.DoesNotContain(term, banned.Text, StringComparison.OrdinalIgnoreCase);
        Assert.NotEqual(free.Text, banned.Text);
        for (var seed = 0; seed < 40; seed++)
        {
            var sampled = Generate(new GenerationOptions { MaxNewTokens = 16, Seed = seed, Temperature = 1.5, BannedText = [term, "the"] });
            Assert.DoesNotContain(term, sampled.Text, StringComparison.OrdinalIgnoreCase);
            Assert.DoesNotContain("the", sampled.Text, StringComparison.OrdinalIgnoreCase);
        }
    }

    [Fact]
    public void TheContinuousBatcherBansTooEachRowWithItsOwnTerms()
    {
        // The service decodes through the batcher: rows of one group, each banning other text, sharing one prefill.
        using var batcher = new ContinuousBatcher(s_demo.Value.Model, s_demo.Value.Tokenizer, slots: 6, capacity: 64);
        var prompt = s_demo.Value.Tokenizer.Encode(Prompt);
        string[][] bans = [["the"], ["an", "re"], [], ["e"], ["ab"], ["o"]];
        var slots = batcher.AdmitGroup(prompt, bans.Select((ban, i) => new GenerationOptions { MaxNewTokens = 20, Seed = i, Temperature = 1.5, BannedText = ban }).ToList());
        var texts = new Dictionary<int, string>();
        while (texts.Count < slots.Count)
            foreach (var update in batcher.Step().Where(u => u.Finished))
                texts[update.Slot] = update.Result!.Text;
        for (var i = 0; i < slots.Count; i++)
            foreach (var term in bans[i])
                Assert.DoesNotContain(term, texts[slots[i]], StringComparison.OrdinalIgnoreCase);
        Assert.Contains("e", texts[slots[2]], StringComparison.OrdinalIgnoreCase); // the row that bans nothing is free
    }

    [Fact]
    public void NonAsciiTermsAreBannedByTheirBytes()
    {
        var tokenizer = Gpt2Tokenizer.BuiltIn();
        var banned = BannedText.For(["Köroğlu"], tokenizer)!;
        // Feed the term's own tokens one by one: the last must be banned once the others are generated.
        var ids = tokenizer.Encode("Köroğlu");
        Assert.True(ids.Count > 1);
        foreach (var id in ids.Take(ids.Count - 1))
            banned.Accept(id, tokenizer);
        var scores = new float[tokenizer.VocabularySize];
        banned.Mask(scores);
        Assert.True(float.IsNegativeInfinity(scores[ids[^1]]));
        Assert.Equal(0f, scores[tokenizer.Encode(" Istanbul")[0]]);
    }

    [Fact]
    public void ARowStopsOnceItsTextOutgrowsTheCharacterLimit()
    {
        var free = Generate(new GenerationOptions { Greedy = true, MaxNewTokens = 24 });
        var limit = free.Text.TrimStart().Length / 2;
        var limited = Generate(new GenerationOptions { Greedy = true, MaxNewTokens = 24, MaxCharacters = limit });
        Assert.Equal(FinishReason.CharacterLimit, limited.FinishReason);
        Assert.True(limited.Text.TrimStart().Length > limit);
        Assert.StartsWith(limited.Text, free.Text);
        Assert.True(limited.GeneratedIds.Count < free.GeneratedIds.Count);
    }
}

using ParaphraseService.Model.Generation;
using ParaphraseService.Model.Tokenization;

namespace ParaphraseService.Model.Tests.Generation;

public class TextGeneratorTests
{
    private static readonly int[] Prompt = [5, 17, 42, 8];

    [Fact]
    public void GreedyGenerationEqualsArgmaxOfFullRecomputation()
    {
        using var model = TinyModels.Create();
        var result = new TextGenerator(model, Gpt2Tokenizer.BuiltIn())
            .Generate(Prompt, new GenerationOptions { Greedy = true, MaxNewTokens = 10, EosTokenId = -1 });

        var sequence = Prompt.Select(i => (long)i).ToList();
        for (var step = 0; step < 10; step++)
        {
            using var logits = TinyModels.Logits(model, sequence.ToArray());
            sequence.Add(logits[0, -1].argmax().item<long>());
        }
        Assert.Equal(sequence.Skip(Prompt.Length).Select(i => (int)i), result.GeneratedIds);
        Assert.Equal(FinishReason.Length, result.FinishReason);
    }

    [Fact]
    public void SameSeedSameOutputAndBatchRowsEqualTheRowAlone()
    {
        using var model = TinyModels.Create();
        var generator = new TextGenerator(model, Gpt2Tokenizer.BuiltIn());
        var options = new GenerationOptions { MaxNewTokens = 12, Seed = 42, Temperature = 1.5, TopK = 50, EosTokenId = -1 };
        var alone = generator.Generate(Prompt, options);
        Assert.Equal(alone.GeneratedIds, generator.Generate(Prompt, options).GeneratedIds);
        Assert.NotEqual(alone.GeneratedIds, generator.Generate(Prompt, options with { Seed = 43 }).GeneratedIds);

        IReadOnlyList<int> shorter = [9, 9];
        var batch = generator.Generate([shorter, Prompt, [3]], [options with { Seed = 1 }, options, options with { Greedy = true }]);
        Assert.Equal(alone.GeneratedIds, batch[1].GeneratedIds);
        Assert.Equal(generator.Generate(shorter, options with { Seed = 1 }).GeneratedIds, batch[0].GeneratedIds);
    }

    [Fact]
    public void TimeToFirstTokenFallsWithinTheCall()
    {
        using var model = TinyModels.Create();
        var generator = new TextGenerator(model, Gpt2Tokenizer.BuiltIn());
        foreach (var newTokens in new[] { 40, 1 })
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            generator.Generate(Prompt, new GenerationOptions { Greedy = true, MaxNewTokens = newTokens, EosTokenId = -1 });
            var whole = clock.Elapsed;
            Assert.InRange(generator.LastTimeToFirstToken, TimeSpan.FromTicks(1), whole);
        }
    }

    [Fact]
    public void EndOfSequenceStopsTheRowAndIsNotPartOfTheOutput()
    {
        using var model = TinyModels.Create();
        var generator = new TextGenerator(model, Gpt2Tokenizer.BuiltIn());
        var greedy = generator.Generate(Prompt, new GenerationOptions { Greedy = true, MaxNewTokens = 6, EosTokenId = -1 });
        var eos = greedy.GeneratedIds[3];

        var stopped = generator.Generate(Prompt, new GenerationOptions { Greedy = true, MaxNewTokens = 6, EosTokenId = eos });
        Assert.Equal(FinishReason.EndOfSequence, stopped.FinishReason);
        Assert.Equal(greedy.GeneratedIds.TakeWhile(id => id != eos), stopped.GeneratedIds);
    }

    [Fact]
    public void StopSequenceEndsGenerationAndIsCutFromTheText()
    {
        using var model = TinyModels.Create();
        var tokenizer = Gpt2Tokenizer.BuiltIn();
        var generator = new TextGenerator(model, tokenizer);
        var free = generator.Generate(Prompt, new GenerationOptions { Greedy = true, MaxNewTokens = 8, EosTokenId = -1 });
        var stop = tokenizer.Decode([free.GeneratedIds[4]]);
        Assert.NotEmpty(stop);

        var stopped = generator.Generate(Prompt, new GenerationOptions { Greedy = true, MaxNewTokens = 8, EosTokenId = -1, StopSequences = [stop] });
        Assert.Equal(FinishReason.StopSequence, stopped.FinishReason);
        Assert.DoesNotContain(stop, stopped.Text);
        Assert.Equal(free.Text[..free.Text.IndexOf(stop, StringComparison.Ordinal)], stopped.Text);
        Assert.True(stopped.GeneratedIds.Count <= 4);
    }

    [Fact]
    public void PromptPlusNewTokensBeyondTheContextIsRejected()
    {
        using var model = TinyModels.Create();
        var generator = new TextGenerator(model, Gpt2Tokenizer.BuiltIn());
        var error = Assert.Throws<ArgumentException>(() => generator.Generate(Prompt, new GenerationOptions { MaxNewTokens = 61 }));
        Assert.Contains("context of 64 tokens", error.Message);
        Assert.Throws<ArgumentException>(() => generator.Generate([500], new GenerationOptions()));
    }
}

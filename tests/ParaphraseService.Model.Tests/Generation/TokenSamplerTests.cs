using ParaphraseService.Model.Generation;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Tests.Generation;

public class TokenSamplerTests
{
    // Probabilities 0.5, 0.25, 0.125, 0.0625, 0.0625 for ids 0..4.
    private static Tensor Logits() => tensor(new[] { 0.5f, 0.25f, 0.125f, 0.0625f, 0.0625f }).log();

    private static int[] Draw(GenerationOptions options, int count = 200, IReadOnlyList<int>? history = null, int vocabulary = 5)
    {
        var sampler = new TokenSampler(options, vocabulary);
        using var logits = Logits();
        return Enumerable.Range(0, count).Select(_ => sampler.Next(logits, history ?? [])).ToArray();
    }

    [Fact]
    public void GreedyTakesTheMostLikelyToken() =>
        Assert.All(Draw(new GenerationOptions { Greedy = true }, 5), id => Assert.Equal(0, id));

    [Theory]
    [InlineData(53, new[] { 7, 30 }, 7)]      // a tie: the first, as torch.argmax
    [InlineData(53, new[] { 50 }, 50)]        // in the tail past the last eight
    [InlineData(53, new[] { 0 }, 0)]
    [InlineData(50400, new[] { 50399, 9 }, 9)]
    [InlineData(3, new[] { 2 }, 2)]           // shorter than eight
    public void GreedyTakesTheFirstLargestAnywhere(int vocabulary, int[] largest, int expected)
    {
        var values = Enumerable.Range(0, vocabulary).Select(i => MathF.Sin(i) - 2f).ToArray();
        foreach (var i in largest) values[i] = 3.5f;
        using var logits = tensor(values);
        Assert.Equal(expected, new TokenSampler(new GenerationOptions { Greedy = true }, vocabulary).Next(logits, []));
    }

    [Theory]
    [InlineData(53, 4)]
    [InlineData(53, 51)]
    [InlineData(50400, 30000)]
    public void ANaNLogitAnywhereIsRefused(int vocabulary, int at)
    {
        var values = new float[vocabulary];
        values[at] = float.NaN;
        using var logits = tensor(values);
        Assert.Throws<SamplingException>(() => new TokenSampler(new GenerationOptions { Greedy = true }, vocabulary).Next(logits, []));
    }

    [Fact]
    public void SameSeedSameDrawsAndAnotherSeedOtherDraws()
    {
        var a = Draw(new GenerationOptions { Seed = 11 });
        Assert.Equal(a, Draw(new GenerationOptions { Seed = 11 }));
        Assert.NotEqual(a, Draw(new GenerationOptions { Seed = 12 }));
        Assert.True(a.Distinct().Count() >= 4); // it really samples
    }

    [Fact]
    public void TopKKeepsOnlyTheKMostLikely()
    {
        Assert.All(Draw(new GenerationOptions { Seed = 1, TopK = 2 }), id => Assert.InRange(id, 0, 1));
        Assert.Contains(1, Draw(new GenerationOptions { Seed = 1, TopK = 2 }));
    }

    [Fact]
    public void TopPKeepsTheSmallestNucleus()
    {
        // 0.5 + 0.25 reach 0.7: ids 0 and 1 only.
        var draws = Draw(new GenerationOptions { Seed = 2, TopP = 0.7 });
        Assert.All(draws, id => Assert.InRange(id, 0, 1));
        Assert.Contains(1, draws);
        Assert.All(Draw(new GenerationOptions { Seed = 2, TopP = 0.01 }, 20), id => Assert.Equal(0, id));
    }

    // Hugging Face's top-p, written the plain way: everything sorted (most likely first, equal ones by id), a token kept
    // while the tokens before it hold less than top_p.
    private static double[] NucleusByFullSort(double[] probabilities, double topP)
    {
        var order = Enumerable.Range(0, probabilities.Length).Where(i => probabilities[i] > 0)
            .OrderByDescending(i => probabilities[i]).ThenBy(i => i).ToList();
        var kept = new double[probabilities.Length];
        var above = 0.0;
        foreach (var i in order)
        {
            if (above >= topP) break;
            kept[i] = probabilities[i];
            above += probabilities[i];
        }
        return kept;
    }

    [Theory]
    [InlineData("flat", 0.95)]
    [InlineData("flat", 0.5)]
    [InlineData("peaked", 0.95)]
    [InlineData("peaked", 0.3)]
    [InlineData("ties and zeros", 0.9)]
    [InlineData("ties and zeros", 0.999999)]
    [InlineData("one token", 0.5)]
    public void TopPKeepsWhatSortingEverythingKeeps(string shape, double topP)
    {
        var random = new Random(shape.Length * 31 + (int)(topP * 1000));
        var logits = Enumerable.Range(0, 50400).Select(i => shape switch
        {
            "flat" => random.NextDouble(),
            "peaked" => 12 * random.NextDouble() * random.NextDouble() * random.NextDouble(),
            "ties and zeros" => i % 7 == 0 ? double.NegativeInfinity : Math.Round(4 * random.NextDouble()),
            _ => i == 123 ? 0 : double.NegativeInfinity,
        }).ToArray();
        var max = logits.Max();
        var weights = logits.Select(x => double.IsNegativeInfinity(x) ? 0 : Math.Exp(x - max)).ToArray();
        var total = weights.Sum();
        var probabilities = weights.Select(w => w / total).ToArray();

        var expected = NucleusByFullSort(probabilities, topP);
        TokenSampler.RemoveOutsideNucleus(probabilities, topP);

        var kept = probabilities.Count(p => p > 0);
        Assert.True(kept > 0);
        Assert.Equal(expected, probabilities);
    }

    [Fact]
    public void TopPAboveTheMassThereIsKeepsEveryToken()
    {
        // rounding can leave softmax's total just under top_p; the nucleus is then everything
        double[] probabilities = [0.3, 0, 0.3, 0.2, 0.1];
        var expected = NucleusByFullSort(probabilities, 0.95);
        TokenSampler.RemoveOutsideNucleus(probabilities, 0.95);
        Assert.Equal([0.3, 0, 0.3, 0.2, 0.1], probabilities);
        Assert.Equal(expected, probabilities);
    }

    [Theory]
    [InlineData(50400, 1)]
    [InlineData(50400, 50)]
    [InlineData(50400, 50400)]
    [InlineData(7, 3)]
    [InlineData(1, 1)]
    public void TheKthLargestIsWhatSortingGives(int length, int k)
    {
        var random = new Random(length + k);
        // ties, -∞ (banned or past the vocabulary) and spread-out values
        var values = Enumerable.Range(0, length).Select(i => i % 11 == 0 ? float.NegativeInfinity : MathF.Round((float)random.NextDouble() * 40) / 4).ToArray();
        var sorted = values.Order().ToArray();
        float[] buffer = [];
        Assert.Equal(sorted[^k], TokenSampler.KthLargest(values, k, ref buffer));
        Assert.Equal(sorted[^k], TokenSampler.KthLargest(values, k, ref buffer)); // the buffer reused
    }

    [Fact]
    public void LowTemperatureSharpensHighTemperatureFlattens()
    {
        Assert.All(Draw(new GenerationOptions { Seed = 3, Temperature = 0.01 }), id => Assert.Equal(0, id));
        var flat = Draw(new GenerationOptions { Seed = 3, Temperature = 100 }, 1000);
        Assert.InRange(flat.Count(id => id == 4), 120, 280); // about 1 in 5
    }

    [Fact]
    public void ATemperatureBeyondFloatRangeSamplesUniformlyAndNeverAMaskedToken()
    {
        // 1e300 is a valid temperature (finite, positive) but infinite as a float: -∞ / ∞ would be NaN
        var drawn = Draw(new GenerationOptions { Seed = 5, Temperature = 1e300 }, 1000, vocabulary: 4);
        Assert.DoesNotContain(4, drawn); // past the allowed vocabulary: masked
        for (var id = 0; id < 4; id++)
            Assert.InRange(drawn.Count(d => d == id), 170, 330); // about 1 in 4 each
    }

    [Fact]
    public void RepetitionPenaltyDividesPositiveAndMultipliesNegativeLogits()
    {
        var sampler = new TokenSampler(new GenerationOptions { Greedy = true, RepetitionPenalty = 3 }, 3);
        // id 0 (2.0 -> 0.667) falls below id 1 (1.0); with id 1 also seen, 1.0 -> 0.333 and id 2 (-0.1 -> -0.3) stays last.
        using var logits = tensor(new[] { 2.0f, 1.0f, -0.1f });
        Assert.Equal(1, sampler.Next(logits, [0]));
        Assert.Equal(0, sampler.Next(logits, [0, 1]));
        using var negative = tensor(new[] { -1.0f, -1.2f, -5f });
        Assert.Equal(1, sampler.Next(negative, [0])); // -1 * 3 = -3 < -1.2
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void APenaltyBeyondFloatRangeStillPenalizes(bool greedy)
    {
        // 1e-300 is a valid penalty but 0 as a float: 0 / 0 made id 0's logit NaN, and the choice fell to id 0
        var sampler = new TokenSampler(new GenerationOptions { Greedy = greedy, Seed = 1, RepetitionPenalty = 1e-300 }, 3);
        using var logits = tensor(new[] { 0f, 2f, 0.5f });
        Assert.Equal(2, sampler.Next(logits, [0, 2])); // 0.5 divided by almost nothing outgrows 2
    }

    [Fact]
    public void IdsBeyondTheAllowedVocabularyAreNeverPicked()
    {
        var sampler = new TokenSampler(new GenerationOptions { Greedy = true }, 2);
        using var logits = tensor(new[] { 0f, 1f, 9f, 9f });
        Assert.Equal(1, sampler.Next(logits, []));
    }

    [Theory]
    [InlineData(0, 1.0, 0, 1.0, 1.0, "max new tokens")]
    [InlineData(8, 0.0, 0, 1.0, 1.0, "temperature")]
    [InlineData(8, 1.0, -1, 1.0, 1.0, "top-k")]
    [InlineData(8, 1.0, 0, 1.5, 1.0, "top-p")]
    [InlineData(8, 1.0, 0, 0.0, 1.0, "top-p")]
    [InlineData(8, 1.0, 0, 1.0, 0.0, "repetition penalty")]
    public void OutOfRangeOptionsAreNamed(int maxNew, double temperature, int topK, double topP, double penalty, string named)
    {
        var options = new GenerationOptions { MaxNewTokens = maxNew, Temperature = temperature, TopK = topK, TopP = topP, RepetitionPenalty = penalty };
        Assert.Contains(named, Assert.Throws<ArgumentException>(options.Validate).Message);
    }
}

using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using ParaphraseService.Api.Tests.Adapters;

namespace ParaphraseService.Api.Tests.Paraphrasing;

/// <summary>maxChars, keep, avoid and minSimilarity on /paraphrase (and max_chars, avoid on the OpenAI routes), with the demo model.</summary>
public sealed class ParaphraseConstraintTests : IAsyncLifetime
{
    private const string Source = "The committee will meet again next week to discuss the budget.";
    private readonly ServiceApplication _app = new();
    private HttpClient _client = null!;

    public async Task InitializeAsync()
    {
        await _app.ModelLoaded();
        _client = _app.CreateClient();
    }

    public async Task DisposeAsync()
    {
        _client.Dispose();
        await _app.DisposeAsync();
    }

    private async Task<JsonElement> Paraphrase(object body) => (await (await _client.PostAsJsonAsync("/paraphrase", body)).JsonAsync()).GetProperty("results")[0];

    private static List<string> Texts(JsonElement result) => result.GetProperty("candidates").EnumerateArray().Select(c => c.GetProperty("text").GetString()!).ToList();

    /// <summary>Every generated candidate is accounted for: kept, dropped or removed.</summary>
    private static void AssertCounted(JsonElement result)
    {
        var dropped = result.GetProperty("dropped").EnumerateObject().Where(p => p.Name != "total").Sum(p => p.Value.GetInt32());
        var removed = result.GetProperty("removed").EnumerateObject().Where(p => p.Name != "total").Sum(p => p.Value.GetInt32());
        Assert.Equal(result.GetProperty("generated").GetInt32(), Texts(result).Count + dropped + removed);
    }

    [Fact]
    public async Task AvoidedTermsNeverAppearOverManySeedsHoweverCasedOrSplit()
    {
        // The words the model writes when free, over a few seeds: the most frequent becomes the avoided term.
        var free = new List<string>();
        for (var seed = 0; seed < 4; seed++)
            free.AddRange(Texts(await Paraphrase(new { text = Source, candidates = 4, seed, maxNewTokens = 24 })));
        var term = free.SelectMany(t => t.Split(' ', StringSplitOptions.RemoveEmptyEntries)).Where(w => w.Length >= 3)
            .GroupBy(w => w.ToLowerInvariant()).OrderByDescending(g => g.Count()).First().Key;
        Assert.Contains(free, t => t.Contains(term, StringComparison.OrdinalIgnoreCase));

        for (var seed = 0; seed < 12; seed++)
        {
            var result = await Paraphrase(new { text = Source, candidates = 4, seed, maxNewTokens = 24, avoid = new[] { term.ToUpperInvariant(), "ab" } });
            foreach (var text in Texts(result))
            {
                Assert.DoesNotContain(term, text, StringComparison.OrdinalIgnoreCase);
                Assert.DoesNotContain("ab", text, StringComparison.OrdinalIgnoreCase);
            }
            Assert.Equal(0, result.GetProperty("removed").GetProperty("avoid").GetInt32()); // banned while decoding, not filtered after
            AssertCounted(result);
        }
    }

    [Fact]
    public async Task MaxCharsKeepAndMinSimilarityRemoveAndCount()
    {
        var free = await Paraphrase(new { text = Source, candidates = 6, seed = 3, maxNewTokens = 32 });
        var lengths = Texts(free).Select(t => t.Length).Order().ToList();
        Assert.True(lengths.Count >= 2, "the demo model gave fewer than two distinct candidates");
        var limit = lengths[lengths.Count / 2];

        var limited = await Paraphrase(new { text = Source, candidates = 6, seed = 3, maxNewTokens = 32, maxChars = limit });
        Assert.All(Texts(limited), t => Assert.True(t.Length <= limit, $"'{t}' is longer than {limit}"));
        AssertCounted(limited);

        var word = Texts(free)[0].Split(' ', StringSplitOptions.RemoveEmptyEntries).First(w => w.Length >= 2);
        var kept = await Paraphrase(new { text = Source, candidates = 6, seed = 3, maxNewTokens = 32, keep = new[] { word.ToUpperInvariant() } });
        Assert.NotEmpty(Texts(kept));
        Assert.All(Texts(kept), t => Assert.Contains(word, t, StringComparison.OrdinalIgnoreCase));
        Assert.Equal(Texts(free).Count(t => !t.Contains(word, StringComparison.OrdinalIgnoreCase)), kept.GetProperty("removed").GetProperty("keep").GetInt32());

        // Nothing can pass: the result says so, and it is not an error.
        var none = await Paraphrase(new { text = Source, candidates = 3, seed = 3, maxNewTokens = 16, minSimilarity = 1.0, maxChars = 1 });
        Assert.Empty(Texts(none));
        Assert.StartsWith("No candidate survived", none.GetProperty("note").GetString());
        AssertCounted(none);
    }

    [Fact]
    public async Task OpenAiRoutesStopAtMaxCharsAndNeverWriteAnAvoidedTerm()
    {
        var free = await (await _client.PostAsJsonAsync("/v1/completions", new { prompt = "The weather today is", max_tokens = 24, temperature = 0 })).JsonAsync();
        var text = free.GetProperty("choices")[0].GetProperty("text").GetString()!;
        var limit = text.TrimStart().Length / 2;
        var limited = await (await _client.PostAsJsonAsync("/v1/completions", new { prompt = "The weather today is", max_tokens = 24, temperature = 0, max_chars = limit })).JsonAsync();
        var choice = limited.GetProperty("choices")[0];
        Assert.Equal("length", choice.GetProperty("finish_reason").GetString());
        Assert.Equal(limit, choice.GetProperty("text").GetString()!.TrimStart().Length);
        Assert.StartsWith(choice.GetProperty("text").GetString()!, text);

        var word = text.Split(' ', StringSplitOptions.RemoveEmptyEntries).First(w => w.Length >= 3);
        var avoided = await (await _client.PostAsJsonAsync("/v1/chat/completions", new
        {
            messages = new[] { new { role = "user", content = "The weather today is" } }, max_tokens = 24, avoid = new[] { word }, n = 4, seed = 1,
        })).JsonAsync();
        foreach (var c in avoided.GetProperty("choices").EnumerateArray())
            Assert.DoesNotContain(word, c.GetProperty("message").GetProperty("content").GetString(), StringComparison.OrdinalIgnoreCase);

        var keep = await _client.PostAsJsonAsync("/v1/completions", new { prompt = "x", keep = new[] { "a" } });
        Assert.Contains("/paraphrase", (await keep.AssertProblemAsync(HttpStatusCode.BadRequest)).Errors("keep")[0]);
    }

    [Theory]
    [InlineData("""{"text": "x", "maxChars": 0}""", "maxChars")]
    [InlineData("""{"text": "x", "avoid": [""]}""", "avoid[0]")]
    [InlineData("""{"text": "x", "keep": ["a","b","c","d","e","f","g","h","i","j","k","l","m","n","o","p","q"]}""", "keep")]
    [InlineData("""{"text": "x", "minSimilarity": 2}""", "minSimilarity")]
    [InlineData("""{"text": "x", "avoid": ["\ud800"]}""", "avoid")]
    public async Task BadConstraintsAreNamed(string body, string field)
    {
        var response = await _client.PostAsync("/paraphrase", new StringContent(body, System.Text.Encoding.UTF8, "application/json"));
        var problem = await response.AssertProblemAsync(HttpStatusCode.BadRequest);
        Assert.Contains(problem.GetProperty("errors").EnumerateObject(), e => e.Name.StartsWith(field, StringComparison.Ordinal));
    }
}

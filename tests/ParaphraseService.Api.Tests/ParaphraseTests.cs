using ParaphraseService.Training.Prompts;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using ParaphraseService.Api.Paraphrasing;
using ParaphraseService.Model.Generation;
using ParaphraseService.Model.Loading;
using ParaphraseService.Model.Lora.Peft;

namespace ParaphraseService.Api.Tests;

public class ParaphraseTests
{
    private static readonly Lazy<LoadedModel> s_demo = new(() => DemoModel.Load(new ModelLoadOptions { Device = "cpu", MaxResidentAdapters = 1 }));

    [Fact]
    public async Task OnTheDefaultDemoCandidatesAreItsAdaptersRewritesCutScoredAndSorted()
    {
        const string Input = "The meeting was moved to Friday afternoon .";
        await using var app = new ServiceApplication();
        await app.ModelLoaded();
        using var client = app.CreateClient();
        var response = await client.PostAsJsonAsync("/paraphrase", new { text = Input, candidates = 3, seed = 7 });
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var json = await response.Content.ReadFromJsonAsync<JsonElement>();

        // No adapter named: the demo's built-in paraphrase adapter, in its own template, cut at its end marker; the
        // three candidates decoded together as the scheduler decodes them (matmuls of another batch size may round the
        // last bits of a logit differently, and a sampled token can flip where two tokens' cumulative probabilities meet).
        Assert.Equal(DemoModel.AdapterName, json.GetProperty("adapter").GetString());
        var demo = s_demo.Value;
        var builtIn = demo.BundledAdapter!;
        var adapter = demo.Adapters!.Get(builtIn.Name) ?? demo.Adapters.LoadFolder(builtIn.Folder, builtIn.Name).Adapter;
        var template = PromptTemplate.ForAdapter(AdapterMetadata.Load(Path.Combine(builtIn.Folder, AdapterMetadata.FileName)).PromptTemplate);
        using var batcher = new ContinuousBatcher(demo.Model, demo.Tokenizer, slots: 8, capacity: 512);
        batcher.AdmitGroup(demo.Tokenizer.Encode(template.Render(Input)), Enumerable.Range(0, 3)
            .Select(i => new GenerationOptions { MaxNewTokens = 48, Temperature = 0.8, TopP = 0.95, Seed = 7 + i, StopSequences = [template.EndMarker] })
            .ToList(), adapter);
        var generated = new List<GenerationResult>();
        while (batcher.ActiveCount > 0)
            generated.AddRange(batcher.Step().Where(u => u.Finished).Select(u => u.Result!));
        var expected = generated.Select(r => template.Cut(r.Text)).Where(t => t is not null).ToHashSet();

        var result = json.GetProperty("results")[0];
        var candidates = result.GetProperty("candidates").EnumerateArray().ToList();
        // Real rewrites for this seed: some candidates survive, none is the input again.
        Assert.NotEmpty(candidates);
        Assert.All(candidates, c => Assert.NotEqual(Input, c.GetProperty("text").GetString()?.Trim(), StringComparer.OrdinalIgnoreCase));
        var dropped = result.GetProperty("dropped");
        Assert.Equal(3, candidates.Count + dropped.GetProperty("empty").GetInt32() + dropped.GetProperty("copies").GetInt32() + dropped.GetProperty("duplicates").GetInt32());
        Assert.All(candidates, c => Assert.Contains(c.GetProperty("text").GetString(), expected));
        var scores = candidates.Select(c => c.GetProperty("score").GetSingle()).ToList();
        Assert.Equal(scores.OrderByDescending(s => s), scores);
        Assert.All(candidates, c => Assert.InRange(c.GetProperty("similarity").GetSingle(), -1f, 1f));
        Assert.True(json.GetProperty("demo").GetBoolean());
        Assert.True(json.GetProperty("usage").GetProperty("completionTokens").GetInt32() > 0);
        Assert.True(json.GetProperty("timings").GetProperty("generationMilliseconds").GetDouble() > 0);
    }

    [Fact]
    public async Task StreamSendsTokensThenTheResult()
    {
        await using var app = new ServiceApplication();
        await app.ModelLoaded();
        using var client = app.CreateClient();
        var response = await client.PostAsJsonAsync("/paraphrase", new { texts = new[] { "One.", "Two." }, candidates = 2, maxNewTokens = 6, seed = 1, stream = true });
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var events = (await response.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("event: result", events[^1]);
        var tokens = events[..^1].Select(e => JsonDocument.Parse(e[(e.IndexOf("data: ", StringComparison.Ordinal) + 6)..]).RootElement).ToList();
        Assert.Contains(tokens, t => t.GetProperty("input").GetInt32() == 1);
        var result = JsonDocument.Parse(events[^1][(events[^1].IndexOf("data: ", StringComparison.Ordinal) + 6)..]).RootElement;
        Assert.Equal(2, result.GetProperty("results").GetArrayLength());
    }

    public static TheoryData<string, string, int, string> BadRequests() => new()
    {
        { "application/json", """{"text": ""}""", 400, "text" },
        { "application/json", """{"text": "  \n "}""", 400, "text" },
        { "application/json", """{}""", 400, "text" },
        { "application/json", """{"text": "a", "texts": ["b"]}""", 400, "either" },
        { "application/json", $$"""{"texts": [{{string.Join(",", Enumerable.Repeat("\"x\"", 33))}}]}""", 400, "texts" },
        { "application/json", """{"texts": []}""", 400, "texts" },
        { "application/json", """{"text": "a", "candidates": 0}""", 400, "candidates" },
        { "application/json", """{"text": "a", "candidates": 9}""", 400, "candidates" },
        { "application/json", """{"text": "a", "maxNewTokens": 1000}""", 400, "maxNewTokens" },
        { "application/json", """{"text": "a", "temperature": -1}""", 400, "temperature" },
        { "application/json", """{"text": "a", "topP": 1.5}""", 400, "topP" },
        { "application/json", """{"text": "a", "repetitionPenalty": 5}""", 400, "repetitionPenalty" },
        { "application/json", """{"text": "a", "adapter": "nope"}""", 404, "nope" },
        { "application/json", $$"""{"text": "{{string.Join(" ", Enumerable.Repeat("word", 600))}}"}""", 400, "tokens" },
        { "application/json", """{"text": 5}""", 400, "" },
        { "application/json", """{"text": "a", "candidates": "three"}""", 400, "" },
        { "application/json", """{"text": "unterminated""", 400, "" },
        { "application/json", "{\"text\": \"\xC3\x28\"}", 400, "" },
        { "text/plain", "paraphrase this", 415, "" },
    };

    [Theory, MemberData(nameof(BadRequests))]
    public async Task BadInputGetsA4xxProblem(string mediaType, string body, int status, string mentioned)
    {
        await using var app = new ServiceApplication();
        await app.ModelLoaded();
        using var client = app.CreateClient();
        var content = new ByteArrayContent(Encoding.Latin1.GetBytes(body));
        content.Headers.ContentType = new(mediaType);
        var response = await client.PostAsync("/paraphrase", content);
        Assert.Equal(status, (int)response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains(mentioned, await response.Content.ReadAsStringAsync());
    }
}

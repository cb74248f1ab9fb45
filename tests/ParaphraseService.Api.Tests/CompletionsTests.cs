using System.ClientModel;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using OpenAI;
using ParaphraseService.Api.Scheduling;
using ParaphraseService.Api.Tests.Adapters;
using ParaphraseService.Model.Generation;
using ParaphraseService.Model.Loading;

namespace ParaphraseService.Api.Tests;

public class CompletionsTests
{
    private static readonly Lazy<LoadedModel> s_demo = new(() => DemoModel.Load(new ModelLoadOptions { Device = "cpu" }));

    private static GenerationResult Alone(string prompt, GenerationOptions options) => s_demo.Value.CreateGenerator().Generate(prompt, options);

    [Fact]
    public async Task CompletionsEqualWhatTheModelGeneratesAlone()
    {
        await using var app = new ServiceApplication();
        await app.ModelLoaded();
        using var client = app.CreateClient();

        var response = await client.PostAsJsonAsync("/v1/completions", new { model = "demo", prompt = "Hello world", max_tokens = 6, temperature = 0.9, n = 2, seed = 5 });
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var json = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("text_completion", json.GetProperty("object").GetString());
        var choices = json.GetProperty("choices").EnumerateArray().ToList();
        Assert.Equal(2, choices.Count);
        for (var i = 0; i < 2; i++)
        {
            var expected = Alone("Hello world", new GenerationOptions { MaxNewTokens = 6, Temperature = 0.9, Seed = 5 + i });
            Assert.Equal(expected.Text, choices[i].GetProperty("text").GetString());
            Assert.Equal(i, choices[i].GetProperty("index").GetInt32());
        }
        Assert.Equal(s_demo.Value.Tokenizer.Encode("Hello world").Count, json.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
    }

    [Fact]
    public async Task StreamedPiecesAddUpToTheCompletion()
    {
        await using var app = new ServiceApplication();
        await app.ModelLoaded();
        using var client = app.CreateClient();
        var body = new { prompt = "The quick brown fox", max_tokens = 8, temperature = 0, stream = true };
        var response = await client.PostAsJsonAsync("/v1/completions", body);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var events = (await response.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("data: [DONE]", events[^1]);
        var text = new StringBuilder();
        foreach (var e in events[..^1])
            text.Append(JsonDocument.Parse(e["data: ".Length..]).RootElement.GetProperty("choices")[0].GetProperty("text").GetString());
        var expected = Alone("The quick brown fox", new GenerationOptions { MaxNewTokens = 8, Greedy = true });
        Assert.Equal(expected.Text, text.ToString());
        Assert.True(events.Length > 2); // really streamed in pieces
    }

    [Fact]
    public async Task GreedyDecodingStillAnswersNChoicesIndexedByPromptThenChoice()
    {
        await using var app = new ServiceApplication();
        await app.ModelLoaded();
        using var client = app.CreateClient();
        var hello = Alone("Hello", new GenerationOptions { MaxNewTokens = 4, Greedy = true });
        var world = Alone("World", new GenerationOptions { MaxNewTokens = 4, Greedy = true });

        var one = await (await client.PostAsJsonAsync("/v1/completions", new { prompt = "Hello", max_tokens = 4, n = 3, temperature = 0 })).JsonAsync();
        var choices = one.GetProperty("choices").EnumerateArray().ToList();
        Assert.Equal([0, 1, 2], choices.Select(c => c.GetProperty("index").GetInt32()));
        Assert.All(choices, c => Assert.Equal(hello.Text, c.GetProperty("text").GetString()));
        // Usage counts every choice's tokens, as OpenAI bills them.
        Assert.Equal(3 * hello.GeneratedIds.Count, one.GetProperty("usage").GetProperty("completion_tokens").GetInt32());

        // Choice index = prompt index * n + j, in that order.
        var two = await (await client.PostAsJsonAsync("/v1/completions", new { prompt = new[] { "Hello", "World" }, max_tokens = 4, n = 2, temperature = 0 })).JsonAsync();
        choices = two.GetProperty("choices").EnumerateArray().ToList();
        Assert.Equal([0, 1, 2, 3], choices.Select(c => c.GetProperty("index").GetInt32()));
        Assert.Equal([hello.Text, hello.Text, world.Text, world.Text], choices.Select(c => c.GetProperty("text").GetString()));

        // Streamed: every choice gets every piece and its own finish_reason.
        var body = new { prompt = new[] { "Hello", "World" }, max_tokens = 4, n = 2, temperature = 0, stream = true };
        var events = (await (await client.PostAsJsonAsync("/v1/completions", body)).Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("data: [DONE]", events[^1]);
        var texts = new Dictionary<int, StringBuilder>();
        var finishes = new Dictionary<int, int>();
        foreach (var e in events[..^1])
        {
            var choice = JsonDocument.Parse(e["data: ".Length..]).RootElement.GetProperty("choices").EnumerateArray().Single();
            var index = choice.GetProperty("index").GetInt32();
            (texts.TryGetValue(index, out var text) ? text : texts[index] = new()).Append(choice.GetProperty("text").GetString());
            if (choice.GetProperty("finish_reason").ValueKind == JsonValueKind.String)
                finishes[index] = finishes.GetValueOrDefault(index) + 1;
        }
        Assert.Equal([0, 1, 2, 3], texts.Keys.Order());
        Assert.Equal([hello.Text, hello.Text, world.Text, world.Text], texts.OrderBy(t => t.Key).Select(t => t.Value.ToString()));
        Assert.All(Enumerable.Range(0, 4), i => Assert.Equal(1, finishes.GetValueOrDefault(i)));
    }

    [Fact]
    public async Task OpenAiClientListsTheBaseModel()
    {
        await using var app = new ServiceApplication();
        app.UseKestrel();
        app.StartServer();
        await app.ModelLoaded();
        var openAi = new OpenAIClient(new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = new Uri(app.ClientOptions.BaseAddress, "/v1") });
        var models = (await openAi.GetOpenAIModelClient().GetModelsAsync()).Value;
        Assert.Contains(models, m => m.Id == "demo");
        Assert.Equal("demo", (await openAi.GetOpenAIModelClient().GetModelAsync("demo")).Value.Id);
    }

    [Fact]
    public async Task EveryListedModelCanBeRetrievedAndAnUnknownOneIsModelNotFound()
    {
        const string key = "test-admin-key-0123456789";
        await using var app = new ServiceApplication(new() { ["Admin:ApiKey"] = key });
        await app.ModelLoaded();
        using var client = app.CreateClient();
        client.DefaultRequestHeaders.Add("X-Api-Key", key);
        var folder = DemoAdapters.Write(Path.Combine(Path.GetTempPath(), $"models-adapter-{Guid.NewGuid():N}"), "styled");
        try
        {
            Assert.Equal(HttpStatusCode.Created, (await client.PostAsJsonAsync("/admin/adapters", new { name = "styled", path = folder })).StatusCode);
            var listed = (await (await client.GetAsync("/v1/models")).JsonAsync()).GetProperty("data").EnumerateArray().ToList();
            Assert.Equal(["demo", "paws-demo", "styled"], listed.Select(m => m.GetProperty("id").GetString())); // paws-demo: the built-in adapter
            foreach (var card in listed)
            {
                var model = await (await client.GetAsync($"/v1/models/{card.GetProperty("id").GetString()}")).JsonAsync();
                foreach (var field in new[] { "id", "object", "owned_by" })
                    Assert.Equal(card.GetProperty(field).GetString(), model.GetProperty(field).GetString());
                Assert.InRange(model.GetProperty("created").GetInt64() - card.GetProperty("created").GetInt64(), 0, 60);
            }

            var unknown = await (await client.GetAsync("/v1/models/nope")).AssertProblemAsync(HttpStatusCode.NotFound);
            Assert.Equal("model_not_found", unknown.GetProperty("error").GetProperty("code").GetString());
            Assert.Contains("nope", unknown.GetProperty("error").GetProperty("message").GetString());
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Theory]
    [InlineData("""{"prompt": "x", "n": 0}""", 400, "n")]
    [InlineData("""{"prompt": "x", "n": 9}""", 400, "n")]
    [InlineData("""{"prompt": 42}""", 400, "prompt")]
    [InlineData("""{"prompt": "   "}""", 400, "prompt")]
    [InlineData("""{"prompt": "x", "temperature": 3}""", 400, "temperature")]
    [InlineData("""{"prompt": "x", "top_p": 0}""", 400, "top_p")]
    [InlineData("""{"prompt": "x", "max_tokens": 0}""", 400, "max_tokens")]
    [InlineData("""{"prompt": "x", "stop": ["a", "b", "c", "d", "e"]}""", 400, "stop")]
    [InlineData("""{"prompt": "x", "model": "no-such-adapter"}""", 404, "no-such-adapter")]
    [InlineData("""{"prompt": "x", "max_tokens": 100000}""", 400, "context")]
    [InlineData("""{"prompt": "x",""", 400, "")]
    [InlineData("""{"prompt": "x", "n": "two"}""", 400, "")]
    public async Task BadRequestsGetProblemDetails(string body, int status, string mentioned)
    {
        await using var app = new ServiceApplication();
        await app.ModelLoaded();
        using var client = app.CreateClient();
        var response = await client.PostAsync("/v1/completions", new StringContent(body, Encoding.UTF8, "application/json"));
        Assert.Equal(status, (int)response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains(mentioned, await response.Content.ReadAsStringAsync());
    }

    // OpenAI reads null as absent for every optional field; stream_options.include_obfuscation is OpenAI's too (this
    // service does not pad its chunks, so it asks for nothing here).
    [Theory]
    [InlineData("""{"prompt": "Hello", "max_tokens": 2, "stream": null}""", false)]
    [InlineData("""{"prompt": "Hello", "max_tokens": null, "model": null, "stream": null, "stream_options": null, "n": null, "temperature": null, """ +
        """ "top_p": null, "stop": null, "seed": null, "user": null, "logit_bias": null, "presence_penalty": null, "frequency_penalty": null, """ +
        """ "echo": null, "logprobs": null, "best_of": null, "suffix": null, "top_k": null, "max_chars": null, "avoid": null}""", false)]
    [InlineData("""{"prompt": "Hello", "max_tokens": 2, "stream": true, "stream_options": {"include_usage": null}}""", true)]
    [InlineData("""{"prompt": "Hello", "max_tokens": 2, "stream": true, "stream_options": {"include_usage": true, "include_obfuscation": false}}""", true)]
    [InlineData("""{"prompt": "Hello", "max_tokens": 2, "stream": true, "stream_options": {"include_obfuscation": true}}""", true)]
    public async Task NullIsTheDefaultAndIncludeObfuscationIsAccepted(string body, bool streamed)
    {
        await using var app = new ServiceApplication();
        await app.ModelLoaded();
        using var client = app.CreateClient();
        var response = await client.PostAsync("/v1/completions", new StringContent(body, Encoding.UTF8, "application/json"));
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, text);
        Assert.Equal(streamed ? "text/event-stream" : "application/json", response.Content.Headers.ContentType?.MediaType);
        // A stream ends with usage only when include_usage is true.
        if (streamed)
            Assert.Equal(body.Contains("\"include_usage\": true"), text.Contains("\"usage\":{"));
    }

    [Fact]
    public async Task FullQueueAnswers429AndACancelledRequestFreesItsSlot()
    {
        // The random demo: its context (2048) holds a request long enough to outlast the others.
        await using var app = new ServiceApplication(new()
        {
            ["Model:Source"] = "demo-random",
            ["Scheduler:MaxBatchRows"] = "3",
            ["Scheduler:MaxQueuedRequests"] = "1",
            ["Scheduler:MaxSequenceTokens"] = "2048",
        });
        await app.ModelLoaded();
        using var client = app.CreateClient();
        var queue = app.Services.GetRequiredService<GenerationQueue>();
        var scheduler = app.Services.GetRequiredService<Scheduler>();

        // A: a long streamed request whose three choices take every slot.
        using var cancelA = new CancellationTokenSource();
        var a = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        {
            Content = JsonContent.Create(new { prompt = "a", max_tokens = 2000, n = 3, stream = true, seed = 1 }),
        };
        using var streamA = await client.SendAsync(a, HttpCompletionOption.ResponseHeadersRead, cancelA.Token);
        using var readerA = new StreamReader(await streamA.Content.ReadAsStreamAsync(cancelA.Token));
        Assert.StartsWith("data: ", await readerA.ReadLineAsync(cancelA.Token)); // A is running
        Assert.Equal(3, scheduler.ActiveRows);

        // B waits in the queue (no free slot); C finds the queue full.
        var b = client.PostAsJsonAsync("/v1/completions", new { prompt = "b", max_tokens = 2, temperature = 0 });
        await WaitUntil(() => queue.Count == 1);
        var c = await client.PostAsJsonAsync("/v1/completions", new { prompt = "c", max_tokens = 2 });
        Assert.Equal(HttpStatusCode.TooManyRequests, c.StatusCode);
        Assert.Equal("1", c.Headers.RetryAfter?.ToString());

        // A's client goes away (it stops reading and drops the response, which aborts the request): its rows free
        // and B completes.
        cancelA.Cancel();
        readerA.Dispose();
        streamA.Dispose();
        var bResponse = await b.WaitAsync(TimeSpan.FromMinutes(1));
        Assert.Equal(HttpStatusCode.OK, bResponse.StatusCode);
        await WaitUntil(() => scheduler.ActiveRows == 0);
    }

    [Fact]
    public async Task AFailureAfterTheStreamBeganIsAnErrorEventInOpenAisShape()
    {
        // The random demo: its context (2048) holds a request long enough to be stopped halfway.
        await using var app = new ServiceApplication(new()
        {
            ["Model:Source"] = "demo-random",
            ["Scheduler:MaxSequenceTokens"] = "2048",
            ["Scheduler:RequestTimeoutSeconds"] = "3",
        });
        await app.ModelLoaded();
        using var client = app.CreateClient();
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        {
            Content = JsonContent.Create(new { prompt = "a", max_tokens = 2000, stream = true, seed = 1 }),
        };
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        Assert.StartsWith("data: ", await reader.ReadLineAsync()); // the stream began

        // The scheduler is held between two steps until the request's deadline has passed: it fails mid-stream.
        using var release = new ManualResetEventSlim();
        var held = app.Services.GetRequiredService<ModelThreadCommands>().RunAsync(_ => release.Wait(TimeSpan.FromMinutes(1)));
        try
        {
            // The first line was read above: what is left may start with that event's blank line.
            var events = (await reader.ReadToEndAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            Assert.StartsWith("event: error\ndata: ", events[^1]);
            var error = JsonDocument.Parse(events[^1].Split("data: ", 2)[1]).RootElement.GetProperty("error");
            // As the same failure is answered before a stream begins: a 504 is a server_error with no code.
            Assert.Contains("deadline", error.GetProperty("message").GetString());
            Assert.Equal("server_error", error.GetProperty("type").GetString());
            Assert.Equal(JsonValueKind.Null, error.GetProperty("param").ValueKind);
            Assert.Equal(JsonValueKind.Null, error.GetProperty("code").ValueKind);
        }
        finally
        {
            release.Set();
            await held;
        }
    }

    /// <summary>Polls a condition the service reaches on its own (no fixed sleeps), up to a minute.</summary>
    private static async Task WaitUntil(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddMinutes(1);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not reached in a minute");
            await Task.Yield();
        }
    }
}

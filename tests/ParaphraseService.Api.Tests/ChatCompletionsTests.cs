using System.ClientModel;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using OpenAI;
using OpenAI.Chat;
using ParaphraseService.Api.Tests.Adapters;
using ParaphraseService.Model.Generation;
using ParaphraseService.Model.Loading;
using ParaphraseService.Training.Prompts;
using ChatMessage = OpenAI.Chat.ChatMessage;

namespace ParaphraseService.Api.Tests;

/// <summary>The OpenAI .NET 2.x ChatClient, unchanged but for its endpoint, against the service on a loopback port.</summary>
public sealed class ChatCompletionsTests : IAsyncLifetime
{
    private const string AdminKey = "test-admin-key-0123456789";
    private readonly ServiceApplication _service = new(new() { ["Admin:ApiKey"] = AdminKey });
    private OpenAIClient _openAi = null!;
    private Uri _address = null!;
    private static readonly Lazy<LoadedModel> s_demo = new(() => DemoModel.Load(new ModelLoadOptions { Device = "cpu", MaxResidentAdapters = 1 }));

    public async Task InitializeAsync()
    {
        _address = await _service.StartOnLoopback();
        _openAi = new OpenAIClient(new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = new Uri(_address, "/v1") });
    }

    public async Task DisposeAsync() => await _service.DisposeAsync();

    private static readonly ChatMessage[] s_conversation =
    [
        new SystemChatMessage("You rewrite sentences."),
        new UserChatMessage("Rewrite: the meeting is on Friday."),
    ];

    /// <summary>What the demo model writes alone for the conversation in the documented chat template.</summary>
    private static string Alone(int maxTokens) => s_demo.Value.CreateGenerator().Generate(
        ChatTemplate.Render([new(ChatRole.System, "You rewrite sentences."), new(ChatRole.User, "Rewrite: the meeting is on Friday.")]),
        new GenerationOptions { Greedy = true, MaxNewTokens = maxTokens, StopSequences = ChatTemplate.StopSequences }).Text.TrimStart();

    [Fact]
    public async Task ACompletionIsTheModelsContinuationOfTheChatTemplate()
    {
        var chat = _openAi.GetChatClient("demo");
        var completion = (await chat.CompleteChatAsync(s_conversation, new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 8 })).Value;
        Assert.Equal(ChatMessageRole.Assistant, completion.Role);
        Assert.Equal(Alone(8), completion.Content.Single().Text);
        Assert.True(completion.FinishReason is ChatFinishReason.Length or ChatFinishReason.Stop);
        Assert.True(completion.Usage.InputTokenCount > 10);
        Assert.InRange(completion.Usage.OutputTokenCount, 1, 8);
    }

    [Fact]
    public async Task AStreamedCompletionAddsUpToTheSameText()
    {
        var chat = _openAi.GetChatClient("demo");
        var text = new StringBuilder();
        ChatTokenUsage? usage = null;
        ChatFinishReason? finish = null;
        await foreach (var update in chat.CompleteChatStreamingAsync(s_conversation, new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 8 }))
        {
            foreach (var part in update.ContentUpdate) text.Append(part.Text);
            usage ??= update.Usage;
            finish ??= update.FinishReason;
        }
        Assert.Equal(Alone(8), text.ToString());
        Assert.NotNull(finish);
        Assert.NotNull(usage);
    }

    [Fact]
    public async Task SeveralChoicesEachSeededAsTheCompletionsRouteSeedsThem()
    {
        using var http = new HttpClient { BaseAddress = _address };
        var response = await http.PostAsJsonAsync("/v1/chat/completions", new
        {
            model = "demo", n = 3, seed = 11, temperature = 0.9, max_tokens = 6,
            messages = new[] { new { role = "user", content = "Say something." } },
        });
        var json = await response.JsonAsync();
        var choices = json.GetProperty("choices").EnumerateArray().ToList();
        Assert.Equal([0, 1, 2], choices.Select(c => c.GetProperty("index").GetInt32()));
        var prompt = ChatTemplate.Render([new(ChatRole.User, "Say something.")]);
        for (var i = 0; i < 3; i++)
        {
            var expected = s_demo.Value.CreateGenerator().Generate(prompt, new GenerationOptions
            {
                MaxNewTokens = 6, Temperature = 0.9, Seed = 11 + i, StopSequences = ChatTemplate.StopSequences,
            }).Text.TrimStart();
            Assert.Equal(expected, choices[i].GetProperty("message").GetProperty("content").GetString());
        }
    }

    [Fact]
    public async Task GreedyDecodingStillAnswersNChoicesStreamedOrNot()
    {
        using var http = new HttpClient { BaseAddress = _address };
        var body = new
        {
            model = "demo", n = 3, temperature = 0, max_tokens = 8,
            messages = new object[] { new { role = "system", content = "You rewrite sentences." }, new { role = "user", content = "Rewrite: the meeting is on Friday." } },
        };
        var json = await (await http.PostAsJsonAsync("/v1/chat/completions", body)).JsonAsync();
        var choices = json.GetProperty("choices").EnumerateArray().ToList();
        Assert.Equal([0, 1, 2], choices.Select(c => c.GetProperty("index").GetInt32()));
        Assert.All(choices, c => Assert.Equal(Alone(8), c.GetProperty("message").GetProperty("content").GetString()));

        var events = (await (await http.PostAsJsonAsync("/v1/chat/completions", new { body.model, body.n, body.temperature, body.max_tokens, body.messages, stream = true }))
            .Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("data: [DONE]", events[^1]);
        var texts = new Dictionary<int, StringBuilder>();
        var roles = new Dictionary<int, int>();
        foreach (var e in events[..^1])
        {
            var choice = System.Text.Json.JsonDocument.Parse(e["data: ".Length..]).RootElement.GetProperty("choices").EnumerateArray().Single();
            var index = choice.GetProperty("index").GetInt32();
            var delta = choice.GetProperty("delta");
            if (delta.TryGetProperty("role", out _)) roles[index] = roles.GetValueOrDefault(index) + 1;
            if (delta.TryGetProperty("content", out var content))
                (texts.TryGetValue(index, out var text) ? text : texts[index] = new()).Append(content.GetString());
        }
        Assert.Equal([0, 1, 2], texts.Keys.Order());
        Assert.All(texts.Values, t => Assert.Equal(Alone(8), t.ToString()));
        Assert.All(Enumerable.Range(0, 3), i => Assert.Equal(1, roles.GetValueOrDefault(i)));
    }

    [Fact]
    public async Task AnAdapterAsModelAnswersTheLastUserMessageThroughItsPromptTemplate()
    {
        var folder = DemoAdapters.Write(Path.Combine(Path.GetTempPath(), $"chat-adapter-{Guid.NewGuid():N}"), "styled");
        try
        {
            using var http = new HttpClient { BaseAddress = _address };
            http.DefaultRequestHeaders.Add("X-Api-Key", AdminKey);
            Assert.Equal(HttpStatusCode.Created, (await http.PostAsJsonAsync("/admin/adapters", new { name = "styled", path = folder })).StatusCode);

            var completion = (await _openAi.GetChatClient("styled").CompleteChatAsync(
                [new SystemChatMessage("Not part of an adapter's prompt."), new UserChatMessage("The meeting is on Friday.")],
                new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 8 })).Value;

            var adapter = s_demo.Value.Adapters!.LoadFolder(folder, "styled").Adapter;
            var template = PromptTemplate.FineTuneDefault;
            var expected = s_demo.Value.CreateGenerator().Generate(template.Render("The meeting is on Friday."),
                new GenerationOptions { Greedy = true, MaxNewTokens = 8, StopSequences = [template.EndMarker] }, adapter: adapter).Text.TrimStart();
            Assert.Equal(expected, completion.Content.Single().Text);
            Assert.Equal("styled", completion.Model);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public async Task NullIsTheDefaultForEveryOptionalField()
    {
        using var http = new HttpClient { BaseAddress = _address };
        const string body = """
            {"model": null, "messages": [{"role": "user", "content": "Hi", "name": null, "refusal": null, "tool_calls": null}], "max_tokens": 2,
             "max_completion_tokens": null, "stream": null, "stream_options": null, "n": null, "temperature": null, "top_p": null, "stop": null,
             "seed": null, "user": null, "metadata": null, "store": null, "logprobs": null, "top_logprobs": null, "response_format": null,
             "modalities": null, "tools": null, "tool_choice": null, "parallel_tool_calls": null, "audio": null, "prediction": null,
             "reasoning_effort": null, "verbosity": null, "service_tier": null, "logit_bias": null}
            """;
        var json = await (await http.PostAsync("/v1/chat/completions", new StringContent(body, Encoding.UTF8, "application/json"))).JsonAsync();
        Assert.Equal("chat.completion", json.GetProperty("object").GetString());

        var streamed = await http.PostAsync("/v1/chat/completions", new StringContent(
            """{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2, "stream": true, "stream_options": {"include_usage": true, "include_obfuscation": false}}""",
            Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, streamed.StatusCode);
        Assert.Contains("\"usage\":{", await streamed.Content.ReadAsStringAsync());
    }

    // OpenAI accepts an empty message. Only a prompt with nothing to answer is refused: an adapter (paws-demo, the demo
    // model's built-in one) answers the last user message alone.
    [Theory]
    [InlineData("""{"model": "demo", "messages": [{"role": "system", "content": ""}, {"role": "assistant", "content": ""}, {"role": "user", "content": "Hi"}]}""", null)]
    [InlineData("""{"model": "demo", "messages": [{"role": "developer", "content": " "}, {"role": "user", "content": [{"type": "text", "text": ""}]}]}""", null)]
    [InlineData("""{"model": "demo", "messages": [{"role": "user", "content": ""}]}""", null)]
    [InlineData("""{"model": "paws-demo", "messages": [{"role": "system", "content": ""}, {"role": "user", "content": "Hi there."}]}""", null)]
    [InlineData("""{"model": "paws-demo", "messages": [{"role": "user", "content": "Hi there."}, {"role": "user", "content": " "}]}""", "messages[1].content")]
    public async Task EmptyMessagesAreAcceptedUnlessNothingIsLeftToAnswer(string body, string? refused)
    {
        using var http = new HttpClient { BaseAddress = _address };
        var response = await http.PostAsync("/v1/chat/completions", new StringContent(body.Insert(1, "\"max_tokens\": 2, "), Encoding.UTF8, "application/json"));
        if (refused is null)
        {
            Assert.Equal("chat.completion", (await response.JsonAsync()).GetProperty("object").GetString());
            return;
        }
        var problem = await response.AssertProblemAsync(HttpStatusCode.BadRequest);
        Assert.Equal(refused, problem.GetProperty("error").GetProperty("param").GetString());
        Assert.Contains("adapter", problem.Errors(refused).Single());
    }

    // The base model reads the whole conversation; an adapter (paws-demo, built in) only the last user message.
    [Theory]
    [InlineData("""{"model": "demo", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], "max_tokens": 100000}""",
        "messages", "max_tokens")]
    [InlineData("""{"model": "demo", "messages": [{"role": "user", "content": "Hi"}], "max_completion_tokens": 100000}""",
        "messages", "max_completion_tokens")]
    [InlineData("""{"model": "paws-demo", "messages": [{"role": "system", "content": "x"}, {"role": "user", "content": "Hi there."}], "max_tokens": 100000}""",
        "messages[1].content", "max_tokens")]
    public async Task APromptTooLongNamesWhatTheModelReads(string body, string param, string limit)
    {
        using var http = new HttpClient { BaseAddress = _address };
        var response = await http.PostAsync("/v1/chat/completions", new StringContent(body, Encoding.UTF8, "application/json"));
        var problem = await response.AssertProblemAsync(HttpStatusCode.BadRequest);
        Assert.Equal(param, problem.GetProperty("error").GetProperty("param").GetString());
        Assert.Contains($"with {limit} 100000 it exceeds the context", problem.Errors(param).Single());
    }

    [Theory]
    [InlineData("""{"model": "demo", "messages": [{"role": "user", "content": "Hi"}], "tools": [{"type": "function", "function": {"name": "f"}}]}""", "tools")]
    [InlineData("""{"model": "demo", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x"}}]}]}""", "messages[0].content[0].type")]
    [InlineData("""{"model": "demo", "messages": [{"role": "tool", "content": "42", "tool_call_id": "t"}]}""", "messages[0].role")]
    [InlineData("""{"model": "demo", "messages": [{"role": "user", "content": "Hi"}], "logprobs": true}""", "logprobs")]
    [InlineData("""{"model": "demo", "messages": [{"role": "user", "content": "Hi"}], "response_format": {"type": "json_object"}}""", "response_format")]
    [InlineData("""{"model": "demo", "messages": [{"role": "assistant", "content": "Hi"}]}""", "messages[0]")]
    [InlineData("""{"model": "demo", "messages": []}""", "messages")]
    [InlineData("""{"model": "demo", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, "max_completion_tokens": 5}""", "max_completion_tokens")]
    [InlineData("""{"model": "demo", "messages": [{"role": "user", "content": "Hi"}], "max_completion_tokens": 0}""", "max_completion_tokens")]
    [InlineData("""{"model": "demo", "messages": [{"role": "user", "content": "Hi"}], "frobnicate": 1}""", "frobnicate")]
    [InlineData("""{"model": "demo", "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi", "cache": true}]}]}""", "messages[0].content[0].cache")]
    [InlineData("""{"model": "demo", "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}, {"text": "x"}]}]}""", "messages[0].content[1]")]
    public async Task UnsupportedFieldsAreRefusedInOpenAisErrorShape(string body, string field)
    {
        using var http = new HttpClient { BaseAddress = _address };
        var response = await http.PostAsync("/v1/chat/completions", new StringContent(body, Encoding.UTF8, "application/json"));
        var problem = await response.AssertProblemAsync(HttpStatusCode.BadRequest);
        Assert.NotEmpty(problem.Errors(field));
        var error = problem.GetProperty("error");
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal(field, error.GetProperty("param").GetString());
    }

    [Fact]
    public async Task TheOpenAiClientSeesARefusalAsAnOpenAiError()
    {
        var chat = _openAi.GetChatClient("no-such-adapter");
        var error = await Assert.ThrowsAsync<ClientResultException>(() => chat.CompleteChatAsync(s_conversation));
        Assert.Equal(404, error.Status);
        Assert.Contains("no-such-adapter", error.Message);
    }
}

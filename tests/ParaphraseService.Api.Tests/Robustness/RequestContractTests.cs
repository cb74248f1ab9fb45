using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using ParaphraseService.Api.Tests.Adapters;

namespace ParaphraseService.Api.Tests.Robustness;

/// <summary>
/// One contract for /paraphrase and /v1/completions: every field checked before anything is queued, by the same rules
/// on both routes, and every refusal a ProblemDetails that names the field. The demo model serves them.
/// </summary>
public sealed class RequestContractTests : IAsyncLifetime
{
    private readonly ServiceApplication _app = new(new() { ["Admin:ApiKey"] = "test-admin-key-0123456789" });
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

    private Task<HttpResponseMessage> Post(string path, string json) =>
        _client.PostAsync(path, new StringContent(json, Encoding.UTF8, "application/json"));

    // The sampling values that made the sampler produce NaN probabilities before: extreme but finite.
    [Theory]
    [InlineData("/paraphrase", """{"text": "The cat sat on the mat.", "temperature": 1e-300, "seed": 1, "maxNewTokens": 4}""")]
    [InlineData("/paraphrase", """{"text": "The cat sat on the mat.", "temperature": 5e-324, "topP": 5e-324, "seed": 1, "maxNewTokens": 4}""")]
    [InlineData("/paraphrase", """{"text": "The cat sat on the mat.", "temperature": 2, "topK": 2147483647, "repetitionPenalty": 2, "seed": -9223372036854775808, "maxNewTokens": 4}""")]
    [InlineData("/v1/completions", """{"prompt": "Hello", "temperature": 1e-300, "max_tokens": 4, "seed": 1}""")]
    [InlineData("/v1/completions", """{"prompt": "Hello", "temperature": 1e-5, "top_p": 1e-300, "max_tokens": 4, "n": 8, "seed": 9223372036854775807}""")]
    [InlineData("/v1/completions", """{"prompt": "Hello", "temperature": 2, "max_tokens": 4, "stream": true, "seed": 3}""")]
    public async Task ExtremeButValidSamplingIsServed(string path, string json)
    {
        var response = await Post(path, json);
        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        await response.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.OK, (await _client.GetAsync("/health/ready")).StatusCode);
    }

    [Theory]
    [InlineData("/paraphrase", """{"text": "x", "temperature": -0.5}""", "temperature")]
    [InlineData("/paraphrase", """{"text": "x", "temperature": 1e308}""", "temperature")]
    [InlineData("/paraphrase", """{"text": "x", "temperature": "NaN"}""", "temperature")]
    [InlineData("/paraphrase", """{"text": "x", "temperature": "Infinity"}""", "temperature")]
    [InlineData("/paraphrase", """{"text": "x", "temperature": "hot"}""", "temperature")]
    [InlineData("/paraphrase", """{"text": "x", "topP": 0}""", "topP")]
    [InlineData("/paraphrase", """{"text": "x", "topK": -1}""", "topK")]
    [InlineData("/paraphrase", """{"text": "x", "repetitionPenalty": 0.5}""", "repetitionPenalty")]
    [InlineData("/paraphrase", """{"text": "x", "candidates": 10000000000}""", "candidates")]
    [InlineData("/paraphrase", """{"text": "x", "candidates": 9}""", "candidates")]
    [InlineData("/paraphrase", """{"text": "x", "maxNewTokens": 0}""", "maxNewTokens")]
    [InlineData("/paraphrase", """{"text": "x", "seed": 18446744073709551616}""", "seed")]
    [InlineData("/paraphrase", """{"text": "x", "seed": 1.5}""", "seed")]
    [InlineData("/paraphrase", """{"text": "x", "stream": "yes"}""", "stream")]
    [InlineData("/paraphrase", """{"text": "x", "candidates": "1"}""", "candidates")]
    [InlineData("/paraphrase", """{"text": "x", "temperature": "0.5"}""", "temperature")]
    [InlineData("/paraphrase", """{"text": "x", "maxNewTokens": "4"}""", "maxNewTokens")]
    [InlineData("/paraphrase", """{"text": 42}""", "text")]
    [InlineData("/paraphrase", """{"texts": ["a", null]}""", "texts[1]")]
    [InlineData("/paraphrase", """{"texts": ["a", "  "]}""", "texts[1]")]
    [InlineData("/paraphrase", """{"texts": []}""", "texts")]
    [InlineData("/paraphrase", """{"text": "\ud800 alone"}""", "text")]
    [InlineData("/paraphrase", """{"text": "x", "tempreature": 0.5}""", "tempreature")]
    [InlineData("/v1/completions", """{"prompt": "x", "temperature": -1}""", "temperature")]
    [InlineData("/v1/completions", """{"prompt": "x", "top_p": 1.5}""", "top_p")]
    [InlineData("/v1/completions", """{"prompt": "x", "n": 0}""", "n")]
    [InlineData("/v1/completions", """{"prompt": "x", "max_tokens": -5}""", "max_tokens")]
    [InlineData("/v1/completions", """{"prompt": "x", "max_tokens": 2147483647}""", "max_tokens")]
    [InlineData("/v1/completions", """{"prompt": "x", "stop": ["a", "b", "c", "d", "e"]}""", "stop")]
    [InlineData("/v1/completions", """{"prompt": "x", "stop": ""}""", "stop")]
    [InlineData("/v1/completions", """{"prompt": [1, 2, 3]}""", "prompt")]
    [InlineData("/v1/completions", """{"prompt": "\udc00"}""", "prompt")]
    [InlineData("/v1/completions", """{"prompt": "x", "echo": true}""", "echo")]
    [InlineData("/v1/completions", """{"prompt": "x", "logprobs": 2}""", "logprobs")]
    [InlineData("/v1/completions", """{"prompt": "x", "presence_penalty": 0.5}""", "presence_penalty")]
    [InlineData("/v1/completions", """{"prompt": "x", "stream_options": {"include_usage": true}}""", "stream_options")]
    [InlineData("/v1/completions", """{"prompt": "x", "tools": []}""", "tools")]
    [InlineData("/v1/completions", """{"prompt": "x", "stream_options": {"include_usage": true, "x": 1}, "stream": true}""", "stream_options.x")]
    public async Task EveryBadFieldIsA400ThatNamesIt(string path, string json, string field)
    {
        var problem = await (await Post(path, json)).AssertProblemAsync(HttpStatusCode.BadRequest);
        Assert.NotEmpty(problem.Errors(field));
        Assert.Contains(field, problem.Detail());
        Assert.Equal(0, _app.Services.GetRequiredService<Api.Scheduling.GenerationQueue>().Count);
    }

    // A field is refused once, for its real problem: not also for what the refusal left behind (an empty stop, an empty message).
    [Theory]
    [InlineData("/v1/completions", """{"prompt": "x", "stop": "\ud800"}""", "stop")]
    [InlineData("/v1/completions", """{"prompt": "x", "stop": ["a", "\ud800"]}""", "stop[1]")]
    [InlineData("/v1/chat/completions", """{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x"}}]}]}""", "messages[0].content[0].type")]
    [InlineData("/v1/chat/completions", """{"messages": [{"role": "user", "content": [{"type": "text", "text": "\ud800"}]}]}""", "messages[0].content[0].text")]
    [InlineData("/v1/chat/completions", """{"model": "paws-demo", "messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}""", "messages[0].content[0].type")]
    public async Task AFieldIsRefusedOnceForItsRealProblem(string path, string json, string field)
    {
        var problem = await (await Post(path, json)).AssertProblemAsync(HttpStatusCode.BadRequest);
        var errors = problem.GetProperty("errors").EnumerateObject().ToList();
        Assert.Equal([field], errors.Select(e => e.Name));
        Assert.Single(errors[0].Value.EnumerateArray());
    }

    // OpenAI refuses a number sent as a string as it refuses a boolean sent as one.
    [Theory]
    [InlineData("/v1/completions", """{"prompt": "x", "max_tokens": "2"}""", "max_tokens", "must be an integer")]
    [InlineData("/v1/completions", """{"prompt": "x", "temperature": "0.5"}""", "temperature", "must be a number")]
    [InlineData("/v1/completions", """{"prompt": "x", "n": "2"}""", "n", "must be an integer")]
    [InlineData("/v1/completions", """{"prompt": "x", "seed": "1"}""", "seed", "must be an integer")]
    [InlineData("/v1/completions", """{"prompt": "x", "stream": "false"}""", "stream", "must be true or false")]
    [InlineData("/v1/chat/completions", """{"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": "2"}""", "max_completion_tokens", "must be an integer")]
    [InlineData("/v1/chat/completions", """{"messages": [{"role": "user", "content": "x"}], "top_p": "1"}""", "top_p", "must be a number")]
    public async Task AValueOfTheWrongTypeIsA400ThatSaysWhatTheFieldTakes(string path, string json, string field, string reason)
    {
        var problem = await (await Post(path, json)).AssertProblemAsync(HttpStatusCode.BadRequest);
        Assert.StartsWith(reason, problem.Errors(field).Single());
        Assert.Equal(field, problem.GetProperty("error").GetProperty("param").GetString());
    }

    // Every field of /paraphrase's request, a positional record (the serializer names the record, not the field's type, when
    // one of its fields has the wrong type), and the OpenAI requests' fields of record types say what they take.
    [Theory]
    [InlineData("/paraphrase", """{"text": 5}""", "text", "a string")]
    [InlineData("/paraphrase", """{"texts": "abc"}""", "texts", "an array of strings")]
    [InlineData("/paraphrase", """{"text": "x", "adapter": 5}""", "adapter", "a string")]
    [InlineData("/paraphrase", """{"text": "x", "candidates": "x"}""", "candidates", "an integer in [-2147483648, 2147483647]")]
    [InlineData("/paraphrase", """{"text": "x", "candidates": null}""", "candidates", "an integer in [-2147483648, 2147483647]")]
    [InlineData("/paraphrase", """{"text": "x", "maxNewTokens": true}""", "maxNewTokens", "an integer in [-2147483648, 2147483647]")]
    [InlineData("/paraphrase", """{"text": "x", "temperature": false}""", "temperature", "a number")]
    [InlineData("/paraphrase", """{"text": "x", "topP": [1]}""", "topP", "a number")]
    [InlineData("/paraphrase", """{"text": "x", "topK": 1.5}""", "topK", "an integer in [-2147483648, 2147483647]")]
    [InlineData("/paraphrase", """{"text": "x", "repetitionPenalty": {}}""", "repetitionPenalty", "a number")]
    [InlineData("/paraphrase", """{"text": "x", "seed": true}""", "seed", "an integer in [-9223372036854775808, 9223372036854775807]")]
    [InlineData("/paraphrase", """{"text": "x", "stream": 1}""", "stream", "true or false")]
    [InlineData("/paraphrase", """{"text": "x", "maxChars": "10"}""", "maxChars", "an integer in [-2147483648, 2147483647]")]
    [InlineData("/paraphrase", """{"text": "x", "keep": "x"}""", "keep", "an array of strings")]
    [InlineData("/paraphrase", """{"text": "x", "avoid": {}}""", "avoid", "an array of strings")]
    [InlineData("/paraphrase", """{"text": "x", "minSimilarity": "0.5"}""", "minSimilarity", "a number")]
    [InlineData("/paraphrase", """{"text": "x", "speculation": 0}""", "speculation", "true or false")]
    [InlineData("/paraphrase", """{"text": "x", "useDefaultAdapter": "no"}""", "useDefaultAdapter", "true or false")]
    [InlineData("/paraphrase", "\"x\"", "$", "an object")]
    [InlineData("/v1/completions", """{"prompt": "x", "stream": true, "stream_options": {"include_usage": "yes"}}""", "stream_options.include_usage", "true or false")]
    [InlineData("/v1/completions", """{"prompt": "x", "stream": true, "stream_options": {"include_obfuscation": 1}}""", "stream_options.include_obfuscation", "true or false")]
    [InlineData("/v1/completions", """{"prompt": "x", "stream": true, "stream_options": 5}""", "stream_options", "an object")]
    [InlineData("/v1/completions", """{"prompt": "x", "avoid": "x"}""", "avoid", "an array of strings")]
    [InlineData("/v1/chat/completions", """{"messages": "x"}""", "messages", "an array of objects")]
    [InlineData("/v1/chat/completions", """{"messages": [5]}""", "messages[0]", "an object")]
    [InlineData("/v1/chat/completions", """{"messages": [{"role": "user", "content": "x"}], "modalities": "text"}""", "modalities", "an array of strings")]
    public async Task AFieldOfTheWrongTypeSaysWhatTypeItTakes(string path, string json, string field, string expected)
    {
        var problem = await (await Post(path, json)).AssertProblemAsync(HttpStatusCode.BadRequest);
        var reason = $"must be {expected}.";
        Assert.Equal("Invalid request", problem.GetProperty("title").GetString());
        Assert.Equal([reason], problem.Errors(field));
        Assert.Equal(field == "$" ? reason : $"{field}: {reason}", problem.Detail());
        if (path.StartsWith("/v1", StringComparison.Ordinal))
        {
            var error = problem.GetProperty("error");
            Assert.Equal(problem.Detail(), error.GetProperty("message").GetString());
            Assert.Equal(field, error.GetProperty("param").GetString());
            Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        }
    }

    // The framework refuses a type it can read (text/plain) before the handler; one that does not parse, or none, reaches
    // the body reader, which refuses it too. Either way the answer is one 415.
    [Theory]
    [InlineData("/paraphrase", ";;;")]
    [InlineData("/v1/completions", ";;;")]
    [InlineData("/v1/chat/completions", ";;;")]
    [InlineData("/paraphrase", null)]
    [InlineData("/v1/chat/completions", null)]
    [InlineData("/paraphrase", "text/")]
    [InlineData("/v1/completions", "text/plain")]
    public async Task ABodyThatIsNotSentAsJsonIsA415SayingWhatTheEndpointReads(string path, string? contentType)
    {
        var content = new ByteArrayContent("""{"text": "a", "prompt": "a"}"""u8.ToArray());
        if (contentType is not null)
            Assert.True(content.Headers.TryAddWithoutValidation("Content-Type", contentType));
        var problem = await (await _client.PostAsync(path, content)).AssertProblemAsync(HttpStatusCode.UnsupportedMediaType);
        Assert.Equal("Unsupported Media Type", problem.GetProperty("title").GetString());
        var sent = contentType is null ? "no Content-Type was sent" : $"got '{contentType}'";
        Assert.Equal($"This endpoint reads JSON: send the body with Content-Type: application/json ({sent}).", problem.Detail());
        if (path.StartsWith("/v1", StringComparison.Ordinal))
        {
            var error = problem.GetProperty("error");
            Assert.Equal(problem.Detail(), error.GetProperty("message").GetString());
            Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
            Assert.Equal(JsonValueKind.Null, error.GetProperty("param").ValueKind);
            Assert.Equal(JsonValueKind.Null, error.GetProperty("code").ValueKind);
        }
        else
            Assert.False(problem.TryGetProperty("error", out _));
    }

    [Theory]
    [InlineData("/paraphrase")]
    [InlineData("/v1/completions")]
    public async Task BodiesThatAreNotJsonObjectsAre400s(string path)
    {
        foreach (var body in new[] { "", "{", "[]", "null", "\"text\"", "{\"text\": \"a\"} trailing", new string('[', 100) })
        {
            var problem = await (await Post(path, body)).AssertProblemAsync(HttpStatusCode.BadRequest);
            Assert.False(string.IsNullOrWhiteSpace(problem.Detail()), body);
        }
        // Invalid UTF-8: a bare continuation byte inside a string.
        var bytes = new ByteArrayContent([.. "{\"text\": \"a"u8, 0x80, .. "b\"}"u8]);
        bytes.Headers.ContentType = new("application/json");
        await (await _client.PostAsync(path, bytes)).AssertProblemAsync(HttpStatusCode.BadRequest);
    }

    [Theory]
    [InlineData("""{"text": "Hello there.", "adapter": "../../etc/passwd"}""", false)]
    [InlineData("""{"text": "Hello there.", "adapter": "UPPER"}""", false)]
    [InlineData("""{"text": "Hello there.", "adapter": "a\u0000b"}""", false)]
    [InlineData("""{"text": "Hello there.", "adapter": "a\ud800"}""", false)]
    [InlineData("""{"text": "Hello there.", "adapter": "no-such-adapter"}""", true)]
    public async Task AdapterNamesOnParaphraseAre400WhenInvalidAnd404WhenUnknownStreamingIncluded(string json, bool valid)
    {
        foreach (var stream in new[] { false, true })
        {
            var body = json.Insert(1, $"\"stream\": {(stream ? "true" : "false")}, ");
            var problem = await (await Post("/paraphrase", body)).AssertProblemAsync(valid ? HttpStatusCode.NotFound : HttpStatusCode.BadRequest);
            Assert.NotEmpty(problem.Errors("adapter"));
        }
    }

    // OpenAI has no malformed model names, only models it does not serve: 404 model_not_found, on both routes.
    [Theory]
    [InlineData("../x")]
    [InlineData("GPT-4")]
    [InlineData("DEMO")]
    [InlineData("a b")]
    [InlineData("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")]
    [InlineData("gpt-3.5-turbo")]
    public async Task OpenAiModelsNotServedAre404ModelNotFoundStreamingIncluded(string model)
    {
        foreach (var (path, stream) in new[] { ("/v1/completions", false), ("/v1/completions", true), ("/v1/chat/completions", false), ("/v1/chat/completions", true) })
        {
            var response = path == "/v1/completions"
                ? await _client.PostAsJsonAsync(path, new { model, prompt = "Hello", max_tokens = 2, stream })
                : await _client.PostAsJsonAsync(path, new { model, messages = new[] { new { role = "user", content = "Hello" } }, max_tokens = 2, stream });
            var problem = await response.AssertProblemAsync(HttpStatusCode.NotFound);
            Assert.NotEmpty(problem.Errors("model"));
            // The same body is an OpenAI error for OpenAI clients.
            var error = problem.GetProperty("error");
            Assert.Equal("model", error.GetProperty("param").GetString());
            Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
            Assert.Equal("model_not_found", error.GetProperty("code").GetString());
            Assert.Contains(RequestRulesQuote(model), error.GetProperty("message").GetString());
        }
    }

    private static string RequestRulesQuote(string value) => Api.Requests.RequestRules.Quote(value);

    [Fact]
    public async Task AModelThatIsNotAStringIsA400()
    {
        var problem = await (await Post("/v1/completions", """{"model": 42, "prompt": "Hello"}""")).AssertProblemAsync(HttpStatusCode.BadRequest);
        Assert.Equal("model", problem.GetProperty("error").GetProperty("param").GetString());
        Assert.Equal(JsonValueKind.Null, problem.GetProperty("error").GetProperty("code").ValueKind);
    }

    // OpenAI answers a path it does not serve with code null, not model_not_found.
    [Theory]
    [InlineData("GET", "/v1/files")]
    [InlineData("POST", "/v1/embeddings")]
    [InlineData("GET", "/v1")]
    public async Task AnUnknownV1RouteIsInvalidUrlWithNoCode(string method, string path)
    {
        var problem = await (await _client.SendAsync(new HttpRequestMessage(new HttpMethod(method), path))).AssertProblemAsync(HttpStatusCode.NotFound);
        var error = problem.GetProperty("error");
        Assert.Equal($"Invalid URL ({method} {path})", error.GetProperty("message").GetString());
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal(JsonValueKind.Null, error.GetProperty("code").ValueKind);
        Assert.Equal(JsonValueKind.Null, error.GetProperty("param").ValueKind);
    }

    [Theory]
    [InlineData("GET", "/adapters/{0}")]
    [InlineData("DELETE", "/admin/adapters/{0}")]
    [InlineData("POST", "/admin/adapters/{0}/load")]
    [InlineData("POST", "/admin/adapters/{0}/unload")]
    public async Task InvalidAdapterNamesAre400OnEveryVerb(string method, string route)
    {
        foreach (var name in new[] { "UPPER", "a%20b", "x%01y", "%ED%A0%80", new string('a', 65) })
        {
            var request = new HttpRequestMessage(new HttpMethod(method), string.Format(route, name));
            request.Headers.Add("X-Api-Key", "test-admin-key-0123456789");
            var problem = await (await _client.SendAsync(request)).AssertProblemAsync(HttpStatusCode.BadRequest);
            Assert.NotEmpty(problem.Errors("name"));
        }
        var unknown = new HttpRequestMessage(new HttpMethod(method), string.Format(route, "valid-but-unknown"));
        unknown.Headers.Add("X-Api-Key", "test-admin-key-0123456789");
        await (await _client.SendAsync(unknown)).AssertProblemAsync(HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task SeedsUseAllSixtyFourBits()
    {
        async Task<string> Complete(long seed)
        {
            var response = await _client.PostAsJsonAsync("/v1/completions", new { prompt = "Once upon a time", max_tokens = 12, temperature = 1.0, seed });
            return (await response.JsonAsync()).GetProperty("choices")[0].GetProperty("text").GetString()!;
        }
        // LibTorch's CPU generator keeps only the low 32 bits of a seed: these two used to give the same text.
        const long seed = 12345;
        var low = await Complete(seed);
        Assert.Equal(low, await Complete(seed));
        Assert.NotEqual(low, await Complete(seed + (1L << 32)));
        Assert.NotEqual(low, await Complete(seed | long.MinValue));
    }
}

using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using CsCheck;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using ParaphraseService.Api.Batches;
using ParaphraseService.Api.Scheduling;
using ParaphraseService.Api.Tests.Adapters;
using Xunit.Abstractions;

namespace ParaphraseService.Api.Tests.Robustness;

/// <summary>
/// Generated requests, mostly plausible with hostile values mixed in, over every public and admin route of the real
/// service (the demo model, real HTTP on loopback, several clients at once, some disconnecting mid-way). Properties:
/// no response is a 5xx (the service records every final status, those of abandoned requests too), every 4xx is a
/// ProblemDetails that names a field or a reason, and afterwards the process is up and ready with an empty queue.
/// A seeded run of <see cref="DefaultCases"/> cases in CI; PARAPHRASE_FUZZ_CASES and PARAPHRASE_FUZZ_SEED run longer
/// or other ones (a failure prints the seed that reproduces it, shrunk by CsCheck).
/// </summary>
public sealed class ApiFuzzTests(ITestOutputHelper output)
{
    private const int DefaultCases = 2000;
    private const string DefaultSeed = "0N0XIzNsQ0O2";
    private const string Adapter = "fuzz-adapter";

    [Fact]
    public async Task HostileRequestsNeverStopTheServiceNorEarnA5xx()
    {
        var cases = int.TryParse(Environment.GetEnvironmentVariable("PARAPHRASE_FUZZ_CASES"), out var n) ? n : DefaultCases;
        var seed = Environment.GetEnvironmentVariable("PARAPHRASE_FUZZ_SEED") is { Length: > 0 } s ? s : DefaultSeed;
        await using var host = await AdapterServiceHost.StartAsync(new()
        {
            ["Model:Source"] = "demo",
            ["Scheduler:MaxQueuedRequests"] = "8",
            ["Scheduler:MaxBatchRows"] = "8",
            // Every request must end with a real answer, however slow a loaded machine makes it: no 504 for being slow.
            ["Scheduler:RequestTimeoutSeconds"] = "900",
        });
        host.Client.Timeout = host.Admin.Timeout = TimeSpan.FromMinutes(10);
        Assert.Equal(HttpStatusCode.Created, (await host.Admin.PostAsync("/admin/adapters",
            Json($$"""{"name": "{{Adapter}}", "path": {{JsonSerializer.Serialize(DemoAdapters.Write(Path.Combine(host.Root, "demo-adapter"), Adapter))}}}"""))).StatusCode);

        var counts = new System.Collections.Concurrent.ConcurrentDictionary<int, int>();
        await FuzzCase.All.SampleAsync(async fuzz =>
        {
            var status = await Send(host, fuzz);
            counts.AddOrUpdate(status, 1, (_, c) => c + 1);
        }, seed: seed, iter: cases, threads: 4, print: c => c.ToString());

        output.WriteLine($"{cases} cases, seed {seed}: " + string.Join(", ", counts.OrderBy(c => c.Key).Select(c => $"{c.Key}: {c.Value}")));
        // Batches the fuzzing submitted (and that still run in the background) are cancelled through the API.
        var batches = await host.Admin.GetFromJsonAsync<List<Batch>>("/admin/batches?limit=1000", new JsonSerializerOptions(JsonSerializerDefaults.Web));
        output.WriteLine($"{batches!.Count} batches accepted: {batches.Sum(b => b.Succeeded)} lines succeeded, {batches.Sum(b => b.Failed)} failed");
        foreach (var batch in batches.Where(b => !b.IsFinished))
            using (var cancel = await host.Client.PostAsync($"/batches/{batch.Id}/cancel", null))
                Assert.True(cancel.StatusCode is HttpStatusCode.OK or HttpStatusCode.Conflict, $"cancel {batch.Id}: {cancel.StatusCode}");
        // The service is up, ready, and back to idle: nothing queued, nothing decoding for nobody, no batch running.
        var queue = host.Services.GetRequiredService<GenerationQueue>();
        var scheduler = host.Services.GetRequiredService<Scheduler>();
        var runner = host.Services.GetRequiredService<BatchRunner>();
        var deadline = DateTime.UtcNow.AddMinutes(2);
        while (queue.Count > 0 || queue.BackgroundCount > 0 || scheduler.ActiveRows > 0 || runner.Running.Count > 0)
        {
            Assert.True(DateTime.UtcNow < deadline, $"still {queue.Count} queued, {queue.BackgroundCount} batch jobs queued, {scheduler.ActiveRows} rows running");
            await Task.Delay(20);
        }
        Assert.False(host.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping.IsCancellationRequested);
        Assert.Equal(HttpStatusCode.OK, (await host.Client.GetAsync("/health/ready")).StatusCode);
        Assert.True(counts.Keys.Any(c => c == 200) && counts.Keys.Any(c => c == 400), "the generator reaches both served and refused requests");
        // AdapterServiceHost's disposal fails the test if the service answered any request, abandoned ones included, with a 500.
    }

    /// <summary>Sends one case; returns the status the client saw (0 when it disconnected on purpose).</summary>
    private static async Task<int> Send(AdapterServiceHost host, FuzzCase fuzz)
    {
        var client = fuzz.Admin ? host.Admin : host.Client;
        using var request = new HttpRequestMessage(new HttpMethod(fuzz.Method), fuzz.Path);
        if (fuzz.Body is not null)
        {
            request.Content = new ByteArrayContent(fuzz.Body);
            request.Content.Headers.ContentType = MediaTypeHeaderValue.Parse(fuzz.ContentType);
            // A body over the limit is refused before it is read; a client that waits for "100 Continue" sees why,
            // one that sends at once sees the connection close under it.
            request.Headers.ExpectContinue = fuzz.Body.Length > 1 << 20;
        }
        using var disconnect = new CancellationTokenSource();
        if (fuzz.DisconnectAfterMilliseconds is { } ms)
            disconnect.CancelAfter(ms);
        try
        {
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, disconnect.Token);
            var body = await response.Content.ReadAsStringAsync(disconnect.Token);
            var status = (int)response.StatusCode;
            Assert.True(status < 500, $"{status} for {fuzz}: {body}");
            // Kestrel itself refuses a request target with an encoded NUL before any middleware runs: a bare 400.
            if (status == 400 && fuzz.Path.Contains("%00", StringComparison.Ordinal) && body.Length == 0)
                return status;
            if (status >= 400)
            {
                Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
                using var problem = JsonDocument.Parse(body);
                var root = problem.RootElement;
                Assert.Equal(status, root.GetProperty("status").GetInt32());
                var named = root.TryGetProperty("errors", out var errors) && errors.EnumerateObject().Any()
                    || root.TryGetProperty("detail", out var detail) && detail.GetString() is { Length: > 0 };
                Assert.True(named, $"{status} names no field or reason for {fuzz}: {body}");
            }
            return status;
        }
        catch (OperationCanceledException) when (disconnect.IsCancellationRequested)
        {
            return 0;
        }
    }

    private static ByteArrayContent Json(string json) =>
        new(Encoding.UTF8.GetBytes(json)) { Headers = { ContentType = new MediaTypeHeaderValue("application/json") } };

    /// <summary>One generated request.</summary>
    private sealed record FuzzCase(string Method, string Path, byte[]? Body, string ContentType, bool Admin, int? DisconnectAfterMilliseconds)
    {
        public override string ToString() =>
            $"{Method} {Path}{(Admin ? " (admin)" : "")}{(DisconnectAfterMilliseconds is { } d ? $" disconnect after {d} ms" : "")} " +
            $"[{ContentType}] {(Body is null ? "" : Body.Length > 300 ? $"{Body.Length} bytes" : Encoding.UTF8.GetString(Body))}";

        // Values that are fine for a field, and values chosen to break things: extremes, denormals, NaN and infinity
        // spellings, huge and negative numbers, wrong types, odd strings, lone surrogates, nesting.
        private static readonly Gen<string> Hostile = Gen.OneOf(
            "0", "-1", "1", "-0", "0.5", "1.5", "9.99e-6", "1e-5", "1e-300", "5e-324", "1e-310", "2.2250738585072014e-308", "1e308", "1e309", "-1e308",
            "2147483647", "2147483648", "-2147483649", "9223372036854775807", "9223372036854775808", "-9223372036854775809", "18446744073709551616",
            "1e18", "123456789012345678901234567890", "\"NaN\"", "\"Infinity\"", "\"-Infinity\"", "\"1\"", "\"0.5\"", "\"\"", "\" \"", "\"\\t\\n\"",
            "\"\\ud800\"", "\"x\\udc00\"", "\"\\u0000\"", "\"../../etc/passwd\"", "\"UPPER\"", "\"a b\"", "\"demo\"", $"\"{Adapter}\"",
            "\"{text}\"", "\"😀 Köroğlu\"", "true", "false", "null", "[]", "{}", "[1, 2]", "[\"a\", null]", "[[[[[[[[1]]]]]]]]",
            "{\"include_usage\": true}", "{\"include_usage\": 1}", "\"" + new string('a', 5000) + "\"",
            "[" + string.Join(",", Enumerable.Repeat("\"x\"", 40)) + "]", new string('[', 80) + new string(']', 80));

        private static readonly Gen<string> Text = Gen.OneOf(
            "\"The meeting has been moved to Friday afternoon.\"", "\"Hello\"", "\"a\"", "\"Send the report now, please.\"");

        private static Gen<string> Field(Gen<string> plausible) => Gen.Frequency((6, plausible), (1, Hostile));

        private static readonly Gen<string> Seed = Gen.Long.Select(v => v.ToString());
        private static readonly Gen<string> Small = Gen.Int[1, 6].Select(v => v.ToString());
        private static readonly Gen<string> Temperature = Gen.OneOf(Gen.OneOf("0", "1", "0.7", "2", "1e-6"), Gen.Double[0, 2].Select(d => d.ToString("R")));

        // keep/avoid lists: ordinary, cased and split, empty and whitespace terms, nulls, non-ASCII
        private static readonly Gen<string> Terms = Gen.OneOf("[\"Friday\"]", "[\"the\", \"FRI day\"]", "[\"\"]", "[null]", "[\" \"]", "[\"\u00e9t\u00e9\"]");

        private static readonly (string Name, Gen<string> Value)[] ParaphraseFields =
        [
            ("text", Field(Text)), ("texts", Field(Gen.OneOf("[\"One.\", \"Two.\"]", "[\"Hello there.\"]"))), ("adapter", Field(Gen.OneOf($"\"{Adapter}\"", "null", "\"unknown-one\""))),
            ("candidates", Field(Gen.Int[1, 3].Select(v => v.ToString()))), ("maxNewTokens", Field(Small)), ("temperature", Field(Temperature)),
            ("topP", Field(Gen.OneOf("1", "0.9", "0.01"))), ("topK", Field(Gen.OneOf("0", "5", "50"))), ("repetitionPenalty", Field(Gen.OneOf("1", "1.2", "2"))),
            ("seed", Field(Seed)), ("stream", Field(Gen.OneOf("true", "false"))),
            ("maxChars", Field(Gen.OneOf("1", "20", "65536", "65537"))), ("keep", Field(Terms)), ("avoid", Field(Terms)),
            ("minSimilarity", Field(Gen.OneOf("0", "0.5", "1", "1.01"))), ("speculation", Field(Gen.OneOf("true", "false"))),
            ("useDefaultAdapter", Field(Gen.OneOf("true", "false"))),
        ];

        private static readonly (string Name, Gen<string> Value)[] CompletionFields =
        [
            ("model", Field(Gen.OneOf("\"demo\"", $"\"{Adapter}\"", "\"gpt-4o\"", "null"))), ("prompt", Field(Gen.OneOf(Text, Gen.Const("[\"One\", \"Two\"]")))),
            ("max_tokens", Field(Small)), ("temperature", Field(Temperature)), ("top_p", Field(Gen.OneOf("1", "0.5"))), ("n", Field(Gen.Int[1, 3].Select(v => v.ToString()))),
            ("stop", Field(Gen.OneOf("\"\\n\"", "[\".\", \"!\"]", "null"))), ("seed", Field(Seed)), ("stream", Field(Gen.OneOf("true", "false"))),
            ("stream_options", Field(Gen.Const("{\"include_usage\": true}"))), ("top_k", Field(Gen.OneOf("0", "3"))), ("repetition_penalty", Field(Gen.OneOf("1", "1.5"))),
            ("user", Field(Gen.Const("\"someone\""))), ("echo", Field(Gen.Const("false"))), ("presence_penalty", Field(Gen.Const("0"))), ("logit_bias", Field(Gen.Const("{}"))),
            ("best_of", Field(Gen.Const("1"))), ("suffix", Field(Gen.Const("null"))), ("logprobs", Field(Gen.Const("null"))),
            ("max_chars", Field(Gen.OneOf("1", "30"))), ("avoid", Field(Terms)), ("speculation", Field(Gen.OneOf("true", "false"))),
            ("keep", Field(Terms)),
        ];

        private static readonly (string Name, Gen<string> Value)[] ChatFields =
        [
            ("model", Field(Gen.OneOf("\"demo\"", $"\"{Adapter}\"", "null"))),
            ("messages", Field(Gen.OneOf("[{\"role\": \"user\", \"content\": \"Hello there.\"}]",
                "[{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"Hi\"}]}]",
                "[{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"assistant\", \"content\": \"b\"}, {\"role\": \"user\", \"content\": \"c\"}]"))),
            ("max_tokens", Field(Small)), ("max_completion_tokens", Field(Small)), ("temperature", Field(Temperature)), ("n", Field(Gen.Int[1, 3].Select(v => v.ToString()))),
            ("seed", Field(Seed)), ("stream", Field(Gen.OneOf("true", "false"))), ("stream_options", Field(Gen.Const("{\"include_usage\": true}"))),
            ("stop", Field(Gen.OneOf("\"\\n\"", "null"))), ("response_format", Field(Gen.Const("{\"type\": \"text\"}"))), ("tools", Field(Gen.Const("[]"))),
            ("logprobs", Field(Gen.Const("false"))), ("user", Field(Gen.Const("\"someone\""))),
            ("max_chars", Field(Gen.OneOf("1", "30"))), ("avoid", Field(Terms)), ("speculation", Field(Gen.OneOf("true", "false"))),
            ("min_similarity", Field(Gen.Const("0.5"))),
        ];

        private static readonly (string Name, Gen<string> Value)[] AdapterFields =
            [("name", Field(Gen.OneOf("\"new-one\"", $"\"{Adapter}\""))), ("path", Field(Gen.OneOf("\"/nonexistent\"", "\"relative/path\"", "\"/\""))), ("replace", Field(Gen.OneOf("false", "true")))];

        private static readonly (string Name, Gen<string> Value)[] FineTuneFields =
        [
            ("adapter", Field(Gen.Const("\"tuned\""))), ("datasetPath", Field(Gen.Const("\"/etc/passwd\""))), ("rank", Field(Gen.OneOf("4", "16"))),
            ("learningRate", Field(Gen.Const("0.0002"))), ("epochs", Field(Gen.Const("1"))), ("targetModules", Field(Gen.Const("[\"q_proj\"]"))),
        ];

        /// <summary>A JSON object: a random subset of the route's fields (each plausible or hostile), sometimes a field it does not know.</summary>
        private static Gen<string> Object((string Name, Gen<string> Value)[] fields, string required) =>
            Gen.Select(Gen.Bool.Array[fields.Length], Gen.Bool, Gen.String[1, 12], Each(fields.Select(f => f.Value)), Hostile,
                (present, extra, extraName, values, extraValue) =>
                {
                    var members = fields.Select((f, i) => (f.Name, Value: values[i])).Where((f, i) => present[i] || f.Name == required).Select(f => $"\"{f.Name}\": {f.Value}");
                    if (extra) members = members.Append($"{JsonSerializer.Serialize(extraName)}: {extraValue}");
                    return "{" + string.Join(", ", members) + "}";
                });

        /// <summary>One value from each generator, in order.</summary>
        private static Gen<string[]> Each(IEnumerable<Gen<string>> gens) =>
            gens.Aggregate(Gen.Const(System.Collections.Immutable.ImmutableList<string>.Empty), (all, gen) => all.SelectMany(list => gen.Select(list.Add)))
                .Select(list => list.ToArray());

        private static Gen<byte[]> Bodies((string Name, Gen<string> Value)[] fields, string required) => Gen.Frequency(
            (20, Object(fields, required).Select(Encoding.UTF8.GetBytes)),
            (1, Gen.OneOf("", "{", "null", "[]", "{\"a\":}", "{\"text\": \"x\"} {}").Select(Encoding.UTF8.GetBytes)),
            (1, Gen.Const(new byte[] { (byte)'{', (byte)'"', (byte)'t', (byte)'e', (byte)'x', (byte)'t', (byte)'"', (byte)':', (byte)'"', 0xC3, 0x28, 0xFF, (byte)'"', (byte)'}' })),
            (1, Gen.Const(Encoding.UTF8.GetBytes("{\"text\": \"" + new string('x', (1 << 20) + 10) + "\"}"))));

        // Batch files: lines in the documented shape or flat, each field plausible or hostile, and lines that are not requests.
        private static readonly Gen<string> CustomId = Gen.Frequency((8, Gen.Int[0, 9].Select(i => $"\"id-{i}\"")), (1, Hostile));

        private static readonly Gen<string> BatchLine = Gen.Frequency(
            (6, Gen.Select(CustomId, Object(ParaphraseFields, "text"), (id, body) => $"{{\"custom_id\": {id}, \"body\": {body}}}")),
            (2, Gen.Select(CustomId, Object(ParaphraseFields, "text"), (id, body) => $"{{\"custom_id\": {id}, {body[1..]}")),
            (1, Hostile),
            (1, Gen.OneOf("", "{", "[]", "{\"custom_id\": \"u\", \"url\": \"/v1/completions\", \"body\": {\"text\": \"a\"}}", "{\"custom_id\": \"b\", \"body\": []}")));

        private static readonly Gen<byte[]> BatchFiles = Gen.Frequency(
            (12, BatchLine.Array[1, 5].Select(lines => Encoding.UTF8.GetBytes(string.Join("\n", lines) + "\n"))),
            (1, Gen.OneOf("", "\n\n", "[{\"custom_id\": \"a\", \"body\": {\"text\": \"x\"}}]", "\r\n{\"custom_id\": \"c\", \"body\": {\"text\": \"Hi.\"}}\r\n").Select(Encoding.UTF8.GetBytes)),
            (1, Gen.Const(new byte[] { (byte)'{', (byte)'"', (byte)'a', (byte)'"', (byte)':', (byte)'"', 0xC3, 0x28, 0xFF, (byte)'"', (byte)'}', (byte)'\n' })),
            (1, Gen.Const(Encoding.UTF8.GetBytes("{\"custom_id\": \"big\", \"body\": {\"text\": \"" + new string('x', (1 << 20) + 10) + "\"}}\n"))));

        private static readonly Gen<string> BatchTypes = Gen.Frequency((10, Gen.Const("application/jsonl")),
            (1, Gen.OneOf("application/x-ndjson", "text/plain", "application/json", "application/xml", "multipart/form-data; boundary=x")));

        private static readonly Gen<string> Name = Gen.OneOf(Adapter, "unknown-one", "UPPER", "a%20b", "x%00y", "%F0%9F%98%80", "%ED%A0%80", new string('a', 65), "a.b_c-d", "%2e%2e");

        private static readonly Gen<string> ContentTypes = Gen.Frequency((12, Gen.Const("application/json")), (1, Gen.OneOf("text/plain", "application/json; charset=latin1", "multipart/form-data; boundary=x")));

        private static readonly Gen<int?> Disconnect = Gen.Frequency((9, Gen.Const((int?)null)), (1, Gen.Int[0, 50].Select(v => (int?)v)));

        public static readonly Gen<FuzzCase> All = Gen.Frequency(
            (8, Gen.Select(Bodies(ParaphraseFields, "text"), ContentTypes, Disconnect, (b, c, d) => new FuzzCase("POST", "/paraphrase", b, c, false, d))),
            (8, Gen.Select(Bodies(CompletionFields, "prompt"), ContentTypes, Disconnect, (b, c, d) => new FuzzCase("POST", "/v1/completions", b, c, false, d))),
            (6, Gen.Select(Bodies(ChatFields, "messages"), ContentTypes, Disconnect, (b, c, d) => new FuzzCase("POST", "/v1/chat/completions", b, c, false, d))),
            (1, Gen.OneOf("/v1/models", "/adapters", "/health/ready", "/health/live", "/status.json").Select(p => new FuzzCase("GET", p, null, "", false, null))),
            (1, Name.Select(n => new FuzzCase("GET", $"/adapters/{n}", null, "", false, null))),
            (2, Gen.Select(Name, Gen.OneOf("DELETE", "POST-load", "POST-unload"), Gen.Bool, (n, verb, key) => verb switch
            {
                "DELETE" => new FuzzCase("DELETE", $"/admin/adapters/{(n == Adapter ? "unknown-one" : n)}", null, "", key, null),
                _ => new FuzzCase("POST", $"/admin/adapters/{n}/{verb[5..]}", null, "", key, null),
            })),
            (1, Gen.Select(Bodies(AdapterFields, "name"), Gen.Bool, (b, key) => new FuzzCase("POST", "/admin/adapters", b, "application/json", key, null))),
            (1, Gen.Select(Bodies(FineTuneFields, "adapter"), Gen.Bool, (b, key) => new FuzzCase("POST", "/admin/fine-tunes", b, "application/json", key, null))),
            (1, Gen.Select(Name, Gen.OneOf("", "/cancel"), (n, tail) => new FuzzCase(tail == "" ? "GET" : "POST", $"/admin/fine-tunes/{n}{tail}", null, "", true, null))),
            (3, Gen.Select(BatchFiles, BatchTypes, Disconnect, (b, c, d) => new FuzzCase("POST", "/batches", b, c, false, d))),
            (1, Gen.Select(Gen.OneOf(Name, Gen.Const("batch_00000000000000000000000000000000")), Gen.OneOf("", "/results", "/cancel"),
                (n, tail) => new FuzzCase(tail == "/cancel" ? "POST" : "GET", $"/batches/{n}{tail}", null, "", false, null))),
            (1, Gen.Select(Gen.OneOf("", "?limit=0", "?limit=-5", "?limit=abc", "?limit=99999999999"), Gen.Bool,
                (query, key) => new FuzzCase("GET", "/admin/batches" + query, null, "", key, null))));
    }
}

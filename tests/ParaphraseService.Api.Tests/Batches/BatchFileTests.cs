using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using ParaphraseService.Api.Batches;
using ParaphraseService.Api.Scheduling;
using ParaphraseService.Api.Tests.Adapters;
using static ParaphraseService.Api.Tests.Batches.BatchFixtures;

namespace ParaphraseService.Api.Tests.Batches;

/// <summary>
/// Hostile batch files and lines: a problem with the whole file is one ProblemDetails naming it (and no batch), a
/// problem with one line is that line's error in the results (and the other lines run). The real service, real HTTP.
/// </summary>
public class BatchFileTests
{
    private static readonly string Good = Line("good", new { text = "The meeting has been moved to Friday .", temperature = 0, maxNewTokens = 2 });

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(4096)]
    public async Task AByteOrderMarkIsDroppedHoweverTheBodyArrives(int bytesPerRead)
    {
        // A chunked body may bring the mark's three bytes in separate reads; before, only a mark within the first read was seen.
        var file = Encoding.UTF8.GetBytes("\uFEFF" + Good + "\n" + Good.Replace("\"good\"", "\"second\"") + "\n");
        var read = await BatchFile.ReadAsync(new TrickleStream(file, bytesPerRead), new BatchOptions(), new JsonSerializerOptions(JsonSerializerDefaults.Web), default);
        Assert.Null(read.Problem);
        Assert.Equal(["good", "second"], read.Lines!.Select(l => l.CustomId));
        Assert.All(read.Lines!, l => Assert.Null(l.Error));
    }

    /// <summary>A stream that hands out at most a few bytes a read, as a chunked body may.</summary>
    private sealed class TrickleStream(byte[] data, int most) : MemoryStream(data)
    {
        public override int Read(byte[] buffer, int offset, int count) => base.Read(buffer, offset, Math.Min(count, most));

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            base.ReadAsync(buffer[..Math.Min(buffer.Length, most)], cancellationToken);
    }

    [Fact]
    public async Task WholeFileProblemsAreRefusedNamingTheProblem()
    {
        await using var host = await AdapterServiceHost.StartAsync(new()
        {
            ["Model:Source"] = "demo", ["Batches:MaxBytes"] = "65536", ["Batches:MaxLines"] = "10",
        });
        var client = host.Client;
        async Task<string> Refused(HttpContent content, HttpStatusCode status)
        {
            var response = await client.PostAsync("/batches", content);
            // A refusal that may leave the body unread tells the client not to reuse the connection.
            Assert.Equal(status == HttpStatusCode.RequestEntityTooLarge, response.Headers.ConnectionClose == true);
            return (await response.AssertProblemAsync(status)).Detail();
        }

        Assert.Contains("Batches:MaxBytes", await Refused(Jsonl(string.Join('\n', Enumerable.Repeat(Good, 600))), HttpStatusCode.RequestEntityTooLarge));
        // Without a length up front (chunked), the limit holds while reading.
        var chunked = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes(string.Join('\n', Enumerable.Repeat(Good, 600)))));
        chunked.Headers.ContentType = new("application/x-ndjson");
        using (var request = new HttpRequestMessage(HttpMethod.Post, "/batches") { Content = chunked })
        {
            request.Headers.TransferEncodingChunked = true;
            var response = await client.SendAsync(request);
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
            Assert.True(response.Headers.ConnectionClose);
        }
        Assert.Contains("Batches:MaxLines", await Refused(Jsonl(string.Join('\n', Enumerable.Range(0, 11).Select(i => Line($"x{i}", new { text = "Hi." })))),
            HttpStatusCode.RequestEntityTooLarge));
        Assert.Contains("no requests", await Refused(Jsonl(""), HttpStatusCode.BadRequest));
        Assert.Contains("no requests", await Refused(Jsonl("\n \r\n\t\n"), HttpStatusCode.BadRequest));
        Assert.Contains("JSON array", await Refused(Jsonl("[" + Good + ", " + Good + "]", "application/json"), HttpStatusCode.BadRequest));
        var garbage = new byte[4000];
        new Random(1).NextBytes(garbage);
        garbage = garbage.Select(b => b == (byte)'\n' ? (byte)0 : b).ToArray(); // one line: not JSON at all
        Assert.Contains("No line of the file is a JSON object", await Refused(Jsonl(garbage), HttpStatusCode.BadRequest));
        Assert.Contains("No line of the file is a JSON object", await Refused(Jsonl("hello\nworld\n", "text/plain"), HttpStatusCode.BadRequest));
        Assert.Contains("JSONL", await Refused(Jsonl(Good, "application/xml"), HttpStatusCode.UnsupportedMediaType));
        using (var bare = new ByteArrayContent(Encoding.UTF8.GetBytes(Good)))
        {
            // no Content-Type at all: said so (it read "(got '')"), titled as every 415 of the service
            var response = await client.PostAsync("/batches", bare);
            var problem = await response.AssertProblemAsync(HttpStatusCode.UnsupportedMediaType);
            Assert.Equal("Unsupported Media Type", problem.GetProperty("title").GetString());
            Assert.EndsWith("(no Content-Type was sent).", problem.Detail());
        }
        using (var form = new MultipartFormDataContent { { new StringContent(Good), "data", "batch.jsonl" } })
            Assert.Contains("'data' is not a field", await Refused(form, HttpStatusCode.BadRequest));

        // Ten lines and then blank ones: the trailing blank lines are no requests, so the file is within the limit.
        var ten = await SubmitAsync(client, Enumerable.Range(0, 10).Select(i => Line($"t{i}", new { text = "Hi there.", temperature = 0, maxNewTokens = 1 })).Concat(["", "", "\r"]));
        Assert.Equal(10, ten.Lines);
        // The same file as a multipart upload.
        using var upload = new MultipartFormDataContent { { new StringContent(Good), "file", "batch.jsonl" } };
        using var uploaded = await client.PostAsync("/batches", upload);
        Assert.Equal(HttpStatusCode.Accepted, uploaded.StatusCode);
        Assert.Equal(1, (await uploaded.Content.ReadFromJsonAsync<Batch>(Json))!.Lines);
        await FinishedAsync(client, ten.Id);

        // Unknown ids, however odd, are a 404; listing is for the admin.
        foreach (var id in new[] { "batch_0123", new string('x', 5000), "..%2F..%2Fetc", "%00" })
        {
            foreach (var path in new[] { $"/batches/{id}", $"/batches/{id}/results" })
            {
                var response = await client.GetAsync(path);
                Assert.True(response.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.BadRequest, $"{path}: {response.StatusCode}");
            }
        }
        await (await client.PostAsync("/batches/batch_0123/cancel", null)).AssertProblemAsync(HttpStatusCode.NotFound);
        await (await client.GetAsync("/admin/batches")).AssertProblemAsync(HttpStatusCode.Unauthorized);
        var list = await host.Admin.GetFromJsonAsync<List<Batch>>("/admin/batches?limit=1", Json);
        Assert.Single(list!);
    }

    [Fact]
    public async Task HostileLinesAreEachTheirOwnErrorAndTheRestRun()
    {
        await using var app = new ServiceApplication();
        await app.ModelLoaded();
        using var client = app.CreateClient();
        static byte[] Utf8(string text) => Encoding.UTF8.GetBytes(text);
        string Nested(int depth) => new string('[', depth) + new string(']', depth);
        var lines = new List<byte[]>
        {
            Utf8(Line("huge", new { text = new string('a', (1 << 20) + 10) })),                                       // 1: over 1 MiB
            Utf8("{\"custom_id\": \"utf8\", \"body\": {\"text\": \"caf").Concat(new byte[] { 0xC3, 0x28 }).Concat(Utf8("\"}}")).ToArray(), // 2: invalid UTF-8
            Utf8("[1, 2]"),                                                                                               // 3
            Utf8("\"just a string\""),                                                                                    // 4
            Utf8("42"),                                                                                                   // 5
            Utf8("null"),                                                                                                 // 6
            Utf8("{\"custom_id\": \"deep\", \"body\": {\"text\": " + Nested(200) + "}}"),                         // 7: nested garbage
            Utf8(Line(new string('i', (1 << 20) + 1), new { text = "Hi." })),                                          // 8: a 1 MB custom_id
            Utf8(Line(new string('i', 600), new { text = "Hi." })),                                                    // 9
            Utf8("""{"custom_id": {"a": 1}, "body": {"text": "Hi."}}"""),                                               // 10
            Utf8("""{"custom_id": "\ud800", "body": {"text": "Hi."}}"""),                                               // 11: lone surrogate
            Utf8("""{"custom_id": "b", "body": "Hi."}"""),                                                              // 12
            Utf8("""{"custom_id": "extra", "body": {"text": "Hi."}, "priority": 1}"""),                                 // 13
            Utf8("""{"custom_id": "url", "url": "/v1/completions", "body": {"text": "Hi."}}"""),                       // 14
            Utf8("""{"custom_id": "stream", "body": {"text": "Hi.", "stream": true}}"""),                              // 15
            Utf8(Line("texts", new { texts = Enumerable.Repeat("Hi.", 33) })),                                         // 16
            Utf8("""{"custom_id": "nan", "body": {"text": "Hi.", "temperature": "NaN"}}"""),                          // 17
            Utf8("""{"custom_id": "seed", "body": {"text": "Hi.", "seed": 1e400}}"""),                                  // 18
            Utf8(Good + "\r"),                                                                                            // 19: CRLF
            Utf8("""{"custom_id": "openai", "method": "POST", "url": "/paraphrase", "body": {"text": "Hi there.", "temperature": 0, "maxNewTokens": 2}}"""), // 20
            Utf8("""{"custom_id": "", "body": {"text": "Hi."}}"""),                                                     // 21
            Utf8("""{"custom_id": "long-text", "body": {"text": "word word", "maxNewTokens": 300}}"""),               // 22
        };
        var file = lines.SelectMany(l => l.Append((byte)'\n')).ToArray();
        using var response = await client.PostAsync("/batches", Jsonl(file, "application/x-ndjson"));
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var id = (await response.Content.ReadFromJsonAsync<Batch>(Json))!.Id;
        var done = await FinishedAsync(client, id);
        Assert.Equal((BatchState.Completed, 2, 20), (done.Status, done.Succeeded, done.Failed));

        var results = await ResultsAsync(client, id);
        Assert.Equal(lines.Count, results.Count);
        string Detail(int line) => results[line - 1].GetProperty("error").GetProperty("detail").GetString()!;
        Assert.Equal(413, results[0].GetProperty("error").GetProperty("status").GetInt32());
        Assert.Contains("1,048,576", Detail(1));
        Assert.Contains("not valid UTF-8", Detail(2));
        Assert.Contains("JSON array", Detail(3));
        Assert.Contains("JSON string", Detail(4));
        Assert.Contains("JSON number", Detail(5));
        Assert.Contains("JSON null", Detail(6));
        Assert.Contains("depth", Detail(7));
        Assert.Contains("at most", Detail(8));
        Assert.Contains("1-512 characters", Detail(9));
        Assert.Contains("custom_id: must be a string, not a JSON object", Detail(10));
        Assert.Contains("unpaired UTF-16 surrogate", Detail(11));
        Assert.Contains("body: must be a JSON object", Detail(12));
        Assert.Contains("priority: is not a field of a batch line", Detail(13));
        Assert.Contains("url: must be \"/paraphrase\"", Detail(14));
        Assert.Contains("stream:", Detail(15));
        Assert.Contains("texts: must hold 1-32 texts", Detail(16));
        Assert.Contains("temperature: must be a number.", Detail(17)); // a string where a number belongs ("NaN" too), refused as /paraphrase refuses it
        Assert.Contains("seed:", Detail(18));
        Assert.Equal("good", results[18].GetProperty("custom_id").GetString());
        Assert.True(results[18].TryGetProperty("response", out _));
        Assert.True(results[19].TryGetProperty("response", out _));
        Assert.Contains("custom_id: must be 1-512 characters", Detail(21));
        Assert.Contains("maxNewTokens: must be 1-256", Detail(22));
        // Lines refused without a usable custom_id say so with null, never echoing a megabyte.
        Assert.All(new[] { 1, 2, 3, 8, 9, 10, 11 }, line => Assert.Equal(JsonValueKind.Null, results[line - 1].GetProperty("custom_id").ValueKind));
        Assert.All(results, r => Assert.True(r.GetRawText().Length < 4096));
    }

    [Fact]
    public async Task ResultsWaitForTheBatchToEnd()
    {
        await using var app = new ServiceApplication();
        await app.ModelLoaded();
        using var client = app.CreateClient();
        // The scheduler held on a command of its own: the batch cannot finish while results are asked for.
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var gate = new ManualResetEventSlim();
        var held = app.Services.GetRequiredService<ModelThreadCommands>().RunAsync(_ =>
        {
            entered.SetResult();
            gate.Wait(TimeSpan.FromMinutes(2));
            return 0;
        });
        await entered.Task.WaitAsync(TimeSpan.FromMinutes(1));
        var batch = await SubmitAsync(client, [Good]);
        using (var early = await client.GetAsync($"/batches/{batch.Id}/results"))
        {
            var problem = await early.AssertProblemAsync(HttpStatusCode.Conflict);
            Assert.Contains("0 of 1 lines finished", problem.Detail());
            Assert.NotNull(early.Headers.RetryAfter);
        }
        gate.Set();
        await held;
        await FinishedAsync(client, batch.Id);
        Assert.Single(await ResultsAsync(client, batch.Id));
    }

    [Theory]
    [InlineData("Batches:Concurrency", "0")]
    [InlineData("Batches:MaxLines", "0")]
    [InlineData("Batches:MaxBytes", "10")]
    [InlineData("Scheduler:BackgroundRowShare", "0")]
    [InlineData("Scheduler:BackgroundRowShare", "NaN")]
    public void BadSettingsAreRefusedAtStart(string key, string value) =>
        Assert.Contains(key.Split(':')[1], ServiceApplication.StartError(new() { [key] = value }).Message);

    [Fact]
    public async Task TurnedOffBatchesAreRefused()
    {
        await using var app = new ServiceApplication(new() { ["Batches:Enabled"] = "false" });
        using var client = app.CreateClient();
        var problem = await (await client.PostAsync("/batches", Jsonl(Good))).AssertProblemAsync(HttpStatusCode.ServiceUnavailable);
        Assert.Contains("Batches:Enabled", problem.Detail());

        // The routes are in the OpenAPI document, the upload with the content types it reads.
        var paths = (await client.GetFromJsonAsync<JsonElement>("/swagger/v1/swagger.json")).GetProperty("paths");
        var upload = paths.GetProperty("/batches").GetProperty("post").GetProperty("requestBody").GetProperty("content");
        Assert.True(upload.TryGetProperty("application/jsonl", out _) && upload.TryGetProperty("multipart/form-data", out _), upload.ToString());
        Assert.True(paths.GetProperty("/batches/{id}/results").TryGetProperty("get", out _));
        Assert.True(paths.GetProperty("/batches/{id}/cancel").TryGetProperty("post", out _));
        Assert.True(paths.GetProperty("/admin/batches").TryGetProperty("get", out _));
    }
}

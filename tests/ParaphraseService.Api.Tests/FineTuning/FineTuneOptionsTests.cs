using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using ParaphraseService.Api.FineTuning;
using ParaphraseService.Api.Tests.Adapters;
using ParaphraseService.Model.Tests;
using Xunit.Abstractions;
using static ParaphraseService.Api.Tests.FineTuning.FineTuneFixtures;

namespace ParaphraseService.Api.Tests.FineTuning;

/// <summary>
/// Fine-tune options checked completely before a job is queued: every option at its most hostile value is a 400 that
/// names the field, never a 500 and never a job. The real service on loopback, the real checks, a real model.
/// </summary>
[Collection(FineTuneCollection.Name)]
public class FineTuneOptionsTests(ITestOutputHelper output)
{
    private static Task<AdapterServiceHost> StartAsync(Dictionary<string, string?>? settings = null)
    {
        var all = new Dictionary<string, string?>
        {
            ["Model:Source"] = LearnableModel,
            ["FineTunes:Directory"] = Directory.CreateTempSubdirectory("fine-tunes-").FullName,
        };
        foreach (var (key, value) in settings ?? []) all[key] = value;
        return AdapterServiceHost.StartAsync(all);
    }

    private static string Many(int count, Func<int, string> item) => "[" + string.Join(",", Enumerable.Range(0, count).Select(item)) + "]";

    /// <summary>(options JSON as sent, the field the 400 must name). 'options' stands for the form field or the body itself.</summary>
    public static readonly (string Json, string Field)[] Hostile =
    [
        ("""{"adapter": "x", "rank": 1e30}""", "rank"),
        ("""{"adapter": "x", "rank": -5}""", "rank"),
        ("""{"adapter": "x", "rank": 0}""", "rank"),
        ("""{"adapter": "x", "rank": 16.5}""", "rank"),
        ("""{"adapter": "x", "rank": "16"}""", "rank"),
        ("""{"adapter": "x", "rank": null}""", "rank"),
        ("""{"adapter": "x", "rank": }""", "rank"),
        ("""{"adapter": "x", "alpha": NaN}""", "alpha"),
        ("""{"adapter": "x", "alpha": "NaN"}""", "alpha"),
        ("""{"adapter": "x", "alpha": Infinity}""", "alpha"),
        ("""{"adapter": "x", "alpha": -Infinity}""", "alpha"),
        ("""{"adapter": "x", "alpha": 1e400}""", "alpha"),
        ("""{"adapter": "x", "alpha": 1e308}""", "alpha"),
        ("""{"adapter": "x", "alpha": 0}""", "alpha"),
        ("""{"adapter": "x", "learningRate": "Infinity"}""", "learningRate"),
        ("""{"adapter": "x", "learningRate": 5}""", "learningRate"),
        ("""{"adapter": "x", "learningRate": -1e-300}""", "learningRate"),
        ("""{"adapter": "x", "dropout": -0.1}""", "dropout"),
        ("""{"adapter": "x", "dropout": 1}""", "dropout"),
        ("""{"adapter": "x", "evalFraction": 0.9}""", "evalFraction"),
        ("""{"adapter": "x", "evalFraction": -1}""", "evalFraction"),
        ("""{"adapter": "x", "epochs": 2147483647}""", "epochs"),
        ("""{"adapter": "x", "epochs": 2147483648}""", "epochs"),
        ("""{"adapter": "x", "maxSteps": 0}""", "maxSteps"),
        ("""{"adapter": "x", "warmupSteps": -1}""", "warmupSteps"),
        ("""{"adapter": "x", "batchSize": 100000}""", "batchSize"),
        ("""{"adapter": "x", "gradientAccumulation": 0}""", "gradientAccumulation"),
        ("""{"adapter": "x", "maxSequenceLength": 4}""", "maxSequenceLength"),
        ("""{"adapter": "x", "maxSequenceLength": 1000000}""", "maxSequenceLength"),
        ("""{"adapter": "x", "maxSequenceLength": 2048}""", "maxSequenceLength"), // more than the model's 256 positions
        ("""{"adapter": "x", "seed": 1.5}""", "seed"),
        ("""{"adapter": "x", "seed": 99999999999999999999999}""", "seed"),
        ("""{"adapter": "x", "sampleSize": 0}""", "sampleSize"),
        ("""{"adapter": "x", "sampleSize": -2147483648}""", "sampleSize"),
        ("""{"adapter": "x", "bleuSamples": -1}""", "bleuSamples"),
        ("""{"adapter": "x", "bleuSamples": 1000000}""", "bleuSamples"),
        ("""{"adapter": "x", "checkpointEverySteps": -1}""", "checkpointEverySteps"),
        ("""{"adapter": "x", "evalEverySteps": -1}""", "evalEverySteps"),
        ("""{"adapter": "x", "earlyStoppingPatience": 0}""", "earlyStoppingPatience"),
        ("""{"adapter": "x", "earlyStoppingPatience": 3}""", "earlyStoppingPatience"),
        ("""{"adapter": ""}""", "adapter"),
        ("""{"adapter": "../x"}""", "adapter"),
        ("""{"adapter": null}""", "adapter"),
        ("""{}""", "adapter"),
        ($$"""{"adapter": "{{new string('a', 10_000)}}"}""", "adapter"),
        ("""{"adapter": 7}""", "adapter"),
        ("""{"adapter": "x", "format": ""}""", "format"),
        ("""{"adapter": "x", "format": "xml"}""", "format"),
        ("""{"adapter": "x", "format": "2"}""", "format"),
        ("""{"adapter": "x", "format": null}""", "format"),
        ("""{"adapter": "x", "sourceColumn": ""}""", "sourceColumn"),
        ("""{"adapter": "x", "sourceColumn": "a\tb"}""", "sourceColumn"),
        ($$"""{"adapter": "x", "targetColumn": "{{new string('c', 10_000)}}"}""", "targetColumn"),
        ("""{"adapter": "x", "labelColumn": " "}""", "labelColumn"),
        ("""{"adapter": "x", "labelValues": ["1"]}""", "labelValues"),
        ("""{"adapter": "x", "labelColumn": "q", "labelValues": []}""", "labelValues"),
        ("""{"adapter": "x", "labelColumn": "q", "labelValues": [""]}""", "labelValues"),
        ("""{"adapter": "x", "labelColumn": "q", "labelValues": [1]}""", "labelValues"),
        ($$"""{"adapter": "x", "labelColumn": "q", "labelValues": {{Many(10_000, i => $"\"v{i}\"")}}}""", "labelValues"),
        ("""{"adapter": "x", "targetModules": []}""", "targetModules"),
        ("""{"adapter": "x", "targetModules": ["query"]}""", "targetModules"),
        ("""{"adapter": "x", "targetModules": ["c_attn"]}""", "targetModules"), // GPT-2's name, not GPT-J's
        ("""{"adapter": "x", "targetModules": [""]}""", "targetModules"),
        ("""{"adapter": "x", "targetModules": [null]}""", "targetModules"),
        ("""{"adapter": "x", "targetModules": "q_proj"}""", "targetModules"),
        ($$"""{"adapter": "x", "targetModules": {{Many(10_000, _ => "\"q_proj\"")}}}""", "targetModules"),
        ($$"""{"adapter": "x", "targetModules": {{new string('[', 1000) + new string(']', 1000)}}}""", "targetModules"),
        ("""{"adapter": "x", "promptTemplate": ""}""", "promptTemplate"),
        ("""{"adapter": "x", "promptTemplate": "no placeholder"}""", "promptTemplate"),
        ("""{"adapter": "x", "promptTemplate": "\ud800 {text}"}""", "promptTemplate"),
        ($$"""{"adapter": "x", "promptTemplate": "{{string.Join(' ', Enumerable.Repeat("word", 300))}} {text}"}""", "promptTemplate"),
        ($$"""{"adapter": "x", "promptTemplate": "{{new string('w', 100_000)}} {text}"}""", "promptTemplate"),
        ("""{"adapter": "x", "schedule": "sideways"}""", "schedule"),
        ("""{"adapter": "x", "schedule": 1}""", "schedule"),
        ("""{"adapter": "x", "replace": "yes"}""", "replace"),
        ("""{"adapter": "x", "gradientCheckpointing": 1}""", "gradientCheckpointing"),
        ("""{"adapter": "x", "tsvQuoting": "true"}""", "tsvQuoting"),
        ("""{"adapter": "x", "tsvQuoting": 1e308}""", "tsvQuoting"),
        ("""{"adapter": "x", "rnak": 4}""", "rnak"),
        ("""{"adapter": "x", "rank": 4, "Rank": 5}""", "rank"),
        ("""[1, 2]""", "options"),
        ("\"x\"", "options"),
        ("null", "options"),
        ("", "options"),
        ("""{"adapter": "x",""", "options"),
        ("""{"adapter": "x"} trailing""", "options"),
    ];

    [LinuxFact]
    public async Task ADatasetPathThatIsANamedPipeIsRefusedNotCopied()
    {
        // Copying a named pipe waits for a writer: the request would never end.
        var root = Directory.CreateTempSubdirectory("datasets-").FullName;
        var pipe = Path.Combine(root, "pairs.jsonl");
        NamedPipes.Create(pipe);
        await using var host = await StartAsync(new() { ["FineTunes:DatasetRoots:0"] = root });

        var response = await host.Admin.PostAsJsonAsync("/admin/fine-tunes", new { adapter = "piped", datasetPath = pipe }).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal($"'{pipe}' is not a regular file but a named pipe (FIFO).", problem.GetProperty("errors").GetProperty("datasetPath")[0].GetString());
        Directory.Delete(root, recursive: true);
    }

    [Fact]
    public async Task EveryHostileOptionIsA400NamingItsFieldInAFormAndInAJsonBody()
    {
        var root = Directory.CreateTempSubdirectory("datasets-").FullName;
        var file = Path.Combine(root, "pairs.jsonl");
        File.WriteAllText(file, ReverseWordsJsonl(20, 4));
        await using var host = await StartAsync(new() { ["FineTunes:DatasetRoots:0"] = root });
        var data = ReverseWordsJsonl(20, 4);
        var failures = new List<string>();
        foreach (var (json, field) in Hostile)
        {
            // A form carries the options as they are; a JSON body with the dataset path added after the brace.
            using var form = new MultipartFormDataContent
            {
                { new StringContent(json), "options" },
                { new StringContent(data), "dataset", "pairs.jsonl" },
            };
            await Expect(await host.Admin.PostAsync("/admin/fine-tunes", form), field, "form", json);
            var body = json.StartsWith('{') && json.Length > 1
                ? "{\"datasetPath\": " + JsonSerializer.Serialize(file) + (json.TrimStart('{').TrimStart().StartsWith('}') ? "" : ", ") + json[1..]
                : json;
            using var content = new StringContent(body, Encoding.UTF8, "application/json");
            await Expect(await host.Admin.PostAsync("/admin/fine-tunes", content), field == "options" ? "body" : field, "body", json);
        }
        Assert.Empty(await host.Admin.GetFromJsonAsync<List<FineTuneJob>>("/admin/fine-tunes", FineTuneJobStore.Json) ?? []);
        Assert.True(failures.Count == 0, string.Join("\n", failures));
        Directory.Delete(root, recursive: true);

        async Task Expect(HttpResponseMessage response, string expected, string how, string json)
        {
            using (response)
            {
                var text = await response.Content.ReadAsStringAsync();
                var shown = json.Length > 80 ? json[..80] + "..." : json;
                if (response.StatusCode != HttpStatusCode.BadRequest || response.Content.Headers.ContentType?.MediaType != "application/problem+json")
                {
                    failures.Add($"{how} {shown}: {(int)response.StatusCode} {text[..Math.Min(300, text.Length)]}");
                    return;
                }
                var errors = JsonDocument.Parse(text).RootElement.GetProperty("errors");
                if (!errors.TryGetProperty(expected, out var messages))
                {
                    failures.Add($"{how} {shown}: no error for '{expected}': {errors.GetRawText()[..Math.Min(300, errors.GetRawText().Length)]}");
                    return;
                }
                if (text.Length > 20_000)
                    failures.Add($"{how} {shown}: a problem of {text.Length} characters");
                if (how == "form")
                    output.WriteLine($"{shown} -> {expected}: {messages[0].GetString()}");
            }
        }
    }

    [Fact]
    public async Task UnknownOptionsAreNamedAndManyOfThemGetAShortAnswer()
    {
        await using var host = await StartAsync();
        var data = ReverseWordsJsonl(20, 4);
        using (var response = await host.Admin.PostAsync("/admin/fine-tunes", Form(new { adapter = "x", rnak = 4, learning_rate = 0.1 }, data)))
        {
            var errors = (await Problem(response)).GetProperty("errors");
            Assert.Contains("'rnak' is not an option", errors.GetProperty("rnak")[0].GetString());
            Assert.Contains("learningRate", errors.GetProperty("learning_rate")[0].GetString()); // the list of options shows the right name
        }
        var many = "{" + string.Join(",", Enumerable.Range(0, 10_000).Select(i => $"\"o{i}\": {i}")) + ", \"adapter\": \"x\"}";
        using (var form = new MultipartFormDataContent { { new StringContent(many), "options" }, { new StringContent(data), "dataset", "pairs.jsonl" } })
        using (var response = await host.Admin.PostAsync("/admin/fine-tunes", form))
        {
            var errors = (await Problem(response)).GetProperty("errors");
            Assert.Equal(21, errors.EnumerateObject().Count()); // the first 20 named, and the count
            Assert.Contains("10000 unknown options", errors.GetProperty("options")[0].GetString());
        }
        // A form field that is not one of the form's.
        using (var form = new MultipartFormDataContent { { new StringContent("{\"adapter\": \"x\"}"), "option" }, { new StringContent(data), "dataset", "pairs.jsonl" } })
        using (var response = await host.Admin.PostAsync("/admin/fine-tunes", form))
            Assert.True((await Problem(response)).GetProperty("errors").TryGetProperty("option", out _));
        // datasetPath is for JSON bodies; a form has its file.
        using (var response = await host.Admin.PostAsync("/admin/fine-tunes", Form(new { adapter = "x", datasetPath = "/etc/passwd" }, data)))
            Assert.True((await Problem(response)).GetProperty("errors").TryGetProperty("datasetPath", out _));
        // A JSON body with a NUL in the path, and one over the options limit.
        using (var response = await host.Admin.PostAsync("/admin/fine-tunes", new StringContent("{\"adapter\": \"x\", \"datasetPath\": \"a\\u0000b\"}", Encoding.UTF8, "application/json")))
            Assert.True((await Problem(response)).GetProperty("errors").TryGetProperty("datasetPath", out _));
        using (var response = await host.Admin.PostAsync("/admin/fine-tunes",
            new StringContent("{\"adapter\": \"x\", \"promptTemplate\": \"" + new string('a', 2 << 20) + "\"}", Encoding.UTF8, "application/json")))
            await Problem(response, HttpStatusCode.RequestEntityTooLarge);
    }

    /// <summary>MRPC's layout: tab-separated, a BOM, Quality 1 for a paraphrase, named .txt (so the content tells the format).</summary>
    private static string Mrpc(int rows)
    {
        var text = new StringBuilder("\uFEFFQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\r\n");
        var words = ReverseWordsJsonl(rows, 9).Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => JsonDocument.Parse(l).RootElement).ToList();
        for (var i = 0; i < words.Count; i++)
            text.Append($"{(i % 3 == 2 ? 0 : 1)}\t{1000 + i}\t{2000 + i}\t{words[i].GetProperty("source").GetString()}\t{words[i].GetProperty("target").GetString()}\r\n");
        return text.ToString();
    }

    [Fact]
    public async Task AnMrpcFileTrainsOnItsParaphrasesOnlyAndTheContentTellsTheFormat()
    {
        await using var host = await StartAsync();
        var options = new { adapter = "mrpc", sourceColumn = "#1 String", targetColumn = "#2 String", labelColumn = "Quality", rank = 2, maxSteps = 1, bleuSamples = 0 };
        using var response = await host.Admin.PostAsync("/admin/fine-tunes", Form(options, Encoding.UTF8.GetBytes(Mrpc(30)), "msr_paraphrase_train.txt"));
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, body);
        var job = JsonSerializer.Deserialize<FineTuneJob>(body, FineTuneJobStore.Json)!;
        var dataset = job.Dataset!.Value;
        output.WriteLine(dataset.GetRawText());
        Assert.Equal("tsv", dataset.GetProperty("format").GetString());
        Assert.Equal(30, dataset.GetProperty("rowsRead").GetInt32());
        Assert.Equal(10, dataset.GetProperty("nonParaphrasesSkipped").GetInt32());
        Assert.Equal(20, dataset.GetProperty("paraphraseRows").GetInt32());
        Assert.Equal("Quality", dataset.GetProperty("labelColumn").GetString());
        Assert.Equal(FineTuneState.Succeeded, (await FinishedAsync(host.Admin, job.Id)).State);

        // The label column must exist: the problem lists the columns there are.
        using var unknown = await host.Admin.PostAsync("/admin/fine-tunes",
            Form(options with { adapter = "mrpc2", labelColumn = "quality_score" }, Encoding.UTF8.GetBytes(Mrpc(30)), "msr_paraphrase_train.txt"));
        var messages = (await Problem(unknown)).GetProperty("errors").GetProperty("dataset").GetRawText();
        Assert.Contains("no label column named 'quality_score'", messages);
        Assert.Contains("#1 String", messages);
    }

    [Theory]
    [InlineData("data", "jsonl")]
    [InlineData("upload.bin", "csv")]
    public async Task FormatAutoReadsTheContentWhenTheNameSaysNothing(string fileName, string format)
    {
        await using var host = await StartAsync();
        var jsonl = ReverseWordsJsonl(20, 4);
        var content = format == "jsonl" ? jsonl : "source,target\n" + string.Concat(jsonl.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => JsonDocument.Parse(l).RootElement).Select(e => $"{e.GetProperty("source").GetString()},{e.GetProperty("target").GetString()}\n"));
        using (var response = await host.Admin.PostAsync("/admin/fine-tunes", Form(new { adapter = "auto", rank = 2, maxSteps = 1, bleuSamples = 0 }, Encoding.UTF8.GetBytes(content), fileName)))
        {
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.Accepted, body);
            var job = JsonSerializer.Deserialize<FineTuneJob>(body, FineTuneJobStore.Json)!;
            Assert.Equal(format, job.Dataset!.Value.GetProperty("format").GetString());
            Assert.Equal(FineTuneState.Succeeded, (await FinishedAsync(host.Admin, job.Id)).State);
        }
        using (var response = await host.Admin.PostAsync("/admin/fine-tunes", Form(new { adapter = "auto2" }, Encoding.UTF8.GetBytes("just some words\nand more\n"), fileName)))
        {
            var messages = (await Problem(response)).GetProperty("errors").GetProperty("dataset").GetRawText();
            Assert.Contains("cannot tell the format", messages);
        }
    }

    [Fact]
    public async Task GzipUploadsAreReadQuotedTsvNeedsTsvQuotingAndBinaryFormatsAreNamed()
    {
        // uploads of 64 KiB at most, so a gzip file may decompress to no more
        await using var host = await StartAsync(new() { ["FineTunes:MaxDatasetBytes"] = "65536" });
        var jsonl = ReverseWordsJsonl(20, 4);
        static byte[] Gzip(string text)
        {
            using var buffer = new MemoryStream();
            using (var gzip = new System.IO.Compression.GZipStream(buffer, System.IO.Compression.CompressionLevel.Optimal))
                gzip.Write(Encoding.UTF8.GetBytes(text));
            return buffer.ToArray();
        }
        // was 400 "not a UTF-8 text file (line 1: byte 0x8B ...)"
        using (var response = await host.Admin.PostAsync("/admin/fine-tunes", Form(new { adapter = "gz", rank = 2, maxSteps = 1, bleuSamples = 0 }, Gzip(jsonl), "pairs.jsonl.gz")))
        {
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.Accepted, body);
            var job = JsonSerializer.Deserialize<FineTuneJob>(body, FineTuneJobStore.Json)!;
            Assert.Equal("jsonl", job.Dataset!.Value.GetProperty("format").GetString());
            Assert.Equal(20, job.Dataset.Value.GetProperty("rowsRead").GetInt32());
            Assert.Equal(FineTuneState.Succeeded, (await FinishedAsync(host.Admin, job.Id)).State);
        }
        using (var bomb = await host.Admin.PostAsync("/admin/fine-tunes", Form(new { adapter = "bomb" }, Gzip(string.Concat(Enumerable.Repeat(jsonl, 200))), "pairs.jsonl.gz")))
            Assert.Contains("decompressed, the file is more than 65,536 bytes", (await Problem(bomb)).GetProperty("detail").GetString());

        // pandas' to_csv(sep="\t"): quotes doubled inside a quoted field; read as text before, quotes and all
        var tsv = "source\ttarget\n" + string.Concat(jsonl.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement)
            .Select((e, i) => $"{(i == 0 ? "\"\"\"" + e.GetProperty("source").GetString() + "\"\"\"" : e.GetProperty("source").GetString())}\t{e.GetProperty("target").GetString()}\n"));
        using (var unquoted = await host.Admin.PostAsync("/admin/fine-tunes", Form(new { adapter = "quoted" }, Encoding.UTF8.GetBytes(tsv), "pairs.tsv")))
            Assert.Contains("read it with TSV quoting (tsvQuoting", (await Problem(unquoted)).GetProperty("errors").GetProperty("dataset")[0].GetString());
        using (var quoted = await host.Admin.PostAsync("/admin/fine-tunes", Form(new { adapter = "quoted", tsvQuoting = true, rank = 2, maxSteps = 1, bleuSamples = 0 }, Encoding.UTF8.GetBytes(tsv), "pairs.tsv")))
        {
            var body = await quoted.Content.ReadAsStringAsync();
            Assert.True(quoted.StatusCode == HttpStatusCode.Accepted, body);
            Assert.Equal(FineTuneState.Succeeded, (await FinishedAsync(host.Admin, JsonSerializer.Deserialize<FineTuneJob>(body, FineTuneJobStore.Json)!.Id)).State);
        }

        // was "not a UTF-8 text file (line 1: byte 0x.. is not valid UTF-8)"
        using var parquet = await host.Admin.PostAsync("/admin/fine-tunes", Form(new { adapter = "pq" }, [0x50, 0x41, 0x52, 0x31, 0x15, 0x04, 0x15, 0x00, 0x50, 0x41, 0x52, 0x31], "train.parquet"));
        Assert.StartsWith("train.parquet: a Parquet file", (await Problem(parquet)).GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task PairsTooLongForMaxSequenceLengthAreDroppedAndCountedNeverCut()
    {
        await using var host = await StartAsync();
        var lines = new StringBuilder(ReverseWordsJsonl(20, 4));
        for (var i = 0; i < 3; i++)
            lines.AppendLine(JsonSerializer.Serialize(new { source = string.Join(' ', Enumerable.Repeat("river", 40 + i)), target = "a long river" }));
        var options = new { adapter = "fits", maxSequenceLength = 32, rank = 2, maxSteps = 1, bleuSamples = 0 };
        var job = await SubmitAsync(host.Admin, options, lines.ToString());
        Assert.Equal(3, job.Dataset!.Value.GetProperty("tooLongDropped").GetInt32());
        Assert.Equal(32, job.Dataset.Value.GetProperty("maxTokensPerExample").GetInt32());
        Assert.Equal(FineTuneState.Succeeded, (await FinishedAsync(host.Admin, job.Id)).State);

        // Nothing fits: refused before queueing, saying so.
        using var none = await host.Admin.PostAsync("/admin/fine-tunes", Form(options with { adapter = "none", maxSequenceLength = 12 }, lines.ToString()));
        Assert.Contains("too long", (await Problem(none)).GetProperty("errors").GetProperty("dataset").GetRawText());
        // A template that leaves no room for any pair is refused as an option.
        using var template = await host.Admin.PostAsync("/admin/fine-tunes",
            Form(new { adapter = "none", maxSequenceLength = 32, promptTemplate = string.Join(' ', Enumerable.Repeat("word", 40)) + " {text}" }, lines.ToString()));
        Assert.Contains("raise maxSequenceLength or shorten the template", (await Problem(template)).GetProperty("errors").GetProperty("promptTemplate")[0].GetString());
    }

    [Fact]
    public async Task WithoutAModelTheRefusalSpeaksOfFineTunes()
    {
        await using var host = await StartAsync(new() { ["Model:Source"] = Path.Combine(Path.GetTempPath(), "no-such-model-" + Guid.NewGuid().ToString("N")) });
        using var response = await host.Admin.PostAsync("/admin/fine-tunes", Form(new { adapter = "x" }, ReverseWordsJsonl(20, 4)));
        var problem = await Problem(response, HttpStatusCode.ServiceUnavailable);
        var detail = problem.GetProperty("detail").GetString()!;
        Assert.Contains("fine-tunes train on it", detail);
        Assert.DoesNotContain("adapters are validated", detail, StringComparison.OrdinalIgnoreCase);
    }

    private static async Task<JsonElement> Problem(HttpResponseMessage response, HttpStatusCode status = HttpStatusCode.BadRequest)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"expected {(int)status}, got {(int)response.StatusCode}: {body}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        return JsonDocument.Parse(body).RootElement;
    }
}

using System.Net;
using Microsoft.Extensions.DependencyInjection;
using System.Net.Http.Json;
using System.Text.Json;
using ParaphraseService.Api.Adapters;
using ParaphraseService.Api.FineTuning;
using ParaphraseService.Api.Scheduling;
using ParaphraseService.Api.Tests.Adapters;
using ParaphraseService.Model.Checkpoints;
using Xunit.Abstractions;
using static ParaphraseService.Api.Tests.FineTuning.FineTuneFixtures;

namespace ParaphraseService.Api.Tests.FineTuning;

/// <summary>Fine-tune jobs end to end: the real service on loopback, the real trainer, a real SQLite file.</summary>
[Collection(FineTuneCollection.Name)]
public class FineTuneJobTests(ITestOutputHelper output)
{
    private static readonly object Learn = new
    {
        adapter = "reverse", targetModules = new[] { "all-linear" }, rank = 8, alpha = 16, learningRate = 5e-3, batchSize = 8,
        maxSteps = 40, epochs = 10, warmupSteps = 4, evalFraction = 0.15, evalEverySteps = 10, bleuSamples = 4, checkpointEverySteps = 10,
        promptTemplate = "Source: {text}\nTarget:",
    };

    private static Task<AdapterServiceHost> StartAsync(Dictionary<string, string?>? settings = null, Action<IServiceCollection>? services = null)
    {
        var all = new Dictionary<string, string?> { ["Model:Source"] = LearnableModel };
        foreach (var (key, value) in settings ?? []) all[key] = value;
        all.TryAdd("FineTunes:Directory", Path.Combine(Directory.CreateTempSubdirectory("fine-tunes-").FullName));
        return AdapterServiceHost.StartAsync(all, services: services);
    }

    /// <summary>
    /// The runner as the scheduler sees it, but frozen right after the slice that saved a job's first checkpoint: a
    /// service stopped then is interrupted exactly there, however fast the job would otherwise go on.
    /// </summary>
    private sealed class FreezeAtFirstCheckpoint(FineTuneRunner runner, FineTuneJobStore store) : IModelBackgroundWork
    {
        private volatile bool _frozen;
        private readonly TaskCompletionSource _frozenAt = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>Completes once the job is frozen with its checkpoint on disk.</summary>
        public Task Frozen => _frozenAt.Task;

        public bool HasWork => !_frozen && runner.HasWork;

        public Task WaitForWorkAsync(CancellationToken cancellationToken) => _frozen
            ? Task.Delay(Timeout.Infinite, cancellationToken)
            : runner.WaitForWorkAsync(cancellationToken);

        public void RunSlice(ParaphraseService.Model.Loading.LoadedModel model)
        {
            runner.RunSlice(model);
            var jobs = Path.Combine(store.Directory, "jobs");
            _frozen = Directory.Exists(jobs) && Directory.EnumerateDirectories(jobs, "step-*", SearchOption.AllDirectories).Any();
            if (_frozen) _frozenAt.TrySetResult();
        }

        public void Stop() => runner.Stop();
    }

    [Fact]
    public async Task AJobLearnsTheMappingAndItsAdapterIsServedRightAfter()
    {
        await using var host = await StartAsync();
        var job = await SubmitAsync(host.Admin, Learn, ReverseWordsJsonl(110, 1));
        Assert.Equal(FineTuneState.Queued, job.State);
        Assert.Equal(110, job.Dataset!.Value.GetProperty("pairsRead").GetInt32());
        Assert.True(job.Dataset.Value.GetProperty("evalCount").GetInt32() > 0);

        var events = await FollowAsync(host.Admin, job.Id);
        var done = events.Last().Data.Deserialize<FineTuneJob>(FineTuneJobStore.Json)!;
        Assert.Equal(FineTuneState.Succeeded, done.State);
        Assert.Equal(40, done.Step);
        Assert.Equal(40, done.TrainLoss.Count);
        Assert.Equal([10, 20, 30, 40], done.EvalLoss.Select(p => p.Step)); // every 10 steps, and at the end
        Assert.Contains(events, e => e.Type == "step");
        Assert.Contains(events, e => e.Type == "scored");
        var before = done.Metrics["eval_loss_base"];
        var after = done.Metrics["eval_loss"];
        output.WriteLine($"eval loss {before:F3} -> {after:F3}; BLEU {done.Metrics["bleu"]:F1}, self-BLEU {done.Metrics["self_bleu"]:F1}, iBLEU {done.Metrics["ibleu"]:F1}");
        Assert.True(after <= 0.5 * before, $"eval loss {before} -> {after}");
        Assert.Empty(Directory.GetDirectories(host.Services.GetRequiredService<FineTuneJobStore>().JobFolder(job.Id), "checkpoints"));

        // Published at once: listed as a fine-tune with its metrics, and served.
        var adapter = await host.Client.GetFromJsonAsync<JsonElement>("/adapters/reverse");
        Assert.Equal("fine-tune", adapter.GetProperty("origin").GetString());
        using var paraphrase = await host.Client.PostAsJsonAsync("/paraphrase", new { text = "red cat sun", adapter = "reverse", temperature = 0, candidates = 1 });
        Assert.Equal(HttpStatusCode.OK, paraphrase.StatusCode);
        var metadata = AdapterMetadataOf(host, "reverse");
        Assert.Contains("\"ibleu\"", metadata);
        Assert.Contains("Source: {text}", metadata);
    }

    [Theory]
    [InlineData("fbgemm")]
    [InlineData("avx2")]
    public async Task OnAnInt8ModelTheMatricesForTrainingExistOnlyWhileAJobRuns(string kernel)
    {
        await using var host = await StartAsync(new() { ["Model:Quantization"] = "int8", ["Model:Int8Kernel"] = kernel });
        var model = host.Services.GetRequiredService<ParaphraseService.Api.Hosting.ModelHost>().Model!.Model;
        var layers = ParaphraseService.Model.Loading.Int8TrainingMatrices.Missing(model).Count;
        // fbgemm serves from its packed weights alone; the AVX2 kernel multiplies with the int8 matrix itself
        if (kernel == "fbgemm") Assert.True(layers > 0);
        else Assert.Equal(0, layers);

        var job = await SubmitAsync(host.Admin, Learn, ReverseWordsJsonl(110, 1));
        var done = await FinishedAsync(host.Admin, job.Id);
        Assert.Equal(FineTuneState.Succeeded, done.State);
        output.WriteLine($"int8 base: eval loss {done.Metrics["eval_loss_base"]:F3} -> {done.Metrics["eval_loss"]:F3}");
        Assert.True(done.Metrics["eval_loss"] <= 0.5 * done.Metrics["eval_loss_base"]);
        // Derived from the checkpoint for the job, released after it.
        Assert.Equal(layers, ParaphraseService.Model.Loading.Int8TrainingMatrices.Missing(model).Count);
        using var paraphrase = await host.Client.PostAsJsonAsync("/paraphrase", new { text = "red cat sun", adapter = "reverse", temperature = 0, candidates = 1 });
        Assert.Equal(HttpStatusCode.OK, paraphrase.StatusCode);
    }

    private static string AdapterMetadataOf(AdapterServiceHost host, string name) =>
        File.ReadAllText(Path.Combine(host.Store.GetFolder(name)!, ParaphraseService.Model.Lora.Peft.AdapterMetadata.FileName));

    [Fact]
    public async Task AJobInterruptedByARestartResumesFromItsCheckpointAndMatchesAnUninterruptedRun()
    {
        var jobs = Directory.CreateTempSubdirectory("fine-tunes-restart-").FullName;
        var options = new
        {
            adapter = "resumed", targetModules = new[] { "q_proj", "v_proj" }, rank = 4, learningRate = 5e-3, batchSize = 4, gradientAccumulation = 2,
            dropout = 0.1, maxSteps = 12, epochs = 5, checkpointEverySteps = 3, bleuSamples = 0,
        };
        var data = ReverseWordsJsonl(60, 2);
        string id;
        await using (var first = await StartAsync(new() { ["FineTunes:Directory"] = jobs }, services =>
            services.AddSingleton<IModelBackgroundWork>(provider =>
                new FreezeAtFirstCheckpoint(provider.GetRequiredService<FineTuneRunner>(), provider.GetRequiredService<FineTuneJobStore>()))))
        {
            id = (await SubmitAsync(first.Admin, options, data)).Id;
            // The service stops with the job frozen right after its first checkpoint (step 3).
            await ((FreezeAtFirstCheckpoint)first.Services.GetRequiredService<IModelBackgroundWork>()).Frozen.WaitAsync(TimeSpan.FromMinutes(2));
            Assert.Equal(FineTuneState.Running, (await GetAsync(first.Admin, id)).State);
        }
        string resumedFolder;
        await using var second = await StartAsync(new() { ["FineTunes:Directory"] = jobs });
        var resumed = await FinishedAsync(second.Admin, id);
        Assert.Equal(FineTuneState.Succeeded, resumed.State);
        Assert.Equal(3, resumed.ResumedFromStep);
        Assert.Equal(12, resumed.TrainLoss.Count); // the steps before the restart are kept, the redone ones replaced
        resumedFolder = second.Store.GetFolder("resumed")!;

        await using var uninterrupted = await StartAsync();
        var straight = await FinishedAsync(uninterrupted.Admin, (await SubmitAsync(uninterrupted.Admin, options, data)).Id);
        Assert.Equal(FineTuneState.Succeeded, straight.State);
        Assert.Null(straight.ResumedFromStep);

        using var a = new SafetensorsReader(Path.Combine(resumedFolder, "adapter_model.safetensors"));
        using var b = new SafetensorsReader(Path.Combine(uninterrupted.Store.GetFolder("resumed")!, "adapter_model.safetensors"));
        Assert.Equal(a.Tensors.Keys.Order(), b.Tensors.Keys.Order());
        var largest = a.Tensors.Keys.Max(name =>
        {
            using var x = a.Read(name);
            using var y = b.Read(name);
            return (x - y).abs().max().item<float>();
        });
        output.WriteLine($"resumed from step {resumed.ResumedFromStep}; largest difference to the uninterrupted adapter {largest:E2}");
        Assert.True(largest < 1e-5, $"resumed adapter differs by {largest}");
        Directory.Delete(jobs, recursive: true);
    }

    private static object Endless(string adapter) => new { adapter, rank = 2, batchSize = 2, epochs = 1000, bleuSamples = 0, checkpointEverySteps = 1000 };

    [Fact]
    public async Task AtMostKJobsRunTheRestWaitInOrderAndCancelStopsEither()
    {
        await using var host = await StartAsync(new() { ["FineTunes:MaxConcurrentJobs"] = "2" });
        var data = ReverseWordsJsonl(40, 3);
        var a = await SubmitAsync(host.Admin, Endless("a"), data);
        var b = await SubmitAsync(host.Admin, Endless("b"), data);
        var c = await SubmitAsync(host.Admin, Endless("c"), data);
        var d = await SubmitAsync(host.Admin, Endless("d"), data);
        await FollowAsync(host.Admin, a.Id, (type, e) => type == "step");
        await FollowAsync(host.Admin, b.Id, (type, e) => type == "step"); // both train at once...

        var waiting = await GetAsync(host.Admin, c.Id); // ...the others wait, in order
        Assert.Equal(FineTuneState.Queued, waiting.State);
        Assert.Equal(0, waiting.QueuePosition);
        Assert.Equal(1, (await GetAsync(host.Admin, d.Id)).QueuePosition);
        Assert.Equal(2, host.Services.GetRequiredService<FineTuneRunner>().RunningCount);

        // A queued job is cancelled at once.
        using (var cancelled = await host.Admin.PostAsync($"/admin/fine-tunes/{c.Id}/cancel", null))
            Assert.Equal(HttpStatusCode.Accepted, cancelled.StatusCode);
        Assert.Equal(FineTuneState.Cancelled, (await GetAsync(host.Admin, c.Id)).State);

        // A running one stops before its next step and frees its place for the next in line.
        using (var cancelled = await host.Admin.PostAsync($"/admin/fine-tunes/{a.Id}/cancel", null))
            Assert.Equal(HttpStatusCode.Accepted, cancelled.StatusCode);
        var stopped = await FinishedAsync(host.Admin, a.Id);
        Assert.Equal(FineTuneState.Cancelled, stopped.State);
        Assert.True(stopped.Step < stopped.TotalSteps);
        await FollowAsync(host.Admin, d.Id, (type, e) => type == "step");

        foreach (var job in new[] { b, d })
        {
            using var response = await host.Admin.PostAsync($"/admin/fine-tunes/{job.Id}/cancel", null);
            Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
            Assert.Equal(FineTuneState.Cancelled, (await FinishedAsync(host.Admin, job.Id)).State);
        }
        using (var again = await host.Admin.PostAsync($"/admin/fine-tunes/{a.Id}/cancel", null))
            await AssertProblem(again, HttpStatusCode.Conflict);
        using (var unknown = await host.Admin.GetAsync("/admin/fine-tunes/ft-000000000000"))
            await AssertProblem(unknown, HttpStatusCode.NotFound);
        var all = await host.Admin.GetFromJsonAsync<List<FineTuneJob>>("/admin/fine-tunes", FineTuneJobStore.Json);
        Assert.Equal([d.Id, c.Id, b.Id, a.Id], all!.Select(j => j.Id)); // newest first
        Assert.False(host.Store.Exists("a")); // a cancelled job publishes nothing
    }

    [Fact]
    public async Task ServingGoesOnWhileAJobTrainsAndTheJobGoesOnAfterwards()
    {
        await using var host = await StartAsync();
        var job = await SubmitAsync(host.Admin, Endless("busy"), ReverseWordsJsonl(40, 6));
        var steps = await FollowAsync(host.Admin, job.Id, (type, _) => type == "step");
        var stepBefore = steps.Last().Data.GetProperty("step").GetInt32();

        // Requests are served between the job's micro-batches...
        for (var i = 0; i < 3; i++)
        {
            using var response = await host.Client.PostAsJsonAsync("/paraphrase", new { text = "red cat sun", candidates = 2, maxNewTokens = 8, seed = i });
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
        // ...and the job trains on once they are done.
        var later = await FollowAsync(host.Admin, job.Id, (type, e) => type == "step" && e.GetProperty("step").GetInt32() > stepBefore + 1);
        Assert.Equal(FineTuneState.Running, (await GetAsync(host.Admin, job.Id)).State);
        using (var cancel = await host.Admin.PostAsync($"/admin/fine-tunes/{job.Id}/cancel", null))
            Assert.Equal(HttpStatusCode.Accepted, cancel.StatusCode);
        Assert.Equal(FineTuneState.Cancelled, (await FinishedAsync(host.Admin, job.Id)).State);
    }

    public static TheoryData<string, string, string> BadDatasets => new()
    {
        { "wrong columns", "pairs.tsv", "text\tother\nhello\tworld\n" },
        { "empty", "pairs.jsonl", "" },
        { "binary", "pairs.jsonl", "\u0000\u0001\u0002PK\u0003\u0004\u00ff" },
        { "bad label", "paws.tsv", "id\tsentence1\tsentence2\tlabel\n1\tA cat sat.\tThe cat sat.\t1\n2\tA dog ran.\tThe dog ran.\tyes\n" },
        { "bad json line", "pairs.jsonl", "{\"source\": \"a b\", \"target\": \"b a\"}\n{\"source\": \"c d\"\n" },
    };

    [Theory]
    [MemberData(nameof(BadDatasets))]
    public async Task ABadDatasetIsRefusedWithWhereItsProblemsAre(string why, string fileName, string escaped)
    {
        await using var host = await StartAsync();
        var content = System.Text.RegularExpressions.Regex.Unescape(escaped);
        var bytes = why == "binary" ? content.Select(c => (byte)c).ToArray() : System.Text.Encoding.UTF8.GetBytes(content);
        using var response = await host.Admin.PostAsync("/admin/fine-tunes", Form(new { adapter = "bad" }, bytes, fileName));
        var problem = await AssertProblem(response, HttpStatusCode.BadRequest);
        var messages = problem.GetProperty("errors").GetProperty("dataset").EnumerateArray().Select(m => m.GetString()!).ToList();
        output.WriteLine($"{why}: {string.Join(" | ", messages)}");
        Assert.NotEmpty(messages);
        if (why is "bad label" or "bad json line")
            Assert.Contains(messages, m => m.Contains(why == "bad label" ? "line 3" : "line 2", StringComparison.Ordinal));
        Assert.Empty(await host.Admin.GetFromJsonAsync<List<FineTuneJob>>("/admin/fine-tunes", FineTuneJobStore.Json) ?? []);
        Assert.Empty(Directory.Exists(Path.Combine(host.Services.GetRequiredService<FineTuneJobStore>().Directory, "jobs"))
            ? Directory.GetDirectories(Path.Combine(host.Services.GetRequiredService<FineTuneJobStore>().Directory, "jobs")) : []);
    }

    [Fact]
    public async Task OneHugeLineIsRefusedWithItsLineNumber()
    {
        await using var host = await StartAsync();
        var huge = "{\"source\": \"a b\", \"target\": \"b a\"}\n{\"source\": \"" + new string('x', 2 << 20) + "\", \"target\": \"y\"}\n";
        using var response = await host.Admin.PostAsync("/admin/fine-tunes", Form(new { adapter = "huge" }, huge));
        var problem = await AssertProblem(response, HttpStatusCode.BadRequest);
        Assert.Contains("line 2", problem.GetProperty("errors").GetProperty("dataset")[0].GetString());
    }

    [Fact]
    public async Task BadOptionsAndRequestsGetProblemDetails()
    {
        await using var host = await StartAsync();
        var data = ReverseWordsJsonl(20, 4);
        using (var response = await host.Admin.PostAsync("/admin/fine-tunes", Form(new { adapter = "x", rank = 0, learningRate = 2.0 }, data)))
        {
            var problem = await AssertProblem(response, HttpStatusCode.BadRequest);
            Assert.Contains("rank", problem.GetProperty("errors").GetRawText());
            // the detail says what the errors say (it was "The request is malformed.")
            Assert.StartsWith("2 problems: ", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
            Assert.Contains("rank: ", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        }
        using (var response = await host.Admin.PostAsync("/admin/fine-tunes", Form(new { adapter = "../evil" }, data)))
        {
            var problem = await AssertProblem(response, HttpStatusCode.BadRequest);
            Assert.True(problem.GetProperty("errors").TryGetProperty("adapter", out _));
            Assert.StartsWith("adapter: ", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        }
        using (var response = await host.Admin.PostAsync("/admin/fine-tunes", Form(new { adapter = "x", schedule = "sideways" }, data)))
            await AssertProblem(response, HttpStatusCode.BadRequest);
        using (var response = await host.Admin.PostAsJsonAsync("/admin/fine-tunes", new { adapter = "x", datasetPath = "/etc/passwd" }))
            Assert.True((await AssertProblem(response, HttpStatusCode.BadRequest)).GetProperty("errors").TryGetProperty("datasetPath", out _));
        using (var response = await host.Admin.PostAsync("/admin/fine-tunes", new StringContent("hello")))
        {
            var problem = await AssertProblem(response, HttpStatusCode.UnsupportedMediaType);
            Assert.Equal("Unsupported Media Type", problem.GetProperty("title").GetString());
            Assert.EndsWith("(got 'text/plain; charset=utf-8').", problem.GetProperty("detail").GetString());
        }
        using (var response = await host.Client.PostAsync("/admin/fine-tunes", Form(new { adapter = "x" }, data)))
            await AssertProblem(response, HttpStatusCode.Unauthorized);

        // A name already taken needs replace: true.
        var job = await SubmitAsync(host.Admin, new { adapter = "taken", rank = 2, maxSteps = 1, bleuSamples = 0 }, data);
        Assert.Equal(FineTuneState.Succeeded, (await FinishedAsync(host.Admin, job.Id)).State);
        // Without a template the job trained with the fine-tune prompt, and its metadata says so (it is served with it).
        var metadata = ParaphraseService.Model.Lora.Peft.AdapterMetadata.Load(Path.Combine(host.Store.GetFolder("taken")!, ParaphraseService.Model.Lora.Peft.AdapterMetadata.FileName));
        Assert.Equal(ParaphraseService.Training.Prompts.PromptTemplate.FineTuneTemplateText, metadata.PromptTemplate);
        using (var response = await host.Admin.PostAsync("/admin/fine-tunes", Form(new { adapter = "taken" }, data)))
            await AssertProblem(response, HttpStatusCode.Conflict);
        var replaced = await SubmitAsync(host.Admin, new { adapter = "taken", replace = true, rank = 2, maxSteps = 1, bleuSamples = 0 }, data);
        Assert.Equal(FineTuneState.Succeeded, (await FinishedAsync(host.Admin, replaced.Id)).State);
    }

    [Fact]
    public async Task ADatasetOnTheServerUnderAConfiguredRoot()
    {
        var root = Directory.CreateTempSubdirectory("datasets-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(root, "pairs.jsonl"), ReverseWordsJsonl(20, 5));
            await using var host = await StartAsync(new() { ["FineTunes:DatasetRoots:0"] = root });
            using var response = await host.Admin.PostAsJsonAsync("/admin/fine-tunes",
                new { adapter = "from-path", datasetPath = Path.Combine(root, "pairs.jsonl"), rank = 2, maxSteps = 2, bleuSamples = 0 });
            Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
            var job = (await response.Content.ReadFromJsonAsync<FineTuneJob>(FineTuneJobStore.Json))!;
            Assert.Equal(FineTuneState.Succeeded, (await FinishedAsync(host.Admin, job.Id)).State);
            using var escape = await host.Admin.PostAsJsonAsync("/admin/fine-tunes",
                new { adapter = "escape", datasetPath = Path.Combine(root, "..", Path.GetFileName(root) + "-other", "x.jsonl") });
            await AssertProblem(escape, HttpStatusCode.BadRequest);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    private static async Task<JsonElement> AssertProblem(HttpResponseMessage response, HttpStatusCode status)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"expected {(int)status}, got {(int)response.StatusCode}: {body}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        return JsonDocument.Parse(body).RootElement;
    }
}

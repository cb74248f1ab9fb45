using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using ParaphraseService.Api.Hosting;
using ParaphraseService.Api.Scheduling;
using ParaphraseService.Api.Tests.Adapters;
using ParaphraseService.Model.Generation;
using ParaphraseService.Model.Loading;
using ParaphraseService.Model.Lora;
using ParaphraseService.Model.Lora.Peft;
using ParaphraseService.Training.Prompts;
using static TorchSharp.torch;

namespace ParaphraseService.Api.Tests.Robustness;

/// <summary>
/// What goes wrong for one request fails that request only: faults are injected into the real model between steps
/// (through the scheduler's own command channel, so no forward pass races them) and requests go through real HTTP.
/// </summary>
public sealed class FaultIsolationTests
{
    private const string Prompt = "!#"; // two ids below 128, the tiny model's vocabulary

    private static Task<AdapterServiceHost> Start(Dictionary<string, string?>? settings = null) => AdapterServiceHost.StartAsync(settings);

    private static async Task Register(AdapterServiceHost host, string name)
    {
        var response = await host.Admin.PostAsJsonAsync("/admin/adapters", new { name, path = AdapterFixtures.Peft("q-v") });
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        await (await host.Admin.PostAsync($"/admin/adapters/{name}/load", null)).JsonAsync();
    }

    /// <summary>Runs <paramref name="action"/> on the scheduler's thread, between two decode steps.</summary>
    private static Task OnModelThread(AdapterServiceHost host, Action<LoadedModel> action) =>
        host.Services.GetRequiredService<ModelThreadCommands>().RunAsync(context =>
        {
            using var _ = no_grad();
            action(context.Model);
            return true;
        });

    private static Task<HttpResponseMessage> Complete(HttpClient client, string? model, int maxTokens = 6) =>
        client.PostAsJsonAsync("/v1/completions", new { model, prompt = Prompt, max_tokens = maxTokens, temperature = 0 });

    private static string Greedy(string? adapterFolder, int maxTokens = 6)
    {
        using var model = ModelLoader.LoadFolder(AdapterFixtures.TinyModel, new ModelLoadOptions { Device = "cpu", MaxResidentAdapters = 1 });
        var adapter = adapterFolder is null ? null : model.Adapters!.LoadFolder(adapterFolder, "a").Adapter;
        return model.CreateGenerator().Generate(Prompt, new GenerationOptions { Greedy = true, MaxNewTokens = maxTokens }, adapter: adapter).Text;
    }

    [Fact]
    public async Task ARowWhoseLogitsTurnNaNFailsAloneAndTheRestOfItsBatchCompletes()
    {
        await using var host = await Start();
        await Register(host, "poisoned");
        await Register(host, "healthy");
        // Only rows routed to this adapter get NaN activations: the fault belongs to one row of a mixed batch.
        await OnModelThread(host, model =>
        {
            foreach (var (_, (a, _)) in model.Adapters!.Get("poisoned")!.Matrices)
                a.fill_(double.NaN);
        });

        var requests = new[] { "poisoned", null, "healthy", null }.Select(model => Complete(host.Client, model, maxTokens: 24)).ToList();
        var responses = await Task.WhenAll(requests);

        // The adapter's fault, not the server's: 422, naming it.
        var failed = await responses[0].AssertProblemAsync(HttpStatusCode.UnprocessableEntity);
        Assert.Contains("adapter 'poisoned'", failed.Detail());
        Assert.False(string.IsNullOrEmpty(failed.GetProperty("traceId").GetString()));
        var baseText = Greedy(null, 24);
        var healthyText = Greedy(AdapterFixtures.Peft("q-v"), 24);
        Assert.Equal(baseText, (await responses[1].JsonAsync()).GetProperty("choices")[0].GetProperty("text").GetString());
        Assert.Equal(healthyText, (await responses[2].JsonAsync()).GetProperty("choices")[0].GetProperty("text").GetString());
        Assert.Equal(baseText, (await responses[3].JsonAsync()).GetProperty("choices")[0].GetProperty("text").GetString());

        // The next request works, and the service stayed ready (one row's failure is not the model's).
        Assert.Equal(baseText, (await (await Complete(host.Client, null, 24)).JsonAsync()).GetProperty("choices")[0].GetProperty("text").GetString());
        Assert.Equal(HttpStatusCode.OK, (await host.Client.GetAsync("/health/ready")).StatusCode);
        Assert.Equal(422, await NextStatusAsync(host, 422));
    }

    [Fact]
    public async Task AForwardPassThatThrowsFailsItsRequestsAndTheAdapterIsReadAgainOnItsNextUse()
    {
        await using var host = await Start();
        await Register(host, "broken");
        // A freed tensor: the next forward pass that routes a row to this adapter throws.
        await OnModelThread(host, model => model.Adapters!.Get("broken")!.Matrices.First().Value.A.Dispose());

        var failed = await (await Complete(host.Client, "broken")).AssertProblemAsync(HttpStatusCode.InternalServerError);
        Assert.Contains("trace id", failed.Detail());

        // The adapter was unloaded after the failure and loads again from its files: the same request now works.
        var text = (await (await Complete(host.Client, "broken")).JsonAsync()).GetProperty("choices")[0].GetProperty("text").GetString();
        Assert.Equal(Greedy(AdapterFixtures.Peft("q-v")), text);
        Assert.Equal(HttpStatusCode.OK, (await host.Client.GetAsync("/health/ready")).StatusCode);
        Assert.Equal(500, await NextStatusAsync(host, 500));
    }

    [Fact]
    public async Task BannedTextThatLeavesNoTokenIsA400ForItsRequestAlone()
    {
        // The 16-token model's whole vocabulary, one byte a token. A term bans the tokens that would complete it, which among
        // single-byte tokens is one byte (a letter's two cases): 16 terms, a request's most, could never ban GPT-2's 256.
        var vocabulary = Enumerable.Range(0, 16).Select(i => ((char)('!' + i)).ToString()).ToArray();
        var model = TinyFamilyModels.Folder(TinyFamilyModels.SixteenTokens);
        await using var host = await Start(new() { ["Model:Source"] = model });
        // /paraphrase puts its text in a template; this adapter's is the text alone, so every prompt token has a logit.
        var adapter = WriteTextOnlyAdapter(model, Path.Combine(host.Root, "text-only"));
        Assert.Equal(HttpStatusCode.Created, (await host.Admin.PostAsJsonAsync("/admin/adapters", new { name = "text-only", path = adapter })).StatusCode);
        Task<HttpResponseMessage> Paraphrase(string[] avoid, bool stream = false) => host.Client.PostAsJsonAsync("/paraphrase",
            new { text = Prompt, adapter = "text-only", candidates = 2, maxNewTokens = 4, seed = 1, avoid, stream });

        // All but the last token banned: it is all the model may write.
        var served = (await (await Paraphrase(vocabulary[..^1])).JsonAsync()).GetProperty("results")[0];
        Assert.Equal(2, served.GetProperty("generated").GetInt32());
        Assert.Equal(["0000"], served.GetProperty("candidates").EnumerateArray().Select(c => c.GetProperty("text").GetString()));

        // All banned: the first token cannot be chosen. The request's fault (400), streamed or not, before any stream starts.
        const string Detail = "Every token would produce banned text; this sequence cannot go on. Avoid fewer terms.";
        foreach (var stream in new[] { false, true })
        {
            var problem = await (await Paraphrase(vocabulary, stream)).AssertProblemAsync(HttpStatusCode.BadRequest);
            Assert.Equal("Invalid request", problem.GetProperty("title").GetString());
            Assert.Equal(Detail, problem.Detail());
            Assert.False(problem.TryGetProperty("error", out _));
            // the field at fault named, as a validation error names it
            Assert.Equal(Detail, problem.GetProperty("errors").GetProperty("avoid")[0].GetString());
        }
        var completion = await (await host.Client.PostAsJsonAsync("/v1/completions", new { prompt = Prompt, max_tokens = 4, avoid = vocabulary }))
            .AssertProblemAsync(HttpStatusCode.BadRequest);
        Assert.Equal("Invalid request", completion.GetProperty("title").GetString());
        Assert.Equal(Detail, completion.Detail());
        var error = completion.GetProperty("error");
        Assert.Equal(Detail, error.GetProperty("message").GetString());
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal("avoid", error.GetProperty("param").GetString());
        Assert.Equal(JsonValueKind.Null, error.GetProperty("code").ValueKind);

        // The model is fine: the service stays ready and serves the next request.
        Assert.Equal(HttpStatusCode.OK, (await host.Client.GetAsync("/health/ready")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await Paraphrase(vocabulary[..^1])).StatusCode);
    }

    /// <summary>A LoRA adapter for the model in <paramref name="model"/> whose prompt template is the text alone; returns <paramref name="folder"/>.</summary>
    private static string WriteTextOnlyAdapter(string model, string folder)
    {
        using var loaded = ModelLoader.LoadFolder(model, new ModelLoadOptions { Device = "cpu", MaxResidentAdapters = 1 });
        var registry = loaded.Adapters!;
        var targets = registry.Targets.Where(t => t.Key.EndsWith("c_attn", StringComparison.Ordinal)).ToDictionary(t => t.Key, t => t.Value);
        using var adapter = LoraAdapter.CreateNew("text-only", rank: 2, alpha: 4, useRsLora: false, dropout: 0, targets, CPU, seed: 1);
        var config = new PeftLoraConfig { R = 2, LoraAlpha = 4, TargetModules = PeftTargetModules.FromNames(["c_attn"]) };
        var modules = adapter.Matrices.ToDictionary(m => m.Key, m => new LoraWeights(m.Value.A, m.Value.B));
        var metadata = new AdapterMetadata { PromptTemplate = PromptTemplate.Placeholder, Origin = AdapterOrigin.Upload, Created = DateTimeOffset.UtcNow };
        using var peft = PeftAdapter.Create("text-only", config, modules, registry.Target, metadata);
        PeftAdapterFiles.Save(folder, peft);
        return folder;
    }

    [Fact]
    public async Task AFailureOnEveryStepMakesTheServiceNotReadyUntilAStepWorksAgain()
    {
        await using var host = await Start();
        Tensor? saved = null;
        // Every row of every step now has NaN logits: the model, not a request, is broken.
        await OnModelThread(host, model =>
        {
            var weight = model.Model.named_parameters().Single(p => p.name == "transformer.ln_f.weight").parameter;
            saved = weight.clone().DetachFromDisposeScope();
            weight.fill_(double.NaN);
        });
        for (var i = 0; i < SchedulerHealth.FailuresBeforeNotReady; i++)
            await (await Complete(host.Client, null)).AssertProblemAsync(HttpStatusCode.InternalServerError);
        var notReady = await (await host.Client.GetAsync("/health/ready")).AssertProblemAsync(HttpStatusCode.ServiceUnavailable);
        Assert.Contains("decode steps failed", notReady.Detail());
        Assert.Equal(HttpStatusCode.OK, (await host.Client.GetAsync("/health/live")).StatusCode);

        // Repaired: the next step works and the service is ready again.
        await OnModelThread(host, model => model.Model.named_parameters().Single(p => p.name == "transformer.ln_f.weight").parameter.copy_(saved!));
        Assert.Equal(Greedy(null), (await (await Complete(host.Client, null)).JsonAsync()).GetProperty("choices")[0].GetProperty("text").GetString());
        Assert.Equal(HttpStatusCode.OK, (await host.Client.GetAsync("/health/ready")).StatusCode);
        saved!.Dispose();
        for (var i = 0; i < SchedulerHealth.FailuresBeforeNotReady; i++)
            Assert.Equal(500, await NextStatusAsync(host, 500));
    }

    [Fact]
    public async Task ReadinessTurnsFalseAsSoonAsShutdownStarts()
    {
        await using var app = new ServiceApplication();
        await app.ModelLoaded();
        using var client = app.CreateClient();
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/health/ready")).StatusCode);
        var lifetime = app.Services.GetRequiredService<IHostApplicationLifetime>();
        var seen = new TaskCompletionSource<HttpStatusCode>();
        // Asked from inside the stopping notice, before the host goes on to stop the server.
        lifetime.ApplicationStopping.Register(() => seen.SetResult(client.GetAsync("/health/ready").GetAwaiter().GetResult().StatusCode));
        lifetime.StopApplication();
        Assert.Equal(HttpStatusCode.ServiceUnavailable, await seen.Task.WaitAsync(TimeSpan.FromMinutes(1)));
    }

    /// <summary>The next final status the service recorded that equals <paramref name="expected"/>, skipping others.</summary>
    private static async Task<int> NextStatusAsync(AdapterServiceHost host, int expected)
    {
        while (true)
        {
            var status = await host.NextStatusAsync();
            if (status == expected) return status;
        }
    }
}

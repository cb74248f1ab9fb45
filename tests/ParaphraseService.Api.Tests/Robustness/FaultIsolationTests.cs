using System.Net;
using System.Net.Http.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using ParaphraseService.Api.Hosting;
using ParaphraseService.Api.Scheduling;
using ParaphraseService.Api.Tests.Adapters;
using ParaphraseService.Model.Generation;
using ParaphraseService.Model.Loading;
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

using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using ParaphraseService.Model.Generation;
using ParaphraseService.Model.Loading;
using ParaphraseService.Model.Tests;

namespace ParaphraseService.Api.Tests;

/// <summary>An adapter registered through the admin API is served by /v1/completions and /paraphrase without a restart.</summary>
public sealed class AdapterServingTests : IDisposable
{
    private const string Key = "test-admin-key-0123456789";
    private static readonly string Base = Fixtures.Get("gptj-tiny", "safetensors");
    private readonly string _adapters = Directory.CreateTempSubdirectory("served-adapters-").FullName;

    public void Dispose() => Directory.Delete(_adapters, recursive: true);

    [Fact]
    public async Task RegisteredAdapterIsListedAndServedLikeTheModelLayerComputesIt()
    {
        await using var app = new ServiceApplication(new()
        {
            ["Model:Source"] = Base,
            ["Admin:ApiKey"] = Key,
            ["Adapters:Directory"] = _adapters,
        });
        await app.ModelLoaded();
        using var client = app.CreateClient();
        client.DefaultRequestHeaders.Add("X-Api-Key", Key);
        var register = await client.PostAsJsonAsync("/admin/adapters", new { name = "qv", path = Fixtures.Get("peft", "q-v") });
        Assert.Equal(HttpStatusCode.Created, register.StatusCode);

        var models = await client.GetFromJsonAsync<JsonElement>("/v1/models");
        Assert.Contains(models.GetProperty("data").EnumerateArray(), m => m.GetProperty("id").GetString() == "qv");

        // "!#" is two ids under 128, the tiny model's vocabulary.
        var completion = await client.PostAsJsonAsync("/v1/completions", new { model = "qv", prompt = "!#", max_tokens = 6, temperature = 0 });
        Assert.Equal(HttpStatusCode.OK, completion.StatusCode);
        var text = (await completion.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("choices")[0].GetProperty("text").GetString();

        using var model = ModelLoader.LoadFolder(Base, new ModelLoadOptions { Device = "cpu", MaxResidentAdapters = 1 });
        var (adapter, _, _) = model.Adapters!.LoadFolder(Fixtures.Get("peft", "q-v"), "qv");
        var generator = model.CreateGenerator();
        var greedy = new GenerationOptions { Greedy = true, MaxNewTokens = 6 };
        Assert.Equal(generator.Generate("!#", greedy, adapter: adapter).Text, text);
        Assert.NotEqual(generator.Generate("!#", greedy).Text, text);

        var info = await client.GetFromJsonAsync<JsonElement>("/adapters/qv");
        Assert.Equal(1, info.GetProperty("requestsServed").GetInt32());
        Assert.True(info.GetProperty("loaded").GetBoolean()); // loaded on first use

        var unloaded = await client.PostAsync("/admin/adapters/qv/unload", null);
        Assert.False((await unloaded.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("loaded").GetBoolean());
        var loaded = await client.PostAsync("/admin/adapters/qv/load", null);
        Assert.True((await loaded.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("loaded").GetBoolean());
        Assert.Equal(HttpStatusCode.NotFound, (await client.PostAsync("/admin/adapters/nope/load", null)).StatusCode);
    }
}

public class AdminPortTests
{
    [Fact]
    public async Task AdminEndpointsAnswerOnlyOnTheirOwnPortWhenOneIsSet()
    {
        await using var app = new ServiceApplication(new() { ["Admin:ApiKey"] = "test-admin-key-0123456789", ["Admin:Port"] = "9" });
        using var client = app.CreateClient();
        client.DefaultRequestHeaders.Add("X-Api-Key", "test-admin-key-0123456789");
        Assert.Equal(HttpStatusCode.NotFound, (await client.DeleteAsync("/admin/adapters/x")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/adapters")).StatusCode); // the public API is unaffected
    }
}

public sealed class MixedAdapterServingTests : IDisposable
{
    private const string Key = "test-admin-key-0123456789";
    private static readonly string Base = Fixtures.Get("gptj-tiny", "safetensors");
    private readonly string _adapters = Directory.CreateTempSubdirectory("mixed-adapters-").FullName;

    public void Dispose() => Directory.Delete(_adapters, recursive: true);

    [Fact]
    public async Task ConcurrentRequestsForDifferentAdaptersGetWhatEachGetsAlone()
    {
        await using var app = new ServiceApplication(new()
        {
            ["Model:Source"] = Base, ["Admin:ApiKey"] = Key, ["Adapters:Directory"] = _adapters, ["Scheduler:MaxBatchRows"] = "6",
        });
        await app.ModelLoaded();
        using var client = app.CreateClient();
        client.DefaultRequestHeaders.Add("X-Api-Key", Key);
        foreach (var (name, fixture) in new[] { ("qv", "q-v"), ("mlp", "regex-mlp") })
            (await client.PostAsJsonAsync("/admin/adapters", new { name, path = Fixtures.Get("peft", fixture) })).EnsureSuccessStatusCode();

        async Task<string[]> Complete(string? model, long seed) =>
            (await (await client.PostAsJsonAsync("/v1/completions", new { model, prompt = "!#", max_tokens = 20, n = 2, seed, temperature = 1.2 }))
                .Content.ReadFromJsonAsync<JsonElement>()).GetProperty("choices").EnumerateArray().Select(c => c.GetProperty("text").GetString()!).ToArray();

        // Alone, one after the other; then all at once, so the scheduler mixes base, qv and mlp rows in its steps.
        var alone = new[] { await Complete(null, 1), await Complete("qv", 2), await Complete("mlp", 3) };
        var together = await Task.WhenAll(Complete(null, 1), Complete("qv", 2), Complete("mlp", 3));
        for (var i = 0; i < 3; i++)
            Assert.Equal(alone[i], together[i]);
        Assert.NotEqual(alone[1], alone[2]);
    }
}

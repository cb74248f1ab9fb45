using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using ParaphraseService.Model.Loading;
using static ParaphraseService.Api.Tests.FineTuning.FineTuneFixtures;

namespace ParaphraseService.Api.Tests.Adapters;

/// <summary>
/// The demo model's paraphrase adapter, built into the model: listed with the stored adapters, the default for
/// <c>/paraphrase</c> unless the operator says otherwise, and never deleted or replaced.
/// </summary>
public class BuiltInAdapterTests
{
    private const string Input = "The meeting was moved to Friday afternoon .";

    private static Task<AdapterServiceHost> StartDemoAsync(Dictionary<string, string?>? settings = null)
    {
        var all = new Dictionary<string, string?> { ["Model:Source"] = "demo" };
        foreach (var (key, value) in settings ?? [])
            all[key] = value;
        return AdapterServiceHost.StartAsync(all);
    }

    [Fact]
    public async Task GetAdaptersListsTheDemoAdapterAsBuiltIn()
    {
        await using var service = await StartDemoAsync();

        var list = await (await service.Client.GetAsync("/adapters")).JsonAsync();
        var builtIn = Assert.Single(list.EnumerateArray(), a => a.GetProperty("name").GetString() == DemoModel.AdapterName);
        Assert.Equal("built-in", builtIn.GetProperty("origin").GetString());
        Assert.Equal("Original: {text}\nParaphrase:", builtIn.GetProperty("promptTemplate").GetString());
        Assert.True(builtIn.GetProperty("rank").GetInt32() > 0);
        Assert.True(builtIn.GetProperty("sizeBytes").GetInt64() > 0);
        Assert.Equal(JsonValueKind.Null, builtIn.GetProperty("problem").ValueKind);
        var one = await (await service.Client.GetAsync($"/adapters/{DemoModel.AdapterName}")).JsonAsync();
        Assert.Equal("built-in", one.GetProperty("origin").GetString());
        // Nothing was copied into the store: the files stay beside the assembly.
        Assert.Empty(service.StoreEntries());

        // The OpenAI model list names it too, and /v1/completions serves it by that name.
        var models = await (await service.Client.GetAsync("/v1/models")).JsonAsync();
        Assert.Contains(models.GetProperty("data").EnumerateArray(), m => m.GetProperty("id").GetString() == DemoModel.AdapterName);
    }

    [Fact]
    public async Task DeletingOrReplacingTheBuiltInAdapterIs409AndLeavesItServing()
    {
        await using var service = await StartDemoAsync();
        var name = DemoModel.AdapterName;
        var other = DemoAdapters.Write(Path.Combine(service.Root, "other"), "other");

        var deleted = await (await service.Admin.DeleteAsync($"/admin/adapters/{name}")).AssertProblemAsync(HttpStatusCode.Conflict);
        Assert.Contains("built into the model", deleted.Detail());
        foreach (var replace in new[] { false, true })
        {
            using var register = await service.Admin.PostAsJsonAsync("/admin/adapters", new { name, path = other, replace });
            Assert.Contains("cannot be deleted or replaced", (await register.AssertProblemAsync(HttpStatusCode.Conflict)).Detail());
            var zip = AdapterFixtures.ZipFiles(Directory.EnumerateFiles(other).ToDictionary(f => Path.GetFileName(f), File.ReadAllBytes));
            using var upload = await service.Admin.PostAsync("/admin/adapters", AdapterFixtures.Form(name, zip, replace));
            Assert.Contains("built into the model", (await upload.AssertProblemAsync(HttpStatusCode.Conflict)).Detail());
        }
        using (var fineTune = await service.Admin.PostAsync("/admin/fine-tunes",
            Form(new { adapter = name, replace = true }, "{\"source\": \"A cat sat.\", \"target\": \"A cat was sitting.\"}\n")))
            Assert.Contains("built into the model", (await fineTune.AssertProblemAsync(HttpStatusCode.Conflict)).Detail());

        Assert.Empty(service.StoreEntries());
        Assert.True(File.Exists(Path.Combine(DemoModel.AdapterFolder, "adapter_model.safetensors")));
        using var paraphrase = await service.Client.PostAsJsonAsync("/paraphrase", new { text = Input, adapter = name, seed = 1 });
        Assert.Equal(name, (await paraphrase.JsonAsync()).GetProperty("adapter").GetString());
    }

    [Fact]
    public async Task AnOperatorsDefaultWinsOverTheBuiltInOne()
    {
        await using var service = await StartDemoAsync(new() { ["Adapters:Default"] = "styled" });

        // Not there yet: a 404 that names the setting, not the request's field.
        var missing = await (await service.Client.PostAsJsonAsync("/paraphrase", new { text = Input, seed = 1 })).AssertProblemAsync(HttpStatusCode.NotFound);
        Assert.Contains("Adapters:Default", missing.Detail());

        var folder = DemoAdapters.Write(Path.Combine(service.Root, "styled"), "styled");
        using (var register = await service.Admin.PostAsJsonAsync("/admin/adapters", new { name = "styled", path = folder }))
            Assert.Equal(HttpStatusCode.Created, register.StatusCode);
        var served = await (await service.Client.PostAsJsonAsync("/paraphrase", new { text = Input, seed = 1 })).JsonAsync();
        Assert.Equal("styled", served.GetProperty("adapter").GetString());
        // A request that names an adapter gets that one.
        var named = await (await service.Client.PostAsJsonAsync("/paraphrase", new { text = Input, seed = 1, adapter = DemoModel.AdapterName })).JsonAsync();
        Assert.Equal(DemoModel.AdapterName, named.GetProperty("adapter").GetString());
    }

    [Fact]
    public async Task ARequestCanAskForTheBaseModelDespiteTheDefault()
    {
        await using var service = await StartDemoAsync();

        var byDefault = await (await service.Client.PostAsJsonAsync("/paraphrase", new { text = Input, seed = 1, temperature = 0 })).JsonAsync();
        Assert.Equal(DemoModel.AdapterName, byDefault.GetProperty("adapter").GetString());
        var bare = await (await service.Client.PostAsJsonAsync("/paraphrase", new { text = Input, seed = 1, temperature = 0, useDefaultAdapter = false })).JsonAsync();
        Assert.Equal(JsonValueKind.Null, bare.GetProperty("adapter").ValueKind);
        // A different prompt and no adapter: greedy decoding gives other words.
        Assert.NotEqual(byDefault.GetProperty("results")[0].ToString(), bare.GetProperty("results")[0].ToString());
        // A named adapter is used whatever the flag says.
        var named = await (await service.Client.PostAsJsonAsync("/paraphrase",
            new { text = Input, seed = 1, adapter = DemoModel.AdapterName, useDefaultAdapter = false })).JsonAsync();
        Assert.Equal(DemoModel.AdapterName, named.GetProperty("adapter").GetString());
    }

    [Fact]
    public async Task WithoutTheBuiltInDefaultTheBaseModelServes()
    {
        await using var service = await StartDemoAsync(new() { ["Adapters:UseBuiltInDefault"] = "false" });

        var served = await (await service.Client.PostAsJsonAsync("/paraphrase", new { text = Input, seed = 1 })).JsonAsync();
        Assert.Equal(JsonValueKind.Null, served.GetProperty("adapter").ValueKind);
        // Still listed and servable by name.
        var list = await (await service.Client.GetAsync("/adapters")).JsonAsync();
        Assert.Contains(list.EnumerateArray(), a => a.GetProperty("name").GetString() == DemoModel.AdapterName);
    }

    [Fact]
    public void AnInvalidDefaultStopsTheServiceAtStart() =>
        // StartError: the start's own error, not the test host's disposal race that a CI run saw in its place
        Assert.Contains("Adapters:Default", ServiceApplication.StartError(new() { ["Adapters:Default"] = "Not A Name" }).Message);
}

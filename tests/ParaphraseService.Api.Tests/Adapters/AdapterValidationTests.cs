using System.Net;
using System.Text.Json.Nodes;

namespace ParaphraseService.Api.Tests.Adapters;

/// <summary>Adapters that are well-formed zips but do not fit the loaded base: 400 naming the problem.</summary>
public class AdapterValidationTests
{
    [Fact]
    public async Task AConfigWhoseRankDoesNotMatchTheTensorsIs400NamingTheShapes()
    {
        await using var service = await AdapterServiceHost.StartAsync();
        var files = AdapterFixtures.WithConfig("q-v", c => c["r"] = 8);

        var problem = await (await service.Admin.PostAsync("/admin/adapters", AdapterFixtures.Form("r8", AdapterFixtures.ZipFiles(files)))).AssertProblemAsync(HttpStatusCode.BadRequest);

        var problems = problem.Errors("adapter");
        Assert.NotEmpty(problems);
        Assert.Contains(problems, p => p.Contains("lora_A", StringComparison.Ordinal) && p.Contains('8', StringComparison.Ordinal));
        Assert.DoesNotContain(service.Store.Directory, problem.GetRawText()); // server paths stay private
        Assert.Empty(service.StoreEntries());
    }

    [Fact]
    public async Task TargetsTheBaseDoesNotHaveAre400()
    {
        await using var service = await AdapterServiceHost.StartAsync();
        var files = AdapterFixtures.WithConfig("q-v", c => c["target_modules"] = new JsonArray("transformer.h.7.attn.q_proj"));

        var problem = await (await service.Admin.PostAsync("/admin/adapters", AdapterFixtures.Form("h7", AdapterFixtures.ZipFiles(files)))).AssertProblemAsync(HttpStatusCode.BadRequest);

        Assert.Contains("transformer.h.7.attn.q_proj", problem.Detail());
        Assert.Empty(service.StoreEntries());
    }

    [Fact]
    public async Task AnAdapterForAnotherBaseIs400()
    {
        // The random demo base has hidden size 128 and 4 layers; the fixtures were made for hidden size 64 and 2 layers.
        await using var service = await AdapterServiceHost.StartAsync(new() { ["Model:Source"] = "demo-random" });

        var upload = await (await service.Admin.PostAsync("/admin/adapters", AdapterFixtures.Form("tiny", AdapterFixtures.ZipFixture("q-v")))).AssertProblemAsync(HttpStatusCode.BadRequest);
        var byPath = await (await service.Admin.PostJsonAsync("/admin/adapters", new { name = "tiny", path = AdapterFixtures.Peft("q-v") })).AssertProblemAsync(HttpStatusCode.BadRequest);

        foreach (var problem in (System.Text.Json.JsonElement[])[upload, byPath])
            Assert.Contains(problem.Errors("adapter"), p => p.Contains("128", StringComparison.Ordinal) && p.Contains("64", StringComparison.Ordinal));
        Assert.Empty(service.StoreEntries());
    }

    [Fact]
    public async Task MissingWeightsAndBrokenMetadataAreListedTogether()
    {
        await using var service = await AdapterServiceHost.StartAsync();
        var files = AdapterFixtures.Files("q-v");
        files.Remove("adapter_model.safetensors");
        files["paraphrase_adapter.json"] = """{ "origin": "stolen" }"""u8.ToArray();

        var problem = await (await service.Admin.PostAsync("/admin/adapters", AdapterFixtures.Form("broken", AdapterFixtures.ZipFiles(files)))).AssertProblemAsync(HttpStatusCode.BadRequest);

        var problems = problem.Errors("adapter");
        Assert.Contains(problems, p => p.Contains("no weights", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains("stolen", StringComparison.Ordinal));
        Assert.Empty(service.StoreEntries());
    }
}

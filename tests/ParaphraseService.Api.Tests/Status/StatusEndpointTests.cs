using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using ParaphraseService.Api.FineTuning;
using ParaphraseService.Api.Tests.Adapters;
using ParaphraseService.Api.Tests.FineTuning;
using static ParaphraseService.Api.Tests.FineTuning.FineTuneFixtures;

namespace ParaphraseService.Api.Tests.Status;

/// <summary>The status page and its JSON on the real service: public, and never showing secrets or server paths.</summary>
[Collection(FineTuneCollection.Name)]
public class StatusEndpointTests
{
    [Fact]
    public async Task ThePageAndItsJsonArePublicAndShowNoKeyNoDatasetPathAndNoAdapterFolder()
    {
        var datasets = Directory.CreateTempSubdirectory("status-datasets-").FullName;
        try
        {
            var dataset = Path.Combine(datasets, "private-pairs.jsonl");
            File.WriteAllText(dataset, ReverseWordsJsonl(20, 7));
            await using var host = await AdapterServiceHost.StartAsync(new() { ["Model:Source"] = LearnableModel, ["FineTunes:DatasetRoots:0"] = datasets });
            using var submitted = await host.Admin.PostAsJsonAsync("/admin/fine-tunes",
                new { adapter = "from-path", datasetPath = dataset, rank = 2, maxSteps = 2, bleuSamples = 0 });
            Assert.Equal(HttpStatusCode.Accepted, submitted.StatusCode);
            var job = (await submitted.Content.ReadFromJsonAsync<FineTuneJob>(FineTuneJobStore.Json))!;
            var finished = await FinishedAsync(host.Admin, job.Id);
            Assert.True(finished.State == FineTuneState.Succeeded, $"{finished.State}: {finished.Error}");

            // No key sent: the client has none.
            using var page = await host.Client.GetAsync("/");
            Assert.Equal(HttpStatusCode.OK, page.StatusCode);
            Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
            var html = await page.Content.ReadAsStringAsync();
            var json = await host.Client.GetStringAsync("/status.json");
            var svg = await host.Client.GetStringAsync($"/status/fine-tunes/{job.Id}/loss.svg");
            foreach (var text in new[] { html, json, svg })
            {
                Assert.DoesNotContain(AdapterServiceHost.AdminKey, text, StringComparison.Ordinal);
                Assert.DoesNotContain(datasets, text, StringComparison.Ordinal);
                Assert.DoesNotContain("private-pairs", text, StringComparison.Ordinal);
                Assert.DoesNotContain(host.Root, text, StringComparison.Ordinal);
                Assert.DoesNotContain(host.Store.Directory, text, StringComparison.Ordinal);
                Assert.DoesNotContain(host.Services.GetRequiredService<FineTuneJobStore>().Directory, text, StringComparison.Ordinal);
            }
            Assert.Contains("""<tr data-adapter="from-path">""", html, StringComparison.Ordinal);

            var snapshot = JsonDocument.Parse(json).RootElement;
            Assert.Equal("ready", snapshot.GetProperty("model").GetProperty("state").GetString());
            Assert.Equal("float32", snapshot.GetProperty("model").GetProperty("kvCache").GetString()); // full precision keeps its own
            Assert.Contains("KV cache float32", html, StringComparison.Ordinal);
            Assert.Equal(["from-path"], snapshot.GetProperty("adapters").EnumerateArray().Select(a => a.GetProperty("name").GetString()));
            var listed = Assert.Single(snapshot.GetProperty("fineTunes").EnumerateArray());
            Assert.Equal("succeeded", listed.GetProperty("state").GetString());
            Assert.Equal(2, listed.GetProperty("step").GetInt32());
            Assert.False(listed.TryGetProperty("trainCurve", out _)); // curves are drawn at loss.svg, not polled
            Assert.True(snapshot.GetProperty("serving").GetProperty("residentBytes").GetInt64() > 0);
            Assert.StartsWith("<svg", svg, StringComparison.Ordinal);

            using var missing = await host.Client.GetAsync("/status/fine-tunes/ft-nope/loss.svg");
            Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
            Assert.Equal("application/problem+json", missing.Content.Headers.ContentType?.MediaType);
        }
        finally
        {
            Directory.Delete(datasets, recursive: true);
        }
    }

    [Fact]
    public async Task SwaggerDescribesTheStatusEndpoints()
    {
        await using var app = new ServiceApplication();
        using var client = app.CreateClient();
        var document = JsonDocument.Parse(await client.GetStringAsync("/swagger/v1/swagger.json")).RootElement;
        foreach (var path in new[] { "/", "/status.json", "/status/fine-tunes/{id}/loss.svg" })
            Assert.True(document.GetProperty("paths").TryGetProperty(path, out _), $"{path} is not in the OpenAPI document");
        Assert.True(document.GetProperty("components").GetProperty("schemas").TryGetProperty("StatusSnapshot", out _));
    }
}

using System.Net;
using System.Net.Http.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using ParaphraseService.Api.FineTuning;
using ParaphraseService.Api.Tests.Adapters;
using ParaphraseService.Api.Tests.FineTuning;
using Xunit.Abstractions;
using static ParaphraseService.Api.Tests.FineTuning.FineTuneFixtures;

namespace ParaphraseService.Api.Tests.Status;

/// <summary>
/// The status page in a real browser: Debian's chromium, driven by Playwright (whose driver ships in its NuGet package;
/// nothing is downloaded), against the whole service on loopback with a finished fine-tune job.
/// </summary>
[Collection(FineTuneCollection.Name)]
public class StatusPageBrowserTests(ITestOutputHelper output)
{
    private const string Chromium = "/usr/bin/chromium";

    [Fact]
    public async Task ThePageShowsTheModelAdaptersAndALossCurveAndRefreshesItsNumbers()
    {
        // Not a skip: CI installs chromium (scripts/install-browser.sh), so a missing browser is a broken machine.
        Assert.True(File.Exists(Chromium),
            $"{Chromium} is missing: install Debian's chromium package as root (bash scripts/install-browser.sh, which .ci/run runs).");

        await using var host = await AdapterServiceHost.StartAsync(new()
        {
            ["Model:Source"] = LearnableModel,
            ["FineTunes:Directory"] = Path.Combine(Directory.CreateTempSubdirectory("status-fine-tunes-").FullName),
        });
        var submitted = await SubmitAsync(host.Admin, new
        {
            adapter = "reverse", targetModules = new[] { "all-linear" }, rank = 8, alpha = 16, learningRate = 5e-3, batchSize = 8,
            maxSteps = 10, epochs = 10, evalFraction = 0.15, evalEverySteps = 5, bleuSamples = 2,
        }, ReverseWordsJsonl(60, 11));
        var job = await FinishedAsync(host.Admin, submitted.Id);
        Assert.Equal(FineTuneState.Succeeded, job.State);

        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new() { ExecutablePath = Chromium, Headless = true });
        var page = await browser.NewPageAsync(new() { ViewportSize = new() { Width = 1280, Height = 900 } });
        var errors = new List<string>();
        page.PageError += (_, error) => errors.Add(error);
        var response = await page.GotoAsync(host.Client.BaseAddress!.ToString());
        Assert.Equal((int)HttpStatusCode.OK, response!.Status);

        await Assertions.Expect(page.Locator("#model-line")).ToContainTextAsync("2 layers, hidden size 128 · cpu · float32");
        var adapter = page.Locator("#adapters tr[data-adapter='reverse']");
        await Assertions.Expect(adapter).ToBeVisibleAsync();
        await Assertions.Expect(adapter).ToContainTextAsync("fine-tune");
        var row = page.Locator($"[data-job='{job.Id}']");
        await Assertions.Expect(row).ToBeVisibleAsync();
        await Assertions.Expect(row.Locator(".badge")).ToHaveTextAsync("succeeded");
        await Assertions.Expect(row.Locator("[data-field='step']")).ToHaveTextAsync("10 / 10");
        var line = row.Locator("svg polyline.train");
        await Assertions.Expect(line).ToBeVisibleAsync();
        Assert.Equal(job.TrainLoss.Count, (await line.GetAttributeAsync("points"))!.Split(' ').Length);
        Assert.Equal(job.EvalLoss.Count, await row.Locator("svg circle.eval-dot").CountAsync());

        // One refresh cycle: serve a request with the adapter, then wait for the page to show what it did, in place.
        await page.EvaluateAsync("() => { window.notReloaded = true; }");
        var refreshed = page.WaitForResponseAsync(r => r.Url.EndsWith("/status.json", StringComparison.Ordinal));
        using (var paraphrase = await host.Client.PostAsJsonAsync("/paraphrase", new { text = "red cat sun", adapter = "reverse", candidates = 2, seed = 1 }))
            Assert.Equal(HttpStatusCode.OK, paraphrase.StatusCode);
        Assert.Equal(200, (await refreshed).Status);
        await page.WaitForFunctionAsync("""
            () => Number(document.body.dataset.refreshes) > 0
              && document.querySelector("#serving [data-field='tokensPerSecond']").textContent !== '0.0'
              && document.querySelector("tr[data-adapter='reverse'] [data-field='requestsServed']").textContent === '1'
            """);
        await Assertions.Expect(adapter.Locator("[data-field='loaded']")).ToHaveTextAsync("yes");
        Assert.True(await page.EvaluateAsync<bool>("() => window.notReloaded === true"), "the page reloaded instead of updating in place");
        Assert.Empty(errors);

        var html = await page.ContentAsync();
        Assert.DoesNotContain(AdapterServiceHost.AdminKey, html, StringComparison.Ordinal);
        Assert.DoesNotContain(host.Store.Directory, html, StringComparison.Ordinal);

        var screenshot = Path.Combine(AppContext.BaseDirectory, "TestResults", "status-page.png");
        Directory.CreateDirectory(Path.GetDirectoryName(screenshot)!);
        await page.ScreenshotAsync(new() { Path = screenshot, FullPage = true });
        Assert.True(new FileInfo(screenshot).Length > 10_000, "the screenshot is (nearly) empty");
        output.WriteLine($"status page screenshot: {screenshot}");
        Directory.Delete(host.Services.GetRequiredService<FineTuneJobStore>().Directory, recursive: true);
    }
}

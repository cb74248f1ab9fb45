using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using ParaphraseService.Api.Hosting;

namespace ParaphraseService.Api.Tests;

public class HealthTests
{
    [Fact]
    public async Task LiveAnswersAndReadyTurnsTrueOnceTheDemoModelIsLoaded()
    {
        await using var app = new ServiceApplication();
        using var client = app.CreateClient();
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/health/live")).StatusCode);

        // Readiness follows the model host; wait for its load to finish rather than for a fixed time.
        var host = app.Services.GetRequiredService<ModelHost>();
        await host.ExecuteTask!.WaitAsync(TimeSpan.FromMinutes(1));

        var ready = await client.GetFromJsonAsync<JsonElement>("/health/ready");
        Assert.Equal("ready", ready.GetProperty("status").GetString());
        Assert.Equal("demo", ready.GetProperty("model").GetString());
        Assert.True(ready.GetProperty("demo").GetBoolean());
        Assert.Equal("cpu", ready.GetProperty("device").GetString());
    }

    [Fact]
    public async Task ReadyIs503WithTheReasonWhenTheModelCannotLoad()
    {
        var missing = Path.Combine(Path.GetTempPath(), "no-such-model-" + Guid.NewGuid());
        await using var app = new ServiceApplication(new() { ["Model:Source"] = missing });
        using var client = app.CreateClient();
        await app.Services.GetRequiredService<ModelHost>().ExecuteTask!.WaitAsync(TimeSpan.FromMinutes(1));

        var response = await client.GetAsync("/health/ready");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Contains("does not exist", problem.GetProperty("detail").GetString());
    }

    [Fact]
    public void InvalidOptionsStopTheServiceAtStart() =>
        Assert.Contains("Model:Device", ServiceApplication.StartError(new() { ["Model:Device"] = "tpu" }).Message);
}

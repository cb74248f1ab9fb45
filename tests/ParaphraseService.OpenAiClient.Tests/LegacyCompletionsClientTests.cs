using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using OpenAI_API;
using OpenAI_API.Completions;
using ParaphraseService.Api.Hosting;
using ParaphraseService.Model.Generation;
using ParaphraseService.Model.Loading;

namespace ParaphraseService.OpenAiClient.Tests;

/// <summary>An OpenAI client library, unchanged but for its base address, against the service on a loopback port.</summary>
public sealed class LegacyCompletionsClientTests : IAsyncLifetime
{
    private readonly Service _service = new();
    private OpenAIAPI _api = null!;

    public async Task InitializeAsync()
    {
        _service.UseKestrel();
        _service.StartServer();
        await _service.Services.GetRequiredService<ModelHost>().ExecuteTask!.WaitAsync(TimeSpan.FromMinutes(1));
        _api = new OpenAIAPI(new APIAuthentication("unused-key"))
        {
            ApiUrlFormat = _service.ClientOptions.BaseAddress.ToString().TrimEnd('/') + "/{0}/{1}",
            ApiVersion = "v1",
        };
    }

    public async Task DisposeAsync() => await _service.DisposeAsync();

    [Fact]
    public async Task CompletionsThroughTheClientEqualTheModelsOwnGeneration()
    {
        var result = await _api.Completions.CreateCompletionAsync(new CompletionRequest(
            prompt: "The weather today is", model: "demo", max_tokens: 7, temperature: 0));

        using var demo = DemoModel.Load(new ModelLoadOptions { Device = "cpu" });
        var expected = demo.CreateGenerator().Generate("The weather today is", new GenerationOptions { Greedy = true, MaxNewTokens = 7 });
        Assert.Equal(expected.Text, result.Completions.Single().Text);
        Assert.Equal(7, result.Usage.CompletionTokens);
    }

    [Fact]
    public async Task ModelsThroughTheClient()
    {
        var models = await _api.Models.GetModelsAsync();
        Assert.Contains(models, m => m.ModelID == "demo");
    }

    private sealed class Service : WebApplicationFactory<Program>
    {
        private readonly string _adapters = Directory.CreateTempSubdirectory("openai-client-adapters-").FullName;

        protected override void ConfigureWebHost(IWebHostBuilder builder) =>
            builder.UseUrls("http://127.0.0.1:0").UseSetting("Adapters:Directory", _adapters);

        public override async ValueTask DisposeAsync()
        {
            await base.DisposeAsync();
            Directory.Delete(_adapters, recursive: true);
        }
    }
}

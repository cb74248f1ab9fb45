using OpenAI_API;
using OpenAI_API.Completions;
using ParaphraseService.Model.Generation;
using ParaphraseService.Model.Loading;
using ParaphraseService.Testing;

namespace ParaphraseService.OpenAiClient.Tests;

/// <summary>An OpenAI client library, unchanged but for its base address, against the service on a loopback port.</summary>
public sealed class LegacyCompletionsClientTests : IAsyncLifetime
{
    private readonly ServiceApplication _service = new();
    private OpenAIAPI _api = null!;

    public async Task InitializeAsync()
    {
        var address = await _service.StartOnLoopback();
        _api = new OpenAIAPI(new APIAuthentication("unused-key"))
        {
            ApiUrlFormat = address.ToString().TrimEnd('/') + "/{0}/{1}",
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
}

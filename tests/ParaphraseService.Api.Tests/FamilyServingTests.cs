using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace ParaphraseService.Api.Tests;

/// <summary>The service runs every model family through the same scheduler, batcher and endpoints.</summary>
public class FamilyServingTests
{
    [Theory]
    [InlineData("gpt_neo")]
    [InlineData("gpt2")]
    public async Task ParaphraseAnswersWithAModelOfTheFamily(string modelType)
    {
        var folder = TinyFamilyModels.Folder(modelType);
        await using var app = new ServiceApplication(new() { ["Model:Source"] = folder, ["Model:Device"] = "cpu" });
        await app.ModelLoaded();
        using var client = app.CreateClient();

        var ready = await client.GetFromJsonAsync<JsonElement>("/health/ready");
        Assert.Equal("ready", ready.GetProperty("status").GetString());

        var response = await client.PostAsJsonAsync("/paraphrase", new { text = "The meeting was moved to Friday.", candidates = 2, maxNewTokens = 8, seed = 3 });
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var json = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.True(json.GetProperty("usage").GetProperty("completionTokens").GetInt32() > 0);
        var result = json.GetProperty("results")[0];
        var dropped = result.GetProperty("dropped");
        var candidates = result.GetProperty("candidates").EnumerateArray().ToList();
        Assert.Equal(2, candidates.Count + dropped.GetProperty("empty").GetInt32() + dropped.GetProperty("copies").GetInt32() + dropped.GetProperty("duplicates").GetInt32());
        Assert.All(candidates, c => Assert.False(string.IsNullOrWhiteSpace(c.GetProperty("text").GetString())));

        // The raw continuation, through the OpenAI-style endpoint of the same model.
        var completion = await client.PostAsJsonAsync("/v1/completions", new { prompt = "Rewrite politely: send the report now.", max_tokens = 6, seed = 5 });
        Assert.Equal(HttpStatusCode.OK, completion.StatusCode);
        var text = (await completion.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("choices")[0].GetProperty("text").GetString();
        Assert.False(string.IsNullOrEmpty(text));
    }
}

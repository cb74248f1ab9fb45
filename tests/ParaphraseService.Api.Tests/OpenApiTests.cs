using System.Net;
using System.Text;
using System.Text.Json;

namespace ParaphraseService.Api.Tests;

public class OpenApiTests
{
    [Fact]
    public async Task SwaggerDescribesEveryEndpointWithExampleBodies()
    {
        await using var app = new ServiceApplication();
        using var client = app.CreateClient();
        var document = JsonDocument.Parse(await client.GetStringAsync("/swagger/v1/swagger.json")).RootElement;
        var paths = document.GetProperty("paths");
        foreach (var path in new[] { "/paraphrase", "/v1/completions", "/v1/models", "/adapters", "/adapters/{name}", "/admin/adapters", "/admin/adapters/{name}", "/health/live", "/health/ready" })
            Assert.True(paths.TryGetProperty(path, out _), $"{path} is not in the OpenAPI document");
        var schemas = document.GetProperty("components").GetProperty("schemas");
        foreach (var schema in new[] { "ParaphraseRequest", "CompletionRequest", "ParaphraseResponse", "CompletionResponse", "ModelList", "AdapterInfo", "HealthStatus" })
            Assert.True(schemas.TryGetProperty(schema, out var found) && found.TryGetProperty("example", out _),
                $"{schema} has no example (schemas: {string.Join(", ", schemas.EnumerateObject().Select(p => p.Name))})");
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/swagger/index.html")).StatusCode);
    }

    [Fact]
    public async Task OversizedBodiesAre413ProblemDetails()
    {
        // A real Kestrel server: the in-memory test server does not enforce request size limits.
        await using var app = new ServiceApplication();
        app.UseKestrel();
        app.StartServer();
        await app.ModelLoaded();
        using var client = app.CreateClient();
        var body = $$"""{"text": "{{new string('a', 2 << 20)}}"}""";
        var response = await client.PostAsync("/paraphrase", new StringContent(body, Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }
}

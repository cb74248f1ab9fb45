using System.Net;
using ParaphraseService.Api.Tests.Adapters;

namespace ParaphraseService.Api.Tests.Robustness;

/// <summary>HEAD over real HTTP (Kestrel on loopback): wherever GET answers, with its status and headers and no body.</summary>
public sealed class HeadRequestTests
{
    [Fact]
    public async Task HeadAnswersWhereGetDoesWithItsHeadersAndNoBody()
    {
        await using var service = await AdapterServiceHost.StartAsync();
        foreach (var path in new[] { "/health/live", "/health/ready", "/", "/status.json", "/v1/models", "/adapters", "/swagger/v1/swagger.json", "/metrics" })
        {
            using var get = await service.Client.GetAsync(path);
            using var head = await service.Client.SendAsync(new HttpRequestMessage(HttpMethod.Head, path));
            Assert.Equal(HttpStatusCode.OK, get.StatusCode);
            Assert.Equal(get.StatusCode, head.StatusCode);
            Assert.Equal(get.Content.Headers.ContentType?.MediaType, head.Content.Headers.ContentType?.MediaType);
            Assert.NotEmpty(await get.Content.ReadAsByteArrayAsync());
            Assert.Empty(await head.Content.ReadAsByteArrayAsync());
        }
        // What GET does not answer, HEAD does not either.
        using var missing = await service.Client.SendAsync(new HttpRequestMessage(HttpMethod.Head, "/adapters/no-such-adapter"));
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        using var postOnly = await service.Client.SendAsync(new HttpRequestMessage(HttpMethod.Head, "/paraphrase"));
        Assert.Equal(HttpStatusCode.MethodNotAllowed, postOnly.StatusCode);
        Assert.Equal(["POST"], postOnly.Content.Headers.Allow);
        // and the metrics exporter, which maps every method, answers GET (and HEAD) only
        using var postMetrics = await service.Client.PostAsync("/metrics", null);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, postMetrics.StatusCode);
    }
}

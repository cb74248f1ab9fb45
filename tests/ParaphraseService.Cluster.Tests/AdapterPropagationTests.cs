using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Xunit.Abstractions;

namespace ParaphraseService.Cluster.Tests;

/// <summary>Adapters added or deleted on one serving replica reach every replica through PostgreSQL within 2 s.</summary>
[Collection(ClusterCollection.Name)]
public sealed class AdapterPropagationTests(PostgresServer server, ITestOutputHelper output)
{
    private static readonly TimeSpan Propagation = TimeSpan.FromSeconds(2);

    [Fact]
    public async Task AnAdapterUploadedOnOneReplicaIsServedByTheOthersWithinTwoSecondsAndADeleteReachesThemToo()
    {
        await using var cluster = await Cluster.StartAsync(server, Cluster.TinyModel, [("a", "serve"), ("b", "serve"), ("c", "serve")]);
        var (a, b, c) = (cluster["a"], cluster["b"], cluster["c"]);
        foreach (var node in cluster.Nodes)
            await (await node.Client.CompleteAsync("shared")).JsonAsync(HttpStatusCode.NotFound);

        await (await a.Admin.PostAsJsonAsync("/admin/adapters", new { name = "shared", path = Cluster.TinyAdapter })).JsonAsync(HttpStatusCode.Created);
        // Replicas B and C serve it within 2 s of the upload's answer (timed from then: the polling starts at once)...
        var served = new System.Collections.Concurrent.ConcurrentDictionary<string, string?>();
        var polls = new[] { b, c }.Select(node => Cluster.EventuallyAsync(async () =>
        {
            using var response = await node.Client.CompleteAsync("shared");
            if (response.StatusCode != HttpStatusCode.OK) return false;
            served[node.Name] = (await response.JsonAsync(HttpStatusCode.OK)).GetProperty("choices")[0].GetProperty("text").GetString();
            return true;
        }, Propagation + TimeSpan.FromSeconds(10), $"{node.Name} serving 'shared'")).ToList();
        var times = await Task.WhenAll(polls);

        // ...with the same files: the same greedy text as on A, which differs from the base model's.
        var expected = (await (await a.Client.CompleteAsync("shared")).JsonAsync(HttpStatusCode.OK)).GetProperty("choices")[0].GetProperty("text").GetString();
        var baseText = (await (await a.Client.CompleteAsync(null)).JsonAsync(HttpStatusCode.OK)).GetProperty("choices")[0].GetProperty("text").GetString();
        Assert.NotEqual(baseText, expected);
        Assert.Equal(expected, served["b"]);
        Assert.Equal(expected, served["c"]);
        output.WriteLine($"upload on a -> first request served on b sent after {times[0].TotalMilliseconds:F0} ms, on c after {times[1].TotalMilliseconds:F0} ms");
        Assert.All(times, t => Assert.True(t <= Propagation, $"known after {t}"));

        // Every replica lists the same catalog ('loaded' is each replica's own memory, and so left out).
        await Cluster.EventuallyAsync(async () =>
        {
            var lists = await Task.WhenAll(cluster.Nodes.Select(node => Catalog(node)));
            return lists.All(l => l == lists[0]) && lists[0].Contains("\"shared\"", StringComparison.Ordinal);
        }, TimeSpan.FromSeconds(10), "GET /adapters equal on a, b and c");

        // Deleted on B: A and C answer 404 for it within 2 s (A had it resident: unloaded there).
        Assert.Equal(HttpStatusCode.NoContent, (await b.Admin.DeleteAsync("/admin/adapters/shared")).StatusCode);
        var gone = await Task.WhenAll(new[] { a, c }.Select(node => Cluster.EventuallyAsync(async () =>
        {
            using var response = await node.Client.CompleteAsync("shared");
            return response.StatusCode == HttpStatusCode.NotFound;
        }, Propagation, $"{node.Name} answering 404 for 'shared'")));
        output.WriteLine($"delete on b -> first 404 on a for a request sent after {gone[0].TotalMilliseconds:F0} ms, on c after {gone[1].TotalMilliseconds:F0} ms");
        Assert.All(gone, t => Assert.True(t <= Propagation, $"gone after {t}"));
        foreach (var node in cluster.Nodes)
            Assert.Equal("[]", await Catalog(node));
    }

    /// <summary>GET /adapters without each replica's own 'loaded' flag.</summary>
    private static async Task<string> Catalog(ServiceProcess node)
    {
        var list = await node.Client.GetFromJsonAsync<List<Dictionary<string, JsonElement>>>("/adapters");
        foreach (var adapter in list!) adapter.Remove("loaded");
        return JsonSerializer.Serialize(list);
    }
}

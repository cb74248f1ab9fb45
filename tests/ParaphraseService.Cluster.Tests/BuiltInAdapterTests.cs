using System.Net;
using System.Net.Http.Json;

namespace ParaphraseService.Cluster.Tests;

/// <summary>
/// The demo model's built-in adapter with the PostgreSQL storage: every replica lists and serves it by default, none can
/// delete or replace it, and the shared catalog in the database never holds it.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class BuiltInAdapterTests(PostgresServer server)
{
    private const string BuiltIn = "paws-demo";

    [Fact]
    public async Task EveryReplicaListsAndServesTheDemoAdapterAndNoneDeletesIt()
    {
        await using var cluster = await Cluster.StartAsync(server, "demo", [("a", "serve"), ("b", "serve")]);
        var (a, b) = (cluster["a"], cluster["b"]);

        foreach (var node in cluster.Nodes)
        {
            var list = await (await node.Client.GetAsync("/adapters")).JsonAsync(HttpStatusCode.OK);
            var builtIn = Assert.Single(list.EnumerateArray(), x => x.GetProperty("name").GetString() == BuiltIn);
            Assert.Equal("built-in", builtIn.GetProperty("origin").GetString());
            var served = await (await node.Client.PostAsJsonAsync("/paraphrase", new { text = "The meeting was moved to Friday .", seed = 3 })).JsonAsync(HttpStatusCode.OK);
            Assert.Equal(BuiltIn, served.GetProperty("adapter").GetString());
        }

        var deleted = await a.Admin.DeleteAsync($"/admin/adapters/{BuiltIn}");
        Assert.Equal(HttpStatusCode.Conflict, deleted.StatusCode);
        var replaced = await b.Admin.PostAsJsonAsync("/admin/adapters", new { name = BuiltIn, path = Cluster.TinyAdapter, replace = true });
        Assert.Equal(HttpStatusCode.Conflict, replaced.StatusCode);

        // Still served on both, and the database's catalog (what other replicas load from) never held it.
        foreach (var node in cluster.Nodes)
        {
            var served = await (await node.Client.PostAsJsonAsync("/paraphrase", new { text = "Send the report now .", seed = 4 })).JsonAsync(HttpStatusCode.OK);
            Assert.Equal(BuiltIn, served.GetProperty("adapter").GetString());
        }
        Assert.Equal(0L, cluster.Scalar<long>("SELECT count(*) FROM adapters WHERE name = $1", BuiltIn));
    }
}

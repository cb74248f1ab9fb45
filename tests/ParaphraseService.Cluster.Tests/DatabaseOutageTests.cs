using System.Net;
using System.Net.Http.Json;
using Xunit.Abstractions;

namespace ParaphraseService.Cluster.Tests;

/// <summary>
/// The database down at start (not ready until it answers) and lost while serving (requests with loaded adapters go on,
/// admin writes answer 503): on a PostgreSQL server of the test's own, stopped and started under the replica.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class DatabaseOutageTests(ITestOutputHelper output)
{
    [Fact]
    public async Task AReplicaWaitsForTheDatabaseAtStartAndKeepsServingLoadedAdaptersWhenItIsLost()
    {
        using var database = new PostgresServer();
        var connectionString = database.CreateDatabase("outage");
        database.Stop();

        await using var node = await ServiceProcess.StartAsync("alone", new Dictionary<string, string>
        {
            ["Model__Source"] = Cluster.TinyModel,
            ["Storage__PostgreSql"] = connectionString,
            ["Node__Roles"] = "serve",
        });
        // Listening, the model loaded, but not ready while the database cannot be reached; the reason is said.
        var notReady = await Eventually(async () =>
        {
            using var response = await node.Client.GetAsync("/health/ready");
            var body = await response.Content.ReadAsStringAsync();
            return response.StatusCode == HttpStatusCode.ServiceUnavailable && body.Contains("database", StringComparison.Ordinal) ? body : null;
        }, "not ready, naming the database");
        output.WriteLine(notReady);
        Assert.Contains(node.LogLines, line => line.Contains("PostgreSQL not reachable at start", StringComparison.Ordinal));

        database.Start();
        await node.WaitReadyAsync();
        await (await node.Admin.PostAsJsonAsync("/admin/adapters", new { name = "kept", path = Cluster.TinyAdapter })).JsonAsync(HttpStatusCode.Created);
        var before = (await (await node.Client.CompleteAsync("kept")).JsonAsync(HttpStatusCode.OK)).GetProperty("choices")[0].GetProperty("text").GetString();

        database.Stop();
        // Requests with the loaded adapter go on; the replica stays ready.
        var during = (await (await node.Client.CompleteAsync("kept")).JsonAsync(HttpStatusCode.OK)).GetProperty("choices")[0].GetProperty("text").GetString();
        Assert.Equal(before, during);
        Assert.Equal(HttpStatusCode.OK, (await node.Client.GetAsync("/health/ready")).StatusCode);
        // Admin writes answer 503 with a ProblemDetails that says why.
        var refused = await (await node.Admin.PostAsJsonAsync("/admin/adapters", new { name = "new", path = Cluster.TinyAdapter })).JsonAsync(HttpStatusCode.ServiceUnavailable);
        Assert.Equal("Storage unavailable", refused.GetProperty("title").GetString());
        output.WriteLine(refused.GetProperty("detail").GetString());
        await (await node.Admin.DeleteAsync("/admin/adapters/kept")).JsonAsync(HttpStatusCode.ServiceUnavailable);
        Assert.Contains(node.LogLines, line => line.Contains("PostgreSQL connection lost", StringComparison.Ordinal));
        var metrics = await node.Client.GetStringAsync("/metrics");
        Assert.Matches(@"paraphrase_storage_database_up(\{[^}]*\})? 0\b", metrics);

        // Back: writes work again (the first may still meet a connection the restart broke).
        database.Start();
        var last = "";
        await Eventually(async () =>
        {
            using var response = await node.Admin.DeleteAsync("/admin/adapters/kept");
            last = $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}";
            return response.StatusCode == HttpStatusCode.NoContent ? "deleted" : null;
        }, "a write after the database is back", () => last);
        await (await node.Client.CompleteAsync("kept")).JsonAsync(HttpStatusCode.NotFound);
    }

    private static async Task<string> Eventually(Func<Task<string?>> probe, string what, Func<string>? last = null)
    {
        string? result = null;
        try
        {
            await Cluster.EventuallyAsync(async () => (result = await probe()) is not null, TimeSpan.FromMinutes(1), what);
        }
        catch (TimeoutException e) when (last is not null)
        {
            throw new TimeoutException($"{e.Message} Last answer: {last()}", e);
        }
        return result!;
    }
}

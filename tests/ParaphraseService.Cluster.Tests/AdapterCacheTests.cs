using System.Net;
using System.Net.Http.Json;
using Xunit.Abstractions;

namespace ParaphraseService.Cluster.Tests;

/// <summary>A replica's local copies of adapter files are checked against the catalog's content hash.</summary>
[Collection(ClusterCollection.Name)]
public sealed class AdapterCacheTests(PostgresServer server, ITestOutputHelper output)
{
    [Fact]
    public async Task ALocalCopyAlteredWhileTheReplicaWasDownIsFetchedAgainFromTheDatabaseBeforeUse()
    {
        var cache = Directory.CreateTempSubdirectory("cluster-cache-").FullName;
        try
        {
            var settings = new Dictionary<string, string> { ["Adapters__Directory"] = cache };
            await using var cluster = await Cluster.StartAsync(server, Cluster.TinyModel, [("a", "serve")], settings);
            await (await cluster["a"].Admin.PostAsJsonAsync("/admin/adapters", new { name = "kept", path = Cluster.TinyAdapter })).JsonAsync(HttpStatusCode.Created);
            var before = (await (await cluster["a"].Client.CompleteAsync("kept")).JsonAsync(HttpStatusCode.OK)).GetProperty("choices")[0].GetProperty("text").GetString();
            cluster["a"].KillHard();

            // The copy is named by the hash it should have; its weights now say something else.
            var copy = Directory.GetDirectories(cache, "kept@*").Single();
            var weights = Path.Combine(copy, "adapter_model.safetensors");
            var original = File.ReadAllBytes(weights);
            var altered = (byte[])original.Clone();
            for (var i = altered.Length - 64; i < altered.Length; i++) altered[i] ^= 0x55;
            File.WriteAllBytes(weights, altered);

            var again = await cluster.AddAsync("a-again", "serve", Cluster.TinyModel, settings);
            var after = (await (await again.Client.CompleteAsync("kept")).JsonAsync(HttpStatusCode.OK)).GetProperty("choices")[0].GetProperty("text").GetString();
            Assert.Equal(before, after);
            Assert.Equal(original, File.ReadAllBytes(Path.Combine(Directory.GetDirectories(cache, "kept@*").Single(), "adapter_model.safetensors")));
            var line = Assert.Single(again.LogLines, l => l.Contains("does not match the catalog", StringComparison.Ordinal));
            output.WriteLine(line);
        }
        finally
        {
            Directory.Delete(cache, recursive: true);
        }
    }
}

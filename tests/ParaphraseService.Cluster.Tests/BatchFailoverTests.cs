using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Npgsql;
using Xunit.Abstractions;

namespace ParaphraseService.Cluster.Tests;

/// <summary>
/// A batch on PostgreSQL survives its node: two serving replicas, the one running the batch killed mid-way (kill -9,
/// no lease given back); the other takes the batch over once the lease runs out and runs only the lines that had not
/// finished.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class BatchFailoverTests(PostgresServer server, ITestOutputHelper output)
{
    private static readonly string[] Sentences =
    [
        "The meeting has been moved to Friday afternoon .", "Please send the report before noon .", "The train was late because of the snow .",
        "She bought a new car last week .", "Our team won the final match .",
    ];

    private sealed record StoredLine(int Line, string State, int Attempts, DateTime? FinishedAt, string? Result);

    private static List<StoredLine> Lines(Cluster cluster, string id)
    {
        using var connection = cluster.Open();
        using var command = new NpgsqlCommand("SELECT line, state, attempts, finished_at, result_json FROM batch_lines WHERE batch_id = $1 ORDER BY line", connection)
        {
            Parameters = { new() { Value = id } },
        };
        using var reader = command.ExecuteReader();
        var lines = new List<StoredLine>();
        while (reader.Read())
            lines.Add(new StoredLine(reader.GetInt32(0), reader.GetString(1), reader.GetInt32(2), reader.IsDBNull(3) ? null : reader.GetDateTime(3),
                reader.IsDBNull(4) ? null : reader.GetString(4)));
        return lines;
    }

    [Fact]
    public async Task ABatchWhoseNodeIsKilledIsTakenOverAndOnlyItsUnfinishedLinesRunAgain()
    {
        await using var cluster = await Cluster.StartAsync(server, "demo", [("a", "serve"), ("b", "serve")],
            new Dictionary<string, string> { ["Batches__Concurrency"] = "2" });
        var file = string.Join('\n', Enumerable.Range(1, 40).Select(i => JsonSerializer.Serialize(new
        {
            custom_id = $"f{i}", body = new { text = Sentences[i % Sentences.Length], candidates = 2, maxNewTokens = 12, seed = i },
        }))) + "\n";
        using var submitted = await cluster["a"].Client.PostAsync("/batches", new StringContent(file, Encoding.UTF8, "application/jsonl"));
        var id = (await submitted.JsonAsync(HttpStatusCode.Accepted)).GetProperty("id").GetString()!;

        // Watched in the database: some lines finished, others not yet; then the node running it dies.
        await Cluster.EventuallyAsync(() => Task.FromResult(cluster.Scalar<int>("SELECT succeeded FROM batches WHERE id = $1", id) >= 8),
            TimeSpan.FromMinutes(2), "8 lines finished");
        var holder = cluster.Scalar<string>("SELECT runner FROM batches WHERE id = $1", id);
        cluster[holder].KillHard();
        var before = Lines(cluster, id);
        var finished = before.Where(l => l.State == "succeeded").ToList();
        output.WriteLine($"{holder} killed with {finished.Count} of 40 lines finished");
        Assert.InRange(finished.Count, 8, 39);
        Assert.All(before, l => Assert.InRange(l.Attempts, 0, 1)); // while it held the batch, nobody else took a line

        var survivor = cluster[holder == "a" ? "b" : "a"];
        await Cluster.EventuallyAsync(async () =>
            (await survivor.Client.GetFromJsonAsync<JsonElement>($"/batches/{id}")).GetProperty("status").GetString() == "completed",
            TimeSpan.FromMinutes(3), "the batch completed on the surviving node");
        var batch = await (await survivor.Client.GetAsync($"/batches/{id}")).JsonAsync(HttpStatusCode.OK);
        Assert.Equal((40, 0), (batch.GetProperty("succeeded").GetInt32(), batch.GetProperty("failed").GetInt32()));
        Assert.Equal(survivor.Name, batch.GetProperty("node").GetString());
        Assert.Equal(2, cluster.Scalar<int>("SELECT claims FROM batches WHERE id = $1", id));

        // Lines finished before the kill were not run again: one attempt, the same finish time and response.
        var after = Lines(cluster, id);
        foreach (var line in finished)
            Assert.Equal(line, after[line.Line - 1]);
        Assert.All(after.Except(finished), l => Assert.InRange(l.Attempts, 1, 2));

        using var results = await survivor.Client.GetAsync($"/batches/{id}/results");
        Assert.Equal(HttpStatusCode.OK, results.StatusCode);
        var parsed = (await results.Content.ReadAsStringAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(Enumerable.Range(1, 40).Select(i => $"f{i}"), parsed.Select(r => r.GetProperty("custom_id").GetString()));
        Assert.All(parsed, r => Assert.True(r.TryGetProperty("response", out _), r.ToString()));
    }
}

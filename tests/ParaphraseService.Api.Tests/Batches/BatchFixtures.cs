using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.Data.Sqlite;
using ParaphraseService.Api.Batches;

namespace ParaphraseService.Api.Tests.Batches;

/// <summary>Submitting batches and reading them back over HTTP, and looking at what the embedded store holds.</summary>
internal static class BatchFixtures
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <summary>A line in the documented shape: custom_id and the /paraphrase body.</summary>
    public static string Line(string customId, object body) => JsonSerializer.Serialize(new Dictionary<string, object> { ["custom_id"] = customId, ["body"] = body });

    public static ByteArrayContent Jsonl(string text, string type = "application/jsonl") => Jsonl(Encoding.UTF8.GetBytes(text), type);

    public static ByteArrayContent Jsonl(byte[] bytes, string type = "application/jsonl") =>
        new(bytes) { Headers = { ContentType = new MediaTypeHeaderValue(type) } };

    public static async Task<Batch> SubmitAsync(HttpClient client, IEnumerable<string> lines)
    {
        using var response = await client.PostAsync("/batches", Jsonl(string.Join('\n', lines) + "\n"));
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, $"{(int)response.StatusCode}: {body}");
        var batch = JsonSerializer.Deserialize<Batch>(body, Json)!;
        Assert.Equal($"/batches/{batch.Id}", response.Headers.Location?.OriginalString);
        return batch;
    }

    public static async Task<Batch> GetAsync(HttpClient client, string id) => (await client.GetFromJsonAsync<Batch>($"/batches/{id}", Json))!;

    /// <summary>
    /// Watches a batch through <paramref name="read"/> (the store, or the API) until <paramref name="until"/> holds:
    /// it waits on the batch's own state, never for a fixed time.
    /// </summary>
    public static async Task<Batch> WaitAsync(Func<Task<Batch>> read, Func<Batch, bool> until, TimeSpan? timeout = null)
    {
        var limit = timeout ?? TimeSpan.FromMinutes(4);
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var batch = await read();
            if (until(batch)) return batch;
            Assert.True(clock.Elapsed < limit, $"batch {batch.Id} still {batch.Status} ({batch.Succeeded} succeeded, {batch.Failed} failed, {batch.Pending} pending) after {limit}");
            await Task.Delay(25);
        }
    }

    public static Task<Batch> FinishedAsync(HttpClient client, string id, TimeSpan? timeout = null) =>
        WaitAsync(() => GetAsync(client, id), b => b.IsFinished, timeout);

    /// <summary>The results file, one parsed object per line.</summary>
    public static async Task<List<JsonElement>> ResultsAsync(HttpClient client, string id)
    {
        using var response = await client.GetAsync($"/batches/{id}/results");
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode}: {text}");
        Assert.Equal("application/jsonl", response.Content.Headers.ContentType?.MediaType);
        Assert.EndsWith("\n", text);
        return text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement.Clone()).ToList();
    }

    /// <summary>One stored line as the embedded store's file holds it (read with SQL, beside the service).</summary>
    public sealed record StoredLineRow(int Line, string State, int Attempts, string? FinishedAt, string? Result);

    public static List<StoredLineRow> StoredLines(string fineTunesDirectory, string id)
    {
        using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = Path.Combine(fineTunesDirectory, "jobs.db"), Pooling = false }.ToString());
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT line, state, attempts, finished_at, result_json FROM batch_lines WHERE batch_id = $id ORDER BY line";
        command.Parameters.AddWithValue("$id", id);
        using var reader = command.ExecuteReader();
        var rows = new List<StoredLineRow>();
        while (reader.Read())
            rows.Add(new StoredLineRow(reader.GetInt32(0), reader.GetString(1), reader.GetInt32(2), reader.IsDBNull(3) ? null : reader.GetString(3),
                reader.IsDBNull(4) ? null : reader.GetString(4)));
        return rows;
    }

    /// <summary>How many times a node claimed the batch.</summary>
    public static long Claims(string fineTunesDirectory, string id) => (long)Scalar(fineTunesDirectory, "SELECT claims FROM batches WHERE id = $id", id)!;

    public static string StoredState(string fineTunesDirectory, string id) => (string)Scalar(fineTunesDirectory, "SELECT state FROM batches WHERE id = $id", id)!;

    private static object? Scalar(string fineTunesDirectory, string sql, string id)
    {
        using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = Path.Combine(fineTunesDirectory, "jobs.db"), Pooling = false }.ToString());
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.Parameters.AddWithValue("$id", id);
        return command.ExecuteScalar();
    }
}

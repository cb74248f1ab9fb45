using System.Net;
using System.Net.Http.Json;
using System.Net.ServerSentEvents;
using System.Text;
using System.Text.Json;
using ParaphraseService.Api.FineTuning;
using ParaphraseService.Api.Storage.PostgreSql;
using ParaphraseService.Model.Checkpoints;

namespace ParaphraseService.Cluster.Tests;

/// <summary>Fine-tune jobs over HTTP on any replica, and what the database holds of them.</summary>
internal static class Jobs
{
    private static readonly string[] Words = ["red", "blue", "green", "cat", "dog", "bird", "sun", "moon", "tree", "river"];

    /// <summary>JSONL pairs: three words and the same words reversed.</summary>
    public static string ReverseWords(int count, int seed)
    {
        var random = new Random(seed);
        var lines = new StringBuilder();
        var seen = new HashSet<string>();
        while (seen.Count < count)
        {
            var w = Enumerable.Range(0, 3).Select(_ => Words[random.Next(Words.Length)]).ToArray();
            var source = string.Join(' ', w);
            if (w[0] == w[2] || !seen.Add(source)) continue;
            lines.AppendLine(JsonSerializer.Serialize(new { source, target = string.Join(' ', w.Reverse()) }));
        }
        return lines.ToString();
    }

    /// <summary>A short job for the trainable model (64 positions).</summary>
    public static Dictionary<string, object> Options(string adapter, int maxSteps, int checkpointEvery = 1000) => new()
    {
        ["adapter"] = adapter, ["rank"] = 4, ["learningRate"] = 5e-3, ["batchSize"] = 4, ["gradientAccumulation"] = 2, ["dropout"] = 0.1,
        ["maxSteps"] = maxSteps, ["epochs"] = 100, ["checkpointEverySteps"] = checkpointEvery, ["bleuSamples"] = 0, ["evalFraction"] = 0.0,
        ["maxSequenceLength"] = 32, ["targetModules"] = new[] { "q_proj", "v_proj" },
    };

    public static async Task<HttpResponseMessage> PostAsync(HttpClient admin, object options, string dataset)
    {
        using var form = new MultipartFormDataContent
        {
            { new StringContent(JsonSerializer.Serialize(options, FineTuneJobStore.Json)), "options" },
            { new ByteArrayContent(Encoding.UTF8.GetBytes(dataset)), "dataset", "pairs.jsonl" },
        };
        return await admin.PostAsync("/admin/fine-tunes", form);
    }

    public static async Task<FineTuneJob> SubmitAsync(HttpClient admin, object options, string dataset)
    {
        using var response = await PostAsync(admin, options, dataset);
        return (await response.JsonAsync(HttpStatusCode.Accepted)).Deserialize<FineTuneJob>(FineTuneJobStore.Json)!;
    }

    public static async Task<FineTuneJob> GetAsync(HttpClient admin, string id) =>
        (await admin.GetFromJsonAsync<FineTuneJob>($"/admin/fine-tunes/{id}", FineTuneJobStore.Json))!;

    /// <summary>Polls until every job has ended.</summary>
    public static async Task<List<FineTuneJob>> FinishedAsync(HttpClient admin, IEnumerable<string> ids, TimeSpan timeout)
    {
        var wanted = ids.ToHashSet();
        List<FineTuneJob> jobs = [];
        await Cluster.EventuallyAsync(async () =>
        {
            jobs = (await admin.GetFromJsonAsync<List<FineTuneJob>>("/admin/fine-tunes", FineTuneJobStore.Json))!.Where(j => wanted.Contains(j.Id)).ToList();
            return jobs.Count == wanted.Count && jobs.All(j => j.IsFinished);
        }, timeout, "every job finished");
        return jobs;
    }

    /// <summary>Reads a job's event stream (on any replica) until <paramref name="until"/> holds or the stream ends.</summary>
    public static async Task<List<(string Type, JsonElement Data)>> FollowAsync(HttpClient admin, string id, Func<string, JsonElement, bool> until, TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        using var response = await admin.GetAsync($"/admin/fine-tunes/{id}/events", HttpCompletionOption.ResponseHeadersRead, cancel.Token);
        response.EnsureSuccessStatusCode();
        var events = new List<(string, JsonElement)>();
        await using var stream = await response.Content.ReadAsStreamAsync(cancel.Token);
        await foreach (var item in SseParser.Create(stream).EnumerateAsync(cancel.Token))
        {
            var data = JsonDocument.Parse(item.Data).RootElement.Clone();
            events.Add((item.EventType, data));
            if (until(item.EventType, data)) break;
        }
        return events;
    }

    public static FineTuneJob AsJob(this JsonElement data) => data.Deserialize<FineTuneJob>(FineTuneJobStore.Json)!;

    /// <summary>The adapter's files as stored in the database, written into a new folder.</summary>
    public static string AdapterFiles(Cluster cluster, string name)
    {
        var folder = Directory.CreateTempSubdirectory("cluster-adapter-").FullName;
        using var connection = cluster.Open();
        var hash = cluster.Scalar<string>("SELECT content_sha256 FROM adapters WHERE name = $1", name);
        Assert.Equal(hash, PostgreSqlFiles.Read(connection, null, PostgreSqlAdapterStore.FilesOwner(hash), folder));
        return folder;
    }

    /// <summary>The largest difference between two adapters' tensors (same tensor names required).</summary>
    public static float LargestDifference(string folderA, string folderB)
    {
        using var a = new SafetensorsReader(Path.Combine(folderA, "adapter_model.safetensors"));
        using var b = new SafetensorsReader(Path.Combine(folderB, "adapter_model.safetensors"));
        Assert.Equal(a.Tensors.Keys.Order(), b.Tensors.Keys.Order());
        return a.Tensors.Keys.Max(name =>
        {
            using var x = a.Read(name);
            using var y = b.Read(name);
            return (x - y).abs().max().item<float>();
        });
    }
}

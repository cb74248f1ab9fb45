using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using ParaphraseService.Api.FineTuning;
using ParaphraseService.Model.Checkpoints;
using ParaphraseService.Model.Loading;
using static TorchSharp.torch;

namespace ParaphraseService.Api.Tests.FineTuning;

/// <summary>A model that can learn in a few steps, synthetic paraphrase data, and helpers to drive jobs over HTTP.</summary>
internal static class FineTuneFixtures
{
    private static readonly string[] Words = ["red", "blue", "green", "cat", "dog", "bird", "sun", "moon", "tree", "river"];

    private static readonly Lazy<string> s_model = new(WriteLearnableModel);

    /// <summary>
    /// A 2-layer GPT-J (demo widths) with random weights whose output layer is 20x larger: at init std 0.02 a frozen
    /// lm_head cannot express a confident prediction, as a trained one can. Deterministic, so it is written once into
    /// one temp folder and reused by later runs (staged and renamed, so a half-written one is never used).
    /// </summary>
    public static string LearnableModel => s_model.Value;

    // Bump when the model below changes.
    private static readonly string s_modelFolder = Path.Combine(Path.GetTempPath(), "paraphrase-fine-tune-model-v1");

    private static string WriteLearnableModel()
    {
        if (File.Exists(Path.Combine(s_modelFolder, SyntheticCheckpoint.SingleFileName)))
            return s_modelFolder;
        var staging = Directory.CreateTempSubdirectory("fine-tune-model-").FullName;
        var folder = Path.Combine(staging, "model");
        WriteLearnableModel(folder);
        try
        {
            Directory.Move(folder, s_modelFolder);
        }
        catch (IOException) when (File.Exists(Path.Combine(s_modelFolder, SyntheticCheckpoint.SingleFileName)))
        {
            // Another test process wrote it first: the same bytes.
        }
        Directory.Delete(staging, recursive: true);
        return s_modelFolder;
    }

    private static void WriteLearnableModel(string folder)
    {
        var config = DemoModel.Config with { LayerCount = 2, MaxPositions = 256 };
        SyntheticCheckpoint.Write(config, seed: 5, ScalarType.Float32, folder);
        var file = Path.Combine(folder, SyntheticCheckpoint.SingleFileName);
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        using (var reader = new SafetensorsReader(file))
            foreach (var name in reader.Tensors.Keys)
                tensors[name] = name == "lm_head.weight" ? reader.Read(name).mul_(20) : reader.Read(name);
        SafetensorsWriter.Write(file, tensors);
        foreach (var t in tensors.Values) t.Dispose();
    }

    /// <summary>JSONL pairs of a synthetic paraphrase mapping: the same three words in reverse order.</summary>
    public static string ReverseWordsJsonl(int count, int seed)
    {
        var random = new Random(seed);
        var lines = new StringBuilder();
        var seen = new HashSet<string>();
        while (seen.Count < count)
        {
            var w = Enumerable.Range(0, 3).Select(_ => Words[random.Next(Words.Length)]).ToArray();
            var source = string.Join(' ', w);
            if (w[0] == w[2] || !seen.Add(source)) continue; // a palindrome would be a copy, which preparation drops
            lines.AppendLine(JsonSerializer.Serialize(new { source, target = string.Join(' ', w.Reverse()) }));
        }
        return lines.ToString();
    }

    public static MultipartFormDataContent Form(object options, string dataset, string fileName = "pairs.jsonl") => Form(options, Encoding.UTF8.GetBytes(dataset), fileName);

    public static MultipartFormDataContent Form(object options, byte[] dataset, string fileName)
    {
        var form = new MultipartFormDataContent
        {
            { new StringContent(JsonSerializer.Serialize(options, FineTuneJobStore.Json)), "options" },
            { new ByteArrayContent(dataset), "dataset", fileName },
        };
        return form;
    }

    public static async Task<FineTuneJob> SubmitAsync(HttpClient admin, object options, string dataset)
    {
        using var response = await admin.PostAsync("/admin/fine-tunes", Form(options, dataset));
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == System.Net.HttpStatusCode.Accepted, $"{(int)response.StatusCode}: {body}");
        var job = JsonSerializer.Deserialize<FineTuneJob>(body, FineTuneJobStore.Json)!;
        Assert.Equal($"/admin/fine-tunes/{job.Id}", response.Headers.Location?.OriginalString);
        return job;
    }

    public static async Task<FineTuneJob> GetAsync(HttpClient admin, string id) =>
        (await admin.GetFromJsonAsync<FineTuneJob>($"/admin/fine-tunes/{id}", FineTuneJobStore.Json))!;

    /// <summary>
    /// Reads a job's event stream until <paramref name="until"/> holds for an event (type, JSON data) or the stream ends;
    /// returns every event read. Waits on the service's own events, never for a fixed time.
    /// </summary>
    public static async Task<List<(string Type, JsonElement Data)>> FollowAsync(HttpClient admin, string id,
        Func<string, JsonElement, bool>? until = null, TimeSpan? timeout = null)
    {
        using var cancel = new CancellationTokenSource(timeout ?? TimeSpan.FromMinutes(3));
        using var response = await admin.GetAsync($"/admin/fine-tunes/{id}/events", HttpCompletionOption.ResponseHeadersRead, cancel.Token);
        response.EnsureSuccessStatusCode();
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var events = new List<(string, JsonElement)>();
        await using var stream = await response.Content.ReadAsStreamAsync(cancel.Token);
        await foreach (var item in System.Net.ServerSentEvents.SseParser.Create(stream).EnumerateAsync(cancel.Token))
        {
            var data = JsonDocument.Parse(item.Data).RootElement.Clone();
            events.Add((item.EventType, data));
            if (until?.Invoke(item.EventType, data) == true) break;
        }
        return events;
    }

    /// <summary>Follows a job to its end and returns its final record.</summary>
    public static async Task<FineTuneJob> FinishedAsync(HttpClient admin, string id)
    {
        var events = await FollowAsync(admin, id);
        var last = events.Last(e => e.Type == "state").Data.Deserialize<FineTuneJob>(FineTuneJobStore.Json)!;
        Assert.True(last.IsFinished, $"the stream ended with the job {last.State}");
        return last;
    }

    public static bool IsState(string type, JsonElement data, FineTuneState state) =>
        type == "state" && data.Deserialize<FineTuneJob>(FineTuneJobStore.Json)!.State == state;
}

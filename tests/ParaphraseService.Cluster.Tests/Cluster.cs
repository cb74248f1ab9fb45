using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Npgsql;
using ParaphraseService.Model.Loading;
using ParaphraseService.Model.Tests;

namespace ParaphraseService.Cluster.Tests;

/// <summary>Every cluster test shares one PostgreSQL server and runs alone (the processes share two cores).</summary>
[CollectionDefinition(Name)]
public sealed class ClusterCollection : ICollectionFixture<PostgresServer>
{
    public const string Name = "Cluster";
}

/// <summary>Service processes on one database of their own, started together and stopped together.</summary>
public sealed class Cluster : IAsyncDisposable
{
    private readonly Dictionary<string, ServiceProcess> _nodes = new(StringComparer.Ordinal);

    private Cluster(string connectionString) => ConnectionString = connectionString;

    public string ConnectionString { get; }

    public ServiceProcess this[string name] => _nodes[name];

    public IEnumerable<ServiceProcess> Nodes => _nodes.Values;

    /// <summary>The tiny GPT-J fixture (vocabulary of 128: prompts like "!#"), for which tests/fixtures/peft/q-v is an adapter.</summary>
    public static string TinyModel => Fixtures.Get("gptj-tiny", "safetensors");

    public static string TinyAdapter => Fixtures.Get("peft", "q-v");

    /// <summary>A 1-layer GPT-J of the demo's widths with GPT-2's vocabulary, which fine-tunes can train on (written once per run).</summary>
    public static string TrainableModel => s_trainable.Value;

    private static readonly Lazy<string> s_trainable = new(() =>
    {
        var root = Directory.CreateTempSubdirectory("cluster-model-").FullName;
        // Shared by every test of the run, so removed when the run ends (52 MB a run were left in the temp folder); a file
        // still held at exit leaves it behind rather than failing the run.
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try { Directory.Delete(root, recursive: true); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        };
        var folder = Path.Combine(root, "model");
        SyntheticCheckpoint.Write(DemoModel.Config with { LayerCount = 1, MaxPositions = 64 }, seed: 11, TorchSharp.torch.ScalarType.Float32, folder);
        return folder;
    });

    /// <summary>Starts the nodes (name, roles) on a new database and waits until every one is ready.</summary>
    public static async Task<Cluster> StartAsync(PostgresServer server, string model, IReadOnlyList<(string Name, string Roles)> nodes,
        IReadOnlyDictionary<string, string>? settings = null)
    {
        var cluster = new Cluster(server.CreateDatabase("t" + Guid.NewGuid().ToString("N")[..12]));
        try
        {
            await Task.WhenAll(nodes.Select(node => cluster.AddAsync(node.Name, node.Roles, model, settings)));
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
        return cluster;
    }

    /// <summary>Starts one more node on this cluster's database and waits until it is ready.</summary>
    public async Task<ServiceProcess> AddAsync(string name, string roles, string model, IReadOnlyDictionary<string, string>? settings = null)
    {
        var all = new Dictionary<string, string>
        {
            ["Model__Source"] = model,
            ["Storage__PostgreSql"] = ConnectionString,
            ["Node__Roles"] = roles,
            ["Storage__LeaseSeconds"] = "3",
            ["Storage__JobPollMilliseconds"] = "500",
            ["Storage__CatalogCheckSeconds"] = "5",
        };
        foreach (var (key, value) in settings ?? new Dictionary<string, string>()) all[key] = value;
        var node = await ServiceProcess.StartAsync(name, all);
        lock (_nodes) _nodes[name] = node;
        await node.WaitReadyAsync();
        return node;
    }

    /// <summary>A connection to the cluster's database, to look at what the service stored.</summary>
    public NpgsqlConnection Open()
    {
        var connection = new NpgsqlConnection(ConnectionString);
        connection.Open();
        return connection;
    }

    public T Scalar<T>(string sql, params object[] parameters)
    {
        using var connection = Open();
        using var command = new NpgsqlCommand(sql, connection);
        foreach (var p in parameters) command.Parameters.Add(new NpgsqlParameter { Value = p });
        return (T)command.ExecuteScalar()!;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var node in _nodes.Values) await node.DisposeAsync();
    }

    /// <summary>
    /// Polls <paramref name="condition"/> until it holds; returns when the successful probe started (a request that
    /// succeeds shows the state it found when it arrived, however long it then ran). Fails after <paramref name="timeout"/>.
    /// </summary>
    public static async Task<TimeSpan> EventuallyAsync(Func<Task<bool>> condition, TimeSpan timeout, string what)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var started = clock.Elapsed;
            if (await condition()) return started;
            if (clock.Elapsed > timeout) throw new TimeoutException($"{what}: not within {timeout}.");
            await Task.Delay(20);
        }
    }
}

internal static class Http
{
    public static async Task<JsonElement> JsonAsync(this HttpResponseMessage response, HttpStatusCode expected)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == expected, $"expected {(int)expected}, got {(int)response.StatusCode}: {body}");
        return body.Length == 0 ? default : JsonDocument.Parse(body).RootElement.Clone();
    }

    /// <summary>A greedy completion of "!#" (ids below 128, the tiny model's vocabulary) with an adapter.</summary>
    public static Task<HttpResponseMessage> CompleteAsync(this HttpClient client, string? model) =>
        client.PostAsJsonAsync("/v1/completions", new { model, prompt = "!#", max_tokens = 4, temperature = 0 });
}

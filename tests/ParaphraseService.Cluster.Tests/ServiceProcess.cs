using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text.RegularExpressions;
using ParaphraseService.Model.Tests;

namespace ParaphraseService.Cluster.Tests;

/// <summary>
/// The service as a process of its own (<c>dotnet ParaphraseService.Api.dll</c>, the Api project's build output), on
/// a free loopback port it picks itself (read back from its "Now listening on" log line), configured by environment
/// variables as in a container. Its log lines are kept for the test's messages.
/// </summary>
public sealed partial class ServiceProcess : IAsyncDisposable
{
    public const string AdminKey = "cluster-admin-key-0123456789abcdef";

    private readonly Process _process;
    private readonly ConcurrentQueue<string> _log = new();
    private readonly TaskCompletionSource<Uri> _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly string _folder;

    private ServiceProcess(string name, IReadOnlyDictionary<string, string> settings)
    {
        Name = name;
        _folder = Directory.CreateTempSubdirectory($"cluster-{name}-").FullName;
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = ApiFolder };
        start.ArgumentList.Add(Path.Combine(ApiFolder, "ParaphraseService.Api.dll"));
        var environment = new Dictionary<string, string>
        {
            ["ASPNETCORE_URLS"] = "http://127.0.0.1:0",
            ["DOTNET_ENVIRONMENT"] = "Production",
            ["ASPNETCORE_ENVIRONMENT"] = "Production",
            ["Model__Device"] = "cpu",
            ["Admin__ApiKey"] = AdminKey,
            ["Node__Id"] = name,
            ["Adapters__Directory"] = Path.Combine(_folder, "adapters"),
            ["FineTunes__Directory"] = Path.Combine(_folder, "fine-tunes"),
            // Several processes share two cores: one thread each keeps them from fighting over them.
            ["OMP_NUM_THREADS"] = "1",
        };
        foreach (var (key, value) in settings) environment[key] = value;
        foreach (var (key, value) in environment) start.Environment[key] = value;
        _process = Process.Start(start) ?? throw new InvalidOperationException("dotnet did not start.");
        _process.OutputDataReceived += (_, e) => Read(e.Data);
        _process.ErrorDataReceived += (_, e) => Read(e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        _ = _process.WaitForExitAsync().ContinueWith(_ => _listening.TrySetException(new InvalidOperationException($"{Name} exited ({_process.ExitCode}) before listening:\n{Log}")),
            TaskScheduler.Default);
    }

    public string Name { get; }

    public int Id => _process.Id;

    public Uri Address => _listening.Task.IsCompletedSuccessfully ? _listening.Task.Result : throw new InvalidOperationException($"{Name} is not listening.");

    public HttpClient Client { get; private set; } = null!;

    /// <summary>Sends the admin key.</summary>
    public HttpClient Admin { get; private set; } = null!;

    public bool HasExited => _process.HasExited;

    /// <summary>The last log lines, for a failing assertion's message.</summary>
    public string Log => string.Join('\n', _log.TakeLast(60));

    public IReadOnlyList<string> LogLines => _log.ToList();

    /// <summary>The Api project's build output (same configuration as these tests).</summary>
    public static string ApiFolder { get; } = FindApi();

    /// <summary>Starts a node and waits until it listens (not until it is ready: see <see cref="WaitReadyAsync"/>).</summary>
    public static async Task<ServiceProcess> StartAsync(string name, IReadOnlyDictionary<string, string> settings)
    {
        var service = new ServiceProcess(name, settings);
        Uri address;
        try
        {
            address = await service._listening.Task.WaitAsync(TimeSpan.FromMinutes(2));
        }
        catch (TimeoutException)
        {
            await service.DisposeAsync();
            throw new TimeoutException($"{name} did not listen within 2 minutes:\n{service.Log}");
        }
        service.Client = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromMinutes(2) };
        service.Admin = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromMinutes(2) };
        service.Admin.DefaultRequestHeaders.Add("X-Api-Key", AdminKey);
        return service;
    }

    /// <summary>Starts a node without waiting for anything (for one that is expected not to start).</summary>
    public static ServiceProcess Launch(string name, IReadOnlyDictionary<string, string> settings) => new(name, settings);

    /// <summary>Waits for the process to end by itself; its exit code.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        await _process.WaitForExitAsync().WaitAsync(timeout);
        // the last lines of output are read after the exit
        _process.WaitForExit();
        return _process.ExitCode;
    }

    /// <summary>Polls /health/ready until 200 (the model loaded and, in cluster mode, the database reached).</summary>
    public async Task WaitReadyAsync(TimeSpan? timeout = null)
    {
        var deadline = Stopwatch.StartNew();
        var limit = timeout ?? TimeSpan.FromMinutes(2);
        while (true)
        {
            if (_process.HasExited) throw new InvalidOperationException($"{Name} exited ({_process.ExitCode}):\n{Log}");
            try
            {
                using var response = await Client.GetAsync("/health/ready");
                if (response.StatusCode == HttpStatusCode.OK) return;
            }
            catch (HttpRequestException)
            {
            }
            if (deadline.Elapsed > limit) throw new TimeoutException($"{Name} not ready after {limit}:\n{Log}");
            await Task.Delay(100);
        }
    }

    /// <summary>kill -9: no shutdown, no lease given back.</summary>
    public void KillHard()
    {
        _process.Kill(entireProcessTree: true);
        _process.WaitForExit(TimeSpan.FromSeconds(30));
    }

    public async ValueTask DisposeAsync()
    {
        Client?.Dispose();
        Admin?.Dispose();
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        }
        _process.Dispose();
        // CLUSTER_TEST_LOGS=<folder> keeps every node's log (for a failure's trace id).
        if (Environment.GetEnvironmentVariable("CLUSTER_TEST_LOGS") is { Length: > 0 } logs)
        {
            Directory.CreateDirectory(logs);
            File.WriteAllLines(Path.Combine(logs, $"{DateTime.UtcNow:HHmmss}-{Name}.log"), _log);
        }
        try
        {
            Directory.Delete(_folder, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private void Read(string? line)
    {
        if (line is null || line.Contains("RequestLoggingMiddleware", StringComparison.Ordinal)) return;
        _log.Enqueue(line);
        while (_log.Count > 5000) _log.TryDequeue(out _);
        if (!_listening.Task.IsCompleted && ListeningOn().Match(line) is { Success: true } match)
            _listening.TrySetResult(new Uri(match.Groups[1].Value));
    }

    private static string FindApi()
    {
        // tests/ParaphraseService.Cluster.Tests/bin/<Configuration>/<tfm>/ -> src/ParaphraseService.Api/bin/<Configuration>/<tfm>/
        var here = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var tfm = here.Name;
        var configuration = here.Parent!.Name;
        var folder = Path.Combine(Fixtures.Get("..", ".."), "src", "ParaphraseService.Api", "bin", configuration, tfm);
        return File.Exists(Path.Combine(folder, "ParaphraseService.Api.dll")) ? Path.GetFullPath(folder)
            : throw new FileNotFoundException($"The service's build output is not at {folder}; build the solution first.");
    }

    [GeneratedRegex(@"""address"":""(http://127\.0\.0\.1:\d+)""")]
    private static partial Regex ListeningOn();
}

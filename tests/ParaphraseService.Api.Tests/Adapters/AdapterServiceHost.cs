using System.Threading.Channels;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using ParaphraseService.Api.Adapters;
using ParaphraseService.Api.Hosting;

namespace ParaphraseService.Api.Tests.Adapters;

/// <summary>
/// The whole service (Program.cs) on Kestrel at a free loopback port: real HTTP, real files in a temporary folder, the
/// tiny GPT-J fixture as the base model, an admin key, and a recorder of every response's final status.
/// </summary>
internal sealed class AdapterServiceHost : IAsyncDisposable
{
    public const string AdminKey = "test-admin-key-0123456789abcdef";

    private readonly ServiceApplication _app;
    private readonly Channel<int> _statuses;

    private AdapterServiceHost(ServiceApplication app, Channel<int> statuses, string root)
    {
        _app = app;
        _statuses = statuses;
        Root = root;
        Client = new HttpClient { BaseAddress = app.ClientOptions.BaseAddress };
        Admin = new HttpClient { BaseAddress = app.ClientOptions.BaseAddress };
        Admin.DefaultRequestHeaders.Add("X-Api-Key", AdminKey);
    }

    /// <summary>No credentials.</summary>
    public HttpClient Client { get; }

    /// <summary>Sends the admin key.</summary>
    public HttpClient Admin { get; }

    public IServiceProvider Services => _app.Services;

    /// <summary>The test's temporary folder; the store is its "adapters" folder unless configured otherwise.</summary>
    public string Root { get; }

    public AdapterStore Store => Services.GetRequiredService<AdapterStore>();

    /// <summary>
    /// Starts the service with the tiny model, an admin key and a fresh store, overridden by <paramref name="settings"/>,
    /// and (unless told not to) waits for the model to load.
    /// </summary>
    /// <param name="services">Test services registered after the app's own (a later registration replaces a single service).</param>
    public static async Task<AdapterServiceHost> StartAsync(Dictionary<string, string?>? settings = null, bool waitForModel = true,
        Action<IServiceCollection>? services = null)
    {
        var root = Directory.CreateTempSubdirectory("adapters-api-").FullName;
        var all = new Dictionary<string, string?>
        {
            ["Model:Source"] = AdapterFixtures.TinyModel,
            ["Model:Device"] = "cpu",
            ["Admin:ApiKey"] = AdminKey,
            ["Adapters:Directory"] = Path.Combine(root, "adapters"),
        };
        foreach (var (key, value) in settings ?? [])
            all[key] = value;
        var statuses = Channel.CreateUnbounded<int>();
        var app = new ServiceApplication(all, collection =>
        {
            collection.AddTransient<IStartupFilter>(_ => new StatusRecorder(statuses));
            services?.Invoke(collection);
        }, Environments.Production);
        try
        {
            app.UseKestrel();
            app.StartServer();
        }
        catch
        {
            try
            {
                await app.DisposeAsync();
            }
            catch (ObjectDisposedException)
            {
                // A host that failed to start may be half disposed already; the start's own error is the one to report
                // (a CI run once saw this disposal error instead of the option's name).
            }
            Directory.Delete(root, recursive: true);
            throw;
        }
        var host = new AdapterServiceHost(app, statuses, root);
        if (waitForModel)
            await host.WaitForModelAsync();
        return host;
    }

    /// <summary>Waits for the model host's load to end (loaded or failed), never for a fixed time.</summary>
    public Task WaitForModelAsync() => Services.GetRequiredService<ModelHost>().ExecuteTask!.WaitAsync(TimeSpan.FromMinutes(1));

    /// <summary>The status of the next response the service finishes (for requests whose client cannot read it).</summary>
    public async Task<int> NextStatusAsync() => await _statuses.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(30));

    /// <summary>Every entry of the store's folder, hidden ones (staging, tombstones) included.</summary>
    public IReadOnlyList<string> StoreEntries() =>
        Directory.EnumerateFileSystemEntries(Store.Directory).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList()!;

    /// <summary>Stops the service and deletes its folder; fails the test if any response was a 500.</summary>
    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        Admin.Dispose();
        await _app.DisposeAsync();
        Directory.Delete(Root, recursive: true);
        _statuses.Writer.TryComplete();
        var statuses = new List<int>();
        await foreach (var status in _statuses.Reader.ReadAllAsync())
            statuses.Add(status);
        Assert.DoesNotContain(StatusCodes.Status500InternalServerError, statuses);
    }

    /// <summary>Outermost middleware: records the status every response finally got (after the exception handler).</summary>
    private sealed class StatusRecorder(Channel<int> statuses) : IStartupFilter
    {
        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            app.Use(async (context, inner) =>
            {
                try
                {
                    await inner(context);
                }
                finally
                {
                    statuses.Writer.TryWrite(context.Response.StatusCode);
                }
            });
            next(app);
        };
    }
}

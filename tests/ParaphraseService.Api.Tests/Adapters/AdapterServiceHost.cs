using System.Net;
using System.Threading.Channels;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using ParaphraseService.Api.Adapters;
using ParaphraseService.Api.Health;
using ParaphraseService.Api.Hosting;

namespace ParaphraseService.Api.Tests.Adapters;

/// <summary>
/// The service as Program.cs composes it plus the adapter lines (AddAdapterStore, MapAdapters, MapAdminAdapters),
/// on Kestrel at 127.0.0.1 with a free port: real HTTP, real files in a temporary folder, the tiny GPT-J fixture as
/// the base model. Program.cs does not map the adapter endpoints yet, so WebApplicationFactory&lt;Program&gt; cannot
/// serve them; once it does, this host can become a ServiceApplication with UseKestrel.
/// </summary>
internal sealed class AdapterServiceHost : IAsyncDisposable
{
    public const string AdminKey = "test-admin-key-0123456789abcdef";

    private readonly WebApplication _app;
    private readonly Channel<int> _statuses;

    private AdapterServiceHost(WebApplication app, Channel<int> statuses, string root, Uri address)
    {
        _app = app;
        _statuses = statuses;
        Root = root;
        Client = new HttpClient { BaseAddress = address };
        Admin = new HttpClient { BaseAddress = address };
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
    public static async Task<AdapterServiceHost> StartAsync(Dictionary<string, string?>? settings = null, bool waitForModel = true)
    {
        var root = Directory.CreateTempSubdirectory("adapters-api-").FullName;
        try
        {
            var builder = WebApplication.CreateBuilder(new WebApplicationOptions { ContentRootPath = root, EnvironmentName = Environments.Production });
            builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0));
            builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["Model:Source"] = AdapterFixtures.TinyModel,
                ["Model:Device"] = "cpu",
                ["Admin:ApiKey"] = AdminKey,
                ["Adapters:Directory"] = "adapters",
            });
            if (settings is not null)
                builder.Configuration.AddInMemoryCollection(settings);
            builder.Logging.ClearProviders();
            if (Environment.GetEnvironmentVariable("ADAPTER_TEST_LOG") is not null)
                builder.Logging.AddConsole(); // to see the service's own log while debugging a test

            // As Program.cs (less Serilog) ...
            builder.Services.AddProblemDetails();
            builder.Services.AddEndpointsApiExplorer();
            builder.Services.AddSwaggerGen();
            builder.Services.AddOptions<ModelOptions>().BindConfiguration(ModelOptions.Section).ValidateDataAnnotations().ValidateOnStart();
            builder.Services.AddSingleton<ModelHost>();
            builder.Services.AddHostedService(services => services.GetRequiredService<ModelHost>());
            // ... plus the adapter store.
            builder.Services.AddAdapterStore();

            var app = builder.Build();
            // Outermost: records the status every response finally got (after the exception handler).
            var statuses = Channel.CreateUnbounded<int>();
            app.Use(async (context, next) =>
            {
                try
                {
                    await next(context);
                }
                finally
                {
                    statuses.Writer.TryWrite(context.Response.StatusCode);
                }
            });
            app.UseExceptionHandler();
            app.UseStatusCodePages();
            app.UseSwagger();
            app.MapHealth();
            app.MapAdapters();
            app.MapAdminAdapters();
            try
            {
                await app.StartAsync();
            }
            catch
            {
                await app.DisposeAsync();
                throw;
            }

            var host = new AdapterServiceHost(app, statuses, root, new Uri(app.Urls.Single()));
            if (waitForModel)
                await host.WaitForModelAsync();
            return host;
        }
        catch
        {
            Directory.Delete(root, recursive: true);
            throw;
        }
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
        await _app.StopAsync();
        await _app.DisposeAsync();
        Directory.Delete(Root, recursive: true);
        _statuses.Writer.TryComplete();
        var statuses = new List<int>();
        await foreach (var status in _statuses.Reader.ReadAllAsync())
            statuses.Add(status);
        Assert.DoesNotContain(StatusCodes.Status500InternalServerError, statuses);
    }
}

using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using ParaphraseService.Api.Hosting;

namespace ParaphraseService.Testing;

/// <summary>
/// The real service with the real model (the built-in demo unless a test names another), configured per test, its
/// adapters and fine-tunes in folders of its own. In memory by default; <see cref="StartOnLoopback"/> serves it over
/// real HTTP on a free loopback port, for clients and tests that need a socket (disconnects, OpenAI libraries).
/// </summary>
/// <param name="configureServices">Extra test services, e.g. an <c>IStartupFilter</c> that observes every response.</param>
public sealed class ServiceApplication(
    Dictionary<string, string?>? settings = null, Action<IServiceCollection>? configureServices = null, string? environment = null)
    : WebApplicationFactory<Program>
{
    // Never into the source tree: each instance has folders of its own unless the test names them.
    private readonly string _adapters = Directory.CreateTempSubdirectory("service-adapters-").FullName;
    private readonly string _fineTunes = Directory.CreateTempSubdirectory("service-fine-tunes-").FullName;

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseSetting("Adapters:Directory", _adapters);
        builder.UseSetting("FineTunes:Directory", _fineTunes);
        // With UseKestrel: a free loopback port, so parallel tests never collide (the in-memory server ignores it).
        builder.UseUrls("http://127.0.0.1:0");
        foreach (var (key, value) in settings ?? [])
            builder.UseSetting(key, value);
        if (environment is not null)
            builder.UseEnvironment(environment);
        if (configureServices is not null)
            builder.ConfigureServices(configureServices);
    }

    /// <summary>Serves over real HTTP on a loopback port; returns its base address once the model is loaded.</summary>
    public async Task<Uri> StartOnLoopback()
    {
        UseKestrel();
        StartServer();
        await ModelLoaded();
        return ClientOptions.BaseAddress;
    }

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        Directory.Delete(_adapters, recursive: true);
        Directory.Delete(_fineTunes, recursive: true);
    }

    /// <summary>
    /// The options error the service refuses to start with, given these settings. When the app's start fails,
    /// WebApplicationFactory's deferred host may ask the app's already disposed service provider for its lifetime and
    /// throw that instead of the start's own error (a race in the test host, not in the service; a CI run lost it once):
    /// a start that lost it is tried again with a fresh factory.
    /// </summary>
    public static OptionsValidationException StartError(Dictionary<string, string?> settings)
    {
        for (var attempt = 1; ; attempt++)
        {
            var app = new ServiceApplication(settings);
            try
            {
                app.CreateClient();
                throw new InvalidOperationException("The service started with these settings.");
            }
            catch (OptionsValidationException error)
            {
                return error;
            }
            catch (ObjectDisposedException) when (attempt < 5)
            {
            }
            finally
            {
                try
                {
                    app.Dispose();
                }
                catch (ObjectDisposedException)
                {
                    // A host that failed to start may be half disposed already.
                }
            }
        }
    }

    /// <summary>Waits for the model to finish loading (not for a fixed time).</summary>
    public Task ModelLoaded() => Services.GetRequiredService<ModelHost>().ExecuteTask!.WaitAsync(TimeSpan.FromMinutes(1));
}

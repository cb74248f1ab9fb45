using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using ParaphraseService.Api.Hosting;

namespace ParaphraseService.Api.Tests;

/// <summary>The real service with the real (demo-sized) model, configured per test.</summary>
/// <param name="configureServices">Extra test services, e.g. an <c>IStartupFilter</c> that observes every response.</param>
internal sealed class ServiceApplication(
    Dictionary<string, string?>? settings = null, Action<IServiceCollection>? configureServices = null, string? environment = null)
    : WebApplicationFactory<Program>
{
    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        // With UseKestrel: a free loopback port, so parallel tests never collide (the in-memory server ignores it).
        builder.UseUrls("http://127.0.0.1:0");
        foreach (var (key, value) in settings ?? [])
            builder.UseSetting(key, value);
        if (environment is not null)
            builder.UseEnvironment(environment);
        if (configureServices is not null)
            builder.ConfigureServices(configureServices);
    }

    /// <summary>Waits for the model to finish loading (not for a fixed time).</summary>
    public Task ModelLoaded() => Services.GetRequiredService<ModelHost>().ExecuteTask!.WaitAsync(TimeSpan.FromMinutes(1));
}

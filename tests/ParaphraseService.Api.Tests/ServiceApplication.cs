using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using ParaphraseService.Api.Hosting;

namespace ParaphraseService.Api.Tests;

/// <summary>The real service with the real (demo-sized) model, configured per test.</summary>
internal sealed class ServiceApplication(Dictionary<string, string?>? settings = null) : WebApplicationFactory<Program>
{
    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        foreach (var (key, value) in settings ?? [])
            builder.UseSetting(key, value);
    }

    /// <summary>Waits for the model to finish loading (not for a fixed time).</summary>
    public Task ModelLoaded() => Services.GetRequiredService<ModelHost>().ExecuteTask!.WaitAsync(TimeSpan.FromMinutes(1));
}

namespace ParaphraseService.Api.Adapters;

/// <summary>
/// Opens the store when the app starts, so an unusable <c>Adapters:Directory</c> stops the service at start (as
/// invalid options do) instead of failing its first request, and leftovers of an interrupted run are swept early.
/// </summary>
internal sealed class AdapterStoreStartup(IServiceProvider services, ILogger<AdapterStoreStartup> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        var store = services.GetRequiredService<IAdapterStorage>();
        if (store is AdapterStore local)
            logger.LogInformation("Adapter store at {Directory}: {Count} adapters", local.Directory, local.List().Count);
        else
            logger.LogInformation("Adapter store: {Store}", store.Description);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

using Microsoft.Extensions.Options;
using ParaphraseService.Api.Adapters;
using ParaphraseService.Api.FineTuning;
using ParaphraseService.Api.Hosting;
using ParaphraseService.Api.Storage.PostgreSql;

namespace ParaphraseService.Api.Storage;

public static class StorageServiceCollectionExtensions
{
    /// <summary>
    /// The <c>Storage</c> and <c>Node</c> options (validated at start) and the storage they choose: the embedded
    /// <see cref="AdapterStore"/> and <see cref="FineTuneJobStore"/> by default, or PostgreSQL's stores with their
    /// notification listener when <c>Storage:PostgreSql</c> is set. Endpoints and the runner take
    /// <see cref="IAdapterStorage"/> and <see cref="IFineTuneJobStore"/>.
    /// </summary>
    public static IServiceCollection AddStorage(this IServiceCollection services)
    {
        services.AddOptions<StorageOptions>().BindConfiguration(StorageOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddSingleton<IValidateOptions<StorageOptions>, StorageOptionsValidation>();
        services.AddOptions<NodeOptions>().BindConfiguration(NodeOptions.Section).ValidateOnStart();
        services.AddSingleton<IValidateOptions<NodeOptions>, NodeOptionsValidation>();
        services.AddSingleton<StorageMetrics>();
        services.AddSingleton<PostgreSqlDatabase>();
        services.AddSingleton<PostgreSqlAdapterStore>();
        services.AddSingleton<PostgreSqlJobStore>();
        // Either storage, with the loaded model's built-in adapter (the demo's) listed beside what it stores.
        services.AddSingleton<IAdapterStorage>(provider => new BuiltInAdapterStorage(IsCluster(provider)
            ? provider.GetRequiredService<PostgreSqlAdapterStore>()
            : provider.GetRequiredService<AdapterStore>(), provider.GetRequiredService<ModelHost>()));
        services.AddSingleton<IFineTuneJobStore>(provider => IsCluster(provider)
            ? provider.GetRequiredService<PostgreSqlJobStore>()
            : provider.GetRequiredService<FineTuneJobStore>());
        services.AddSingleton<IStorageHealth>(provider => IsCluster(provider)
            ? provider.GetRequiredService<PostgreSqlDatabase>()
            : new EmbeddedStorageHealth());
        services.AddHostedService<ClusterStartup>();
        services.AddExceptionHandler<StorageUnavailableHandler>();
        return services;
    }

    private static bool IsCluster(IServiceProvider provider) => provider.GetRequiredService<IOptions<StorageOptions>>().Value.IsCluster;

    /// <summary>Starts the database connection and its listener in cluster mode; nothing otherwise (no PostgreSQL type is built).</summary>
    private sealed class ClusterStartup(IServiceProvider provider, IOptions<StorageOptions> options) : IHostedService
    {
        private PostgreSqlListener? _listener;

        public Task StartAsync(CancellationToken cancellationToken)
        {
            if (!options.Value.IsCluster) return Task.CompletedTask;
            _listener = ActivatorUtilities.CreateInstance<PostgreSqlListener>(provider);
            return _listener.StartAsync(cancellationToken);
        }

        public Task StopAsync(CancellationToken cancellationToken) => _listener?.StopAsync(cancellationToken) ?? Task.CompletedTask;
    }
}

using Microsoft.Extensions.Options;
using ParaphraseService.Api.Storage;
using ParaphraseService.Api.Storage.PostgreSql;

namespace ParaphraseService.Api.Batches;

public static class BatchServiceCollectionExtensions
{
    /// <summary>
    /// Server-side batches: the <c>Batches</c> options (validated at start), the store beside the fine-tune jobs' (SQLite
    /// embedded, PostgreSQL in cluster mode), and the runner that feeds their lines to the scheduler's background lane.
    /// Register after the scheduler, so the runner stops first on shutdown and gives its batch back while the scheduler
    /// still ends its lines cleanly.
    /// </summary>
    public static IServiceCollection AddBatches(this IServiceCollection services)
    {
        services.AddOptions<BatchOptions>().BindConfiguration(BatchOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddSingleton<BatchStore>();
        services.AddSingleton<PostgreSqlBatchStore>();
        services.AddSingleton<IBatchStore>(provider => provider.GetRequiredService<IOptions<StorageOptions>>().Value.IsCluster
            ? provider.GetRequiredService<PostgreSqlBatchStore>()
            : provider.GetRequiredService<BatchStore>());
        services.AddSingleton<BatchMetrics>();
        services.AddSingleton<BatchRunner>();
        services.AddHostedService(provider => provider.GetRequiredService<BatchRunner>());
        return services;
    }
}

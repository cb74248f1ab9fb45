using Microsoft.Extensions.DependencyInjection.Extensions;
using ParaphraseService.Api.Admin;

namespace ParaphraseService.Api.Adapters;

public static class AdapterStoreExtensions
{
    /// <summary>
    /// The adapter store (a singleton over <c>Adapters:Directory</c>) with the <c>Adapters</c> and <c>Admin</c>
    /// sections bound and validated at start. Needs <see cref="Hosting.ModelHost"/> registered: adapters are validated
    /// against the model it loads. The store's folder is created (and checked) when the app starts.
    /// </summary>
    public static IServiceCollection AddAdapterStore(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddOptions<AdaptersOptions>().BindConfiguration(AdaptersOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddAdminApiKey();
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<AdapterStore>();
        services.AddHostedService<AdapterStoreStartup>();
        return services;
    }
}

using ParaphraseService.Api.Scheduling;

namespace ParaphraseService.Api.FineTuning;

public static class FineTuningServiceCollectionExtensions
{
    /// <summary>Background fine-tune jobs: the <c>FineTunes</c> options, the job store, and the runner the scheduler drives.</summary>
    public static IServiceCollection AddFineTuning(this IServiceCollection services)
    {
        services.AddOptions<FineTuneOptions>().BindConfiguration(FineTuneOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddSingleton<FineTuneJobStore>();
        services.AddSingleton<FineTuneEvents>();
        services.AddSingleton<FineTuneRunner>();
        services.AddSingleton<IModelBackgroundWork>(provider => provider.GetRequiredService<FineTuneRunner>());
        return services;
    }
}

using Microsoft.Extensions.DependencyInjection.Extensions;

namespace ParaphraseService.Api.Paraphrasing;

public static class ParaphrasingServiceCollectionExtensions
{
    /// <summary>
    /// Registers the post-processing of paraphrase candidates: one <see cref="SentenceEncoder"/> (created on first use,
    /// disposed with the container) as <see cref="ISentenceSimilarity"/>, and <see cref="CandidatePostProcessor"/>.
    /// An <see cref="ISentenceSimilarity"/> registered before this call is kept.
    /// </summary>
    public static IServiceCollection AddParaphrasing(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.TryAddSingleton<SentenceEncoder>();
        services.TryAddSingleton<ISentenceSimilarity>(provider => provider.GetRequiredService<SentenceEncoder>());
        services.TryAddSingleton<CandidatePostProcessor>();
        return services;
    }
}

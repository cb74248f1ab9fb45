namespace ParaphraseService.Api.Tests.FineTuning;

/// <summary>
/// Tests whose services train run alone: dropout draws from LibTorch's process-wide generator, which the trainer seeds
/// per micro-batch, so two services training on parallel test threads would take each other's random numbers and a
/// resumed job would no longer match an uninterrupted one (in production one thread trains).
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TrainingCollection
{
    public const string Name = "Training (the process-wide random generator)";
}

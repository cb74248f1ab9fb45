namespace ParaphraseService.Training.Tests.Training;

/// <summary>
/// Tests that train run alone: dropout draws from LibTorch's process-wide generator, which the trainer seeds per
/// micro-batch, so two trainings on parallel test threads would take each other's random numbers and lose their
/// determinism (in the service one thread trains).
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TrainingCollection
{
    public const string Name = "Training (the process-wide random generator)";
}

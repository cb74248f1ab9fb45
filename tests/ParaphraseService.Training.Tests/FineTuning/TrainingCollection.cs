namespace ParaphraseService.Training.Tests.FineTuning;

/// <summary>
/// Test classes that train, one after another: dropout draws from LibTorch's process-wide generator, which the trainer
/// seeds per micro-batch, so two trainings on parallel test threads would take each other's random numbers and lose
/// their determinism (in the service one thread trains). Nothing else in these tests draws from that generator.
/// </summary>
[CollectionDefinition(Name)]
public sealed class TrainingCollection
{
    public const string Name = "Training (the process-wide random generator)";
}

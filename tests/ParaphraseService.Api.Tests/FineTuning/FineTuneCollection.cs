namespace ParaphraseService.Api.Tests.FineTuning;

/// <summary>
/// Test classes that run fine-tune jobs, one after another: training seeds LibTorch's process-wide generator before each
/// micro-batch (dropout masks), so two services training at once in this test process would draw from each other's
/// stream and break the resume test's bit-for-bit comparison.
/// </summary>
[CollectionDefinition(Name)]
public sealed class FineTuneCollection
{
    public const string Name = "Fine-tune jobs";
}

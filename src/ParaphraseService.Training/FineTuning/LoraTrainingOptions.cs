using System.Text.Json.Serialization;

namespace ParaphraseService.Training.FineTuning;

[JsonConverter(typeof(JsonStringEnumConverter<LearningRateSchedule>))]
public enum LearningRateSchedule
{
    /// <summary>Linear warmup, then linear decay to zero.</summary>
    Linear,
    /// <summary>Linear warmup, then half a cosine down to zero.</summary>
    Cosine,
}

/// <summary>How a LoRA adapter is trained. Defaults follow common PEFT practice for small paraphrase sets.</summary>
public sealed record LoraTrainingOptions
{
    public int Rank { get; init; } = 16;
    public double Alpha { get; init; } = 32;
    public double Dropout { get; init; } = 0.05;
    public bool UseRsLora { get; init; }

    /// <summary>Module names as PEFT takes them (suffixes of module paths); null trains every adaptable module.</summary>
    public IReadOnlyList<string>? TargetModules { get; init; } = ["q_proj", "v_proj"];

    public double LearningRate { get; init; } = 2e-4;
    public int WarmupSteps { get; init; }
    public LearningRateSchedule Schedule { get; init; } = LearningRateSchedule.Linear;
    public int Epochs { get; init; } = 1;

    /// <summary>Stop after this many optimizer steps (overrides epochs when smaller).</summary>
    public int? MaxSteps { get; init; }

    public int BatchSize { get; init; } = 4;

    /// <summary>
    /// Most examples in one forward and backward pass; a batch is then run in several passes with the same result (the
    /// loss is weighted by target tokens over the whole step). Smaller passes hold the model for less time at once,
    /// which is what a service sharing it with requests wants; null: the whole batch.
    /// </summary>
    public int? MaxExamplesPerPass { get; init; }
    public int GradientAccumulation { get; init; } = 1;

    /// <summary>Prompt plus target tokens per example; longer examples are cut (the target's end first).</summary>
    public int MaxSequenceLength { get; init; } = 128;

    public double MaxGradNorm { get; init; } = 1.0;

    /// <summary>Recompute each block's activations in the backward pass instead of keeping them: one more forward
    /// pass per step for activation memory of one block instead of all (the original 8-bit GPT-J recipe uses it).</summary>
    public bool GradientCheckpointing { get; init; } = true;
    public double WeightDecay { get; init; }
    public long Seed { get; init; } = 42;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first value out of range.</summary>
    public void Validate()
    {
        if (Rank is < 1 or > 256) throw new ArgumentException($"rank must be 1-256 (got {Rank}).");
        if (!(Alpha > 0)) throw new ArgumentException($"alpha must be positive (got {Alpha}).");
        if (Dropout is < 0 or >= 1) throw new ArgumentException($"dropout must be in [0, 1) (got {Dropout}).");
        if (!(LearningRate > 0 && LearningRate < 1)) throw new ArgumentException($"learning rate must be in (0, 1) (got {LearningRate}).");
        if (WarmupSteps < 0) throw new ArgumentException("warmup steps must not be negative.");
        if (Epochs < 1) throw new ArgumentException("epochs must be at least 1.");
        if (MaxSteps is < 1) throw new ArgumentException("max steps must be at least 1.");
        if (BatchSize is < 1 or > 256) throw new ArgumentException("batch size must be 1-256.");
        if (GradientAccumulation is < 1 or > 1024) throw new ArgumentException("gradient accumulation must be 1-1024.");
        if (MaxExamplesPerPass is < 1) throw new ArgumentException("examples per pass must be at least 1.");
        if (MaxSequenceLength is < 8 or > 2048) throw new ArgumentException("max sequence length must be 8-2048.");
        if (!(MaxGradNorm > 0)) throw new ArgumentException("max gradient norm must be positive.");
        if (WeightDecay < 0) throw new ArgumentException("weight decay must not be negative.");
    }
}

/// <summary>One optimizer step as it happened.</summary>
public sealed record TrainingStep(int Step, int TotalSteps, int Epoch, double Loss, double LearningRate, double TokensPerSecond);

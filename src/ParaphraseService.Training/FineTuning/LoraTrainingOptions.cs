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

    /// <summary>The most epochs, optimizer steps and warmup steps a run may ask for: far beyond any real run, small enough to count in an int.</summary>
    public const int MaxEpochs = 10_000, MaxStepCount = 100_000_000;

    /// <summary>The largest alpha (the adapter's output is scaled by alpha / rank).</summary>
    public const double MaxAlpha = 10_000;

    /// <summary>Every value out of range, by field (the fine-tune request's camelCase names); empty when all are valid.</summary>
    public IReadOnlyList<(string Field, string Message)> Problems()
    {
        var problems = new List<(string, string)>();
        void Check(bool ok, string field, string message)
        {
            if (!ok) problems.Add((field, message));
        }
        Check(Rank is >= 1 and <= 256, "rank", $"rank must be 1-256 (got {Rank})");
        Check(Alpha is > 0 and <= MaxAlpha, "alpha", $"alpha must be in (0, {MaxAlpha}] (got {Alpha})");
        Check(Dropout is >= 0 and < 1, "dropout", $"dropout must be in [0, 1) (got {Dropout})");
        Check(LearningRate is > 0 and < 1, "learningRate", $"learning rate must be in (0, 1) (got {LearningRate})");
        Check(WarmupSteps is >= 0 and <= MaxStepCount, "warmupSteps", $"warmup steps must be 0-{MaxStepCount} (got {WarmupSteps})");
        Check(Epochs is >= 1 and <= MaxEpochs, "epochs", $"epochs must be 1-{MaxEpochs} (got {Epochs})");
        Check(MaxSteps is null or (>= 1 and <= MaxStepCount), "maxSteps", $"max steps must be 1-{MaxStepCount} (got {MaxSteps})");
        Check(BatchSize is >= 1 and <= 256, "batchSize", $"batch size must be 1-256 (got {BatchSize})");
        Check(GradientAccumulation is >= 1 and <= 1024, "gradientAccumulation", $"gradient accumulation must be 1-1024 (got {GradientAccumulation})");
        Check(MaxExamplesPerPass is null or (>= 1 and <= 256), "maxExamplesPerPass", $"examples per pass must be 1-256 (got {MaxExamplesPerPass})");
        Check(MaxSequenceLength is >= 8 and <= 2048, "maxSequenceLength", $"max sequence length must be 8-2048 (got {MaxSequenceLength})");
        Check(MaxGradNorm is > 0 and <= 1e6, "maxGradNorm", $"max gradient norm must be in (0, 1e6] (got {MaxGradNorm})");
        Check(WeightDecay is >= 0 and <= 1, "weightDecay", $"weight decay must be in [0, 1] (got {WeightDecay})");
        return problems;
    }

    /// <summary>Throws <see cref="ArgumentException"/> naming every value out of range.</summary>
    public void Validate()
    {
        if (Problems() is { Count: > 0 } problems)
            throw new ArgumentException(string.Join("; ", problems.Select(p => p.Message)) + ".");
    }
}

/// <summary>One optimizer step as it happened.</summary>
public sealed record TrainingStep(int Step, int TotalSteps, int Epoch, double Loss, double LearningRate, double TokensPerSecond);

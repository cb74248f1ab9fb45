namespace ParaphraseService.Training.Datasets;

/// <summary>How <see cref="DatasetPreparation"/> filters, samples and splits pairs.</summary>
public sealed record DatasetPreparationOptions
{
    /// <summary>The default <see cref="MaxCharsPerSide"/>: 1000 characters, about 250 GPT-2 tokens of English.</summary>
    public const int DefaultMaxCharsPerSide = 1000;

    /// <summary>The default <see cref="EvalFraction"/>.</summary>
    public const double DefaultEvalFraction = 0.1;

    /// <summary>The default <see cref="Seed"/>.</summary>
    public const int DefaultSeed = 42;

    /// <summary>Pairs with a side longer than this (in UTF-16 characters, after normalization) are dropped; null: no limit.</summary>
    public int? MaxCharsPerSide { get; init; } = DefaultMaxCharsPerSide;

    /// <summary>Pairs with a side of more tokens than this (counted by <see cref="TokenCounter"/>) are dropped; null: no limit.</summary>
    public int? MaxTokensPerSide { get; init; }

    /// <summary>Counts the tokens of a text (the trainer passes its GPT-2 tokenizer); required with <see cref="MaxTokensPerSide"/>.</summary>
    public Func<string, int>? TokenCounter { get; init; }

    /// <summary>
    /// Pairs whose training example has more tokens than this (counted by <see cref="ExampleTokenCounter"/>: the prompt
    /// rendered from the source plus the target) are dropped and counted as too long; null: no limit. A fine-tune sets
    /// it to its <c>maxSequenceLength</c>, so no example is ever cut.
    /// </summary>
    public int? MaxTokensPerExample { get; init; }

    /// <summary>Counts the tokens of a pair's training example (normalized); required with <see cref="MaxTokensPerExample"/>.</summary>
    public Func<ParaphrasePair, int>? ExampleTokenCounter { get; init; }

    /// <summary>Keep this many of the pairs left after filtering, chosen at random with <see cref="Seed"/>; null: all.</summary>
    public int? SampleSize { get; init; }

    /// <summary>
    /// The share of pairs held out for evaluation, in [0, 1): default 0.1. When there are at least 2 pairs and the
    /// fraction is above 0, at least 1 pair goes to each side.
    /// </summary>
    public double EvalFraction { get; init; } = DefaultEvalFraction;

    /// <summary>The seed of the sampling and the split: the same pairs, options and seed always give the same result.</summary>
    public int Seed { get; init; } = DefaultSeed;
}

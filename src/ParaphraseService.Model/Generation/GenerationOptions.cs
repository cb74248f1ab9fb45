namespace ParaphraseService.Model.Generation;

/// <summary>How to pick tokens and when to stop. Defaults follow Hugging Face's <c>generate</c> where it has one.</summary>
public sealed record GenerationOptions
{
    public int MaxNewTokens { get; init; } = 64;

    /// <summary>Always take the most likely token (the sampling settings below are then ignored).</summary>
    public bool Greedy { get; init; }

    public double Temperature { get; init; } = 1.0;

    /// <summary>Keep only the K most likely tokens; 0 keeps all.</summary>
    public int TopK { get; init; }

    /// <summary>Keep the smallest set of tokens whose probability adds up to P; 1 keeps all.</summary>
    public double TopP { get; init; } = 1.0;

    /// <summary>Divides the logit of every token already in the prompt or output (CTRL's penalty); 1 disables it.</summary>
    public double RepetitionPenalty { get; init; } = 1.0;

    /// <summary>Text that ends generation; it is not part of the output.</summary>
    public IReadOnlyList<string> StopSequences { get; init; } = [];

    /// <summary>Stop at this token; null uses the model's eos_token_id.</summary>
    public int? EosTokenId { get; init; }

    /// <summary>Same seed, same prompt, same model: same output. Null draws a fresh seed.</summary>
    public long? Seed { get; init; }

    /// <summary>
    /// Generation stops once the text (leading whitespace aside) is longer than this, with
    /// <see cref="FinishReason.CharacterLimit"/>; null: no limit.
    /// </summary>
    public int? MaxCharacters { get; init; }

    /// <summary>Terms never generated, however cased or tokenized (see <see cref="Generation.BannedText"/>).</summary>
    public IReadOnlyList<string> BannedText { get; init; } = [];

    /// <summary>
    /// Whether this sequence may be decoded speculatively where the batch allows it (<see cref="SpeculationOptions"/>).
    /// Speculation never changes what is generated, only how many forward passes it takes.
    /// </summary>
    public bool Speculate { get; init; } = true;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first value out of range.</summary>
    public void Validate()
    {
        if (MaxNewTokens < 1) throw new ArgumentException($"max new tokens must be at least 1 (got {MaxNewTokens}).");
        if (!Greedy && !(Temperature > 0 && double.IsFinite(Temperature)))
            throw new ArgumentException($"temperature must be a positive number (got {Temperature}); use greedy decoding for temperature 0.");
        if (TopK < 0) throw new ArgumentException($"top-k must be 0 (off) or positive (got {TopK}).");
        if (!(TopP > 0 && TopP <= 1)) throw new ArgumentException($"top-p must be in (0, 1] (got {TopP}).");
        if (!(RepetitionPenalty > 0 && double.IsFinite(RepetitionPenalty)))
            throw new ArgumentException($"repetition penalty must be a positive number (got {RepetitionPenalty}).");
        if (StopSequences.Any(string.IsNullOrEmpty)) throw new ArgumentException("stop sequences must not be empty.");
        if (MaxCharacters is < 1) throw new ArgumentException($"max characters must be at least 1 (got {MaxCharacters}).");
        if (BannedText.Any(string.IsNullOrEmpty)) throw new ArgumentException("banned terms must not be empty.");
    }
}

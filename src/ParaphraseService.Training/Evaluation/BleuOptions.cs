namespace ParaphraseService.Training.Evaluation;

/// <summary>How zero n-gram matches are smoothed; the four methods sacreBLEU offers (Chen &amp; Cherry, 2014).</summary>
public enum BleuSmoothing
{
    /// <summary>No smoothing: any order without a match makes BLEU 0.</summary>
    None,

    /// <summary>sacreBLEU's default (NIST/mteval "exp"): the k-th zero-match order gets precision 1/(2^k · total).</summary>
    Exp,

    /// <summary>A zero-match order gets <see cref="BleuOptions.SmoothValue"/> (default 0.1) matches.</summary>
    Floor,

    /// <summary>Orders above 1 get <see cref="BleuOptions.SmoothValue"/> (default 1) added to matches and totals.</summary>
    AddK,
}

/// <summary>
/// BLEU settings, named after sacreBLEU's. The defaults are sacreBLEU's corpus defaults (signature
/// <c>nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp</c>); <see cref="Sentence"/> holds its
/// <c>sentence_bleu</c> defaults. Only the 13a tokenizer is implemented: it is the one published numbers use.
/// </summary>
public sealed record BleuOptions
{
    /// <summary>sacreBLEU's <c>BLEU()</c>/<c>corpus_bleu</c> defaults: exp smoothing, effective order off.</summary>
    public static BleuOptions Corpus { get; } = new();

    /// <summary>
    /// sacreBLEU's <c>sentence_bleu</c> defaults: exp smoothing with effective order on, so a sentence shorter
    /// than four tokens is scored on the orders it has instead of getting 0.
    /// </summary>
    public static BleuOptions Sentence { get; } = new() { EffectiveOrder = true };

    /// <summary>Longest n-gram counted (sacreBLEU <c>max_ngram_order</c>, default 4).</summary>
    public int MaxNgramOrder { get; init; } = 4;

    /// <summary>Smoothing of orders with no match (sacreBLEU <c>smooth_method</c>, default exp).</summary>
    public BleuSmoothing Smoothing { get; init; } = BleuSmoothing.Exp;

    /// <summary>Value for <see cref="BleuSmoothing.Floor"/> and <see cref="BleuSmoothing.AddK"/>; null for sacreBLEU's default (0.1 and 1).</summary>
    public double? SmoothValue { get; init; }

    /// <summary>Average only over orders the hypotheses have n-grams of (sacreBLEU <c>effective_order</c>).</summary>
    public bool EffectiveOrder { get; init; }

    /// <summary>
    /// Lowercase before tokenizing (sacreBLEU <c>lowercase</c>). Uses the invariant culture, which agrees with
    /// Python's <c>str.lower()</c> except for a few special casings such as U+0130.
    /// </summary>
    public bool Lowercase { get; init; }

    internal double EffectiveSmoothValue => SmoothValue ?? Smoothing switch
    {
        BleuSmoothing.Floor => 0.1,
        BleuSmoothing.AddK => 1,
        _ => 0,
    };

    internal void Validate()
    {
        if (MaxNgramOrder < 1)
            throw new ArgumentOutOfRangeException(nameof(MaxNgramOrder), MaxNgramOrder, "BLEU needs at least unigrams.");
        if (!Enum.IsDefined(Smoothing))
            throw new ArgumentOutOfRangeException(nameof(Smoothing), Smoothing, "Unknown smoothing method.");
        if (SmoothValue is { } value && (!double.IsFinite(value) || value < 0))
            throw new ArgumentOutOfRangeException(nameof(SmoothValue), value, "The smoothing value must be finite and not negative.");
    }
}

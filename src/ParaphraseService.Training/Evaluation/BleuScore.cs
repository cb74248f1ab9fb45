namespace ParaphraseService.Training.Evaluation;

/// <summary>
/// A BLEU score on sacreBLEU's 0-100 scale with the statistics behind it, so a surprising number can be
/// explained (and compared field by field with sacreBLEU's <c>BLEUScore</c>).
/// </summary>
/// <param name="Score">BLEU, 0-100.</param>
/// <param name="BrevityPenalty">exp(1 − r/c) when the hypotheses are shorter than the references, else 1.</param>
/// <param name="HypothesisLength">Tokens in the hypotheses (c).</param>
/// <param name="ReferenceLength">Tokens in the closest-length reference of each hypothesis, summed (r).</param>
/// <param name="Correct">Clipped n-gram matches per order, unigrams first, before any smoothing.</param>
/// <param name="Total">Hypothesis n-grams per order, unigrams first, before any smoothing.</param>
/// <param name="Precisions">Per-order precisions in percent after smoothing, as sacreBLEU reports them.</param>
public sealed record BleuScore(
    double Score,
    double BrevityPenalty,
    int HypothesisLength,
    int ReferenceLength,
    IReadOnlyList<int> Correct,
    IReadOnlyList<int> Total,
    IReadOnlyList<double> Precisions);

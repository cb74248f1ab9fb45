using ParaphraseService.Training.Evaluation;

namespace ParaphraseService.Training.Tests.Evaluation;

/// <summary>
/// One sacreBLEU run: hypotheses, references per hypothesis, options, and sacreBLEU's score, brevity penalty,
/// lengths and raw (unsmoothed) clipped matches and totals per order.
/// </summary>
public sealed record BleuCase(
    string Name,
    string[] Hypotheses,
    string[][] References,
    BleuOptions Options,
    double Score,
    double BrevityPenalty,
    int HypothesisLength,
    int ReferenceLength,
    int[] Correct,
    int[] Total);

/// <summary>Paraphrase triples with sacreBLEU's corpus and per-sentence BLEU, self-BLEU and iBLEU for one α.</summary>
public sealed record ParaphraseCase(
    string Name,
    string[] Sources,
    string[] References,
    string[] Candidates,
    double Alpha,
    double Bleu,
    double SelfBleu,
    double IBleu,
    double[] SentenceBleu,
    double[] SentenceSelfBleu,
    double[] SentenceIBleu);

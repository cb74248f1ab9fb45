using System.Text;
using ParaphraseService.Model.Tokenization;
using ParaphraseService.Training.Datasets;
using ParaphraseService.Training.Prompts;
using ParaphraseService.Training.FineTuning;

namespace ParaphraseService.Training.Evaluation;

/// <summary>What <see cref="LikelihoodEvaluator"/> scores, made from a text or from paraphrase pairs.</summary>
public static class EvalSequences
{
    /// <summary>Text files larger than this are refused: the whole file is tokenized in memory.</summary>
    public const long MaxTextBytes = 256L << 20;

    /// <summary>
    /// Every token of a UTF-8 text file (a BOM is skipped; line breaks are text like any other): the file is tokenized
    /// as one stream and cut into consecutive windows of <paramref name="window"/> tokens, each scored on its own, every
    /// token but each window's first one predicted (the usual non-overlapping perplexity of a corpus).
    /// </summary>
    /// <exception cref="InvalidDataException">The file is not UTF-8, is too large, or holds fewer than two tokens.</exception>
    public static IReadOnlyList<EvalSequence> FromTextFile(string path, Gpt2Tokenizer tokenizer, int window)
    {
        var info = new FileInfo(path);
        if (!info.Exists)
            throw new FileNotFoundException($"{path}: no such file.", path);
        if (info.Length > MaxTextBytes)
            throw new InvalidDataException($"{path}: {info.Length} bytes; text files of at most {MaxTextBytes >> 20} MiB are evaluated (cut it into parts).");
        var bytes = File.ReadAllBytes(path);
        string text;
        try
        {
            var start = bytes.AsSpan().StartsWith("\uFEFF"u8) ? 3 : 0;
            text = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true).GetString(bytes, start, bytes.Length - start);
        }
        catch (DecoderFallbackException e)
        {
            throw new InvalidDataException($"{path}: not UTF-8 text (invalid bytes at byte {e.Index}).", e);
        }
        return FromText(text, tokenizer, window, path);
    }

    /// <summary>As <see cref="FromTextFile"/>, from a string.</summary>
    public static IReadOnlyList<EvalSequence> FromText(string text, Gpt2Tokenizer tokenizer, int window, string name = "text")
    {
        ArgumentNullException.ThrowIfNull(text);
        if (window < 2)
            throw new ArgumentOutOfRangeException(nameof(window), window, "A window must hold at least 2 tokens.");
        var ids = tokenizer.Encode(text);
        if (ids.Count < 2)
            throw new InvalidDataException($"{name}: {ids.Count} token(s); at least 2 are needed to predict one.");
        var sequences = new List<EvalSequence>();
        for (var start = 0; start < ids.Count; start += window)
        {
            var length = Math.Min(window, ids.Count - start);
            if (length >= 2)
                sequences.Add(new EvalSequence(ids.Skip(start).Take(length).ToArray(), 1));
        }
        return sequences;
    }

    /// <summary>
    /// Paraphrase pairs as a fine-tune sees them (<see cref="TrainingBatches.Tokenize"/>): the prompt rendered by
    /// <paramref name="template"/>, then the target; only the target's tokens are scored.
    /// </summary>
    public static IReadOnlyList<EvalSequence> FromPairs(IReadOnlyList<ParaphrasePair> pairs, PromptTemplate template, Gpt2Tokenizer tokenizer, int maxLength)
    {
        ArgumentNullException.ThrowIfNull(pairs);
        if (maxLength < 2)
            throw new ArgumentOutOfRangeException(nameof(maxLength), maxLength, "A sequence must hold at least 2 tokens.");
        return pairs.Select(p =>
        {
            var example = TrainingBatches.Tokenize(p, template, tokenizer, maxLength);
            return new EvalSequence([.. example.Prompt, .. example.Target], example.Prompt.Count);
        }).ToList();
    }
}

using ParaphraseService.Model.Tokenization;
using ParaphraseService.Training.Datasets;
using ParaphraseService.Training.Prompts;
using static TorchSharp.torch;

namespace ParaphraseService.Training.FineTuning;

/// <summary>One example as token ids: the rendered prompt, then the target the model should write after it.</summary>
public sealed record TokenizedExample(IReadOnlyList<int> Prompt, IReadOnlyList<int> Target)
{
    public int Length => Prompt.Count + Target.Count;
}

/// <summary>Turns pairs into model inputs with the loss on the target tokens only.</summary>
public static class TrainingBatches
{
    /// <summary>Label value the loss ignores (prompt and padding positions), as in PyTorch.</summary>
    public const long Ignore = -100;

    /// <summary>
    /// prompt = template(source); target = " " + target + end marker, as the model must continue the prompt. Nothing is
    /// ever cut: an example longer than <paramref name="maxLength"/> is refused (preparation drops such pairs first,
    /// see <see cref="Length"/>), because a prompt cut from the left is a prompt the adapter is never served with.
    /// </summary>
    /// <exception cref="ArgumentException">The example has more than <paramref name="maxLength"/> tokens.</exception>
    public static TokenizedExample Tokenize(ParaphrasePair pair, PromptTemplate template, Gpt2Tokenizer tokenizer, int maxLength)
    {
        var example = Tokenize(pair, template, tokenizer);
        if (example.Length > maxLength)
            throw new ArgumentException(
                $"A training example is {example.Length} tokens (prompt {example.Prompt.Count}, target {example.Target.Count}), over the " +
                $"maximum sequence length of {maxLength}: prepare the data with that limit (too long pairs are dropped and counted).");
        return example;
    }

    /// <summary>Tokens of a pair's training example: its prompt and its target with the end marker.</summary>
    public static int Length(ParaphrasePair pair, PromptTemplate template, Gpt2Tokenizer tokenizer) => Tokenize(pair, template, tokenizer).Length;

    /// <summary>
    /// Why no pair can fit <paramref name="maxLength"/> tokens with <paramref name="template"/>, or null when a short one
    /// can: the prompt without text, the end marker, and one token of text on each side must fit.
    /// </summary>
    public static string? TemplateProblem(PromptTemplate template, Gpt2Tokenizer tokenizer, int maxLength)
    {
        var prompt = tokenizer.Encode(template.Render("")).Count;
        var marker = tokenizer.Encode(template.EndMarker).Count;
        var least = prompt + marker + 2;
        return least <= maxLength ? null
            : $"the prompt template alone is {prompt} tokens and its end marker {marker}: with one token of text on each side " +
              $"an example needs at least {least}, more than the maximum sequence length of {maxLength}";
    }

    private static TokenizedExample Tokenize(ParaphrasePair pair, PromptTemplate template, Gpt2Tokenizer tokenizer) => new(
        tokenizer.Encode(template.Render(pair.Source)),
        tokenizer.Encode(" " + pair.Target + template.EndMarker));

    /// <summary>(ids, attention mask, labels), each (B, T), right-padded with <paramref name="padId"/>.</summary>
    public static (Tensor Ids, Tensor Mask, Tensor Labels) Collate(IReadOnlyList<TokenizedExample> examples, int padId, Device device)
    {
        var length = examples.Max(e => e.Length);
        var ids = new long[examples.Count, length];
        var mask = new long[examples.Count, length];
        var labels = new long[examples.Count, length];
        for (var b = 0; b < examples.Count; b++)
        {
            var example = examples[b];
            for (var t = 0; t < length; t++)
            {
                var inPrompt = t < example.Prompt.Count;
                var inTarget = !inPrompt && t < example.Length;
                ids[b, t] = inPrompt ? example.Prompt[t] : inTarget ? example.Target[t - example.Prompt.Count] : padId;
                mask[b, t] = inPrompt || inTarget ? 1 : 0;
                labels[b, t] = inTarget ? ids[b, t] : Ignore;
            }
        }
        return (tensor(ids, device: device), tensor(mask, device: device), tensor(labels, device: device));
    }
}

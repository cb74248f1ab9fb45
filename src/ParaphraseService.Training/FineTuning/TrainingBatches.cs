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
    /// prompt = template(source); target = " " + target + end marker, as the model must continue the prompt. Examples
    /// longer than <paramref name="maxLength"/> lose the start of their prompt first (the examples of a few-shot
    /// prompt), then the end of their target.
    /// </summary>
    public static TokenizedExample Tokenize(ParaphrasePair pair, PromptTemplate template, Gpt2Tokenizer tokenizer, int maxLength)
    {
        var prompt = tokenizer.Encode(template.Render(pair.Source)).ToList();
        var target = tokenizer.Encode(" " + pair.Target + template.EndMarker).ToList();
        if (target.Count > maxLength / 2) target = target.GetRange(0, maxLength / 2);
        if (prompt.Count + target.Count > maxLength) prompt = prompt.GetRange(prompt.Count - (maxLength - target.Count), maxLength - target.Count);
        return new TokenizedExample(prompt, target);
    }

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

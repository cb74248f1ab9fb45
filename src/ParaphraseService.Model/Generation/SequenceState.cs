using ParaphraseService.Model.Core;
using ParaphraseService.Model.Tokenization;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Generation;

/// <summary>One sequence while it generates: its tokens so far, its sampler, and whether and why it stopped.</summary>
internal sealed class SequenceState(IReadOnlyList<int> prompt, GenerationOptions options, ICausalLMConfig config, int allowedVocabulary,
    Gpt2Tokenizer tokenizer)
{
    private readonly BannedText? _banned = BannedText.For(options.BannedText, tokenizer);
    private readonly List<int> _history = [.. prompt];
    private readonly IReadOnlyList<int> _eos = options.EosTokenId is { } eos ? [eos] : config.EosTokenIds;
    private FinishReason _reason = FinishReason.Length;
    private string? _text;

    public IReadOnlyList<int> Prompt { get; } = prompt;
    public GenerationOptions Options => options;
    public int GeneratedCount => _history.Count - Prompt.Count;
    public TokenSampler Sampler { get; } = new(options, allowedVocabulary);
    public IReadOnlyList<int> History => _history;
    public bool Finished { get; private set; }
    private List<int> Generated => _history.GetRange(Prompt.Count, _history.Count - Prompt.Count);

    /// <summary>Throws <see cref="ArgumentException"/> for an empty prompt, ids outside the vocabulary, or too long a total.</summary>
    /// <param name="room">Positions available: the model's context, or a batch slot's capacity.</param>
    public static void Validate(IReadOnlyList<int> prompt, int maxNewTokens, ICausalLMConfig config, int room)
    {
        if (prompt.Count == 0)
            throw new ArgumentException("A prompt must have at least one token.");
        if (prompt.Any(id => id < 0 || id >= config.VocabSize))
            throw new ArgumentException($"Prompt token ids must be in [0, {config.VocabSize}).");
        var limit = Math.Min(room, config.MaxPositions);
        if (prompt.Count + maxNewTokens > limit)
            throw new ArgumentException(
                $"A prompt of {prompt.Count} tokens plus {maxNewTokens} new tokens exceeds the model's context of {limit} tokens.");
    }

    /// <summary>The next token for these logits, with the banned text's tokens removed first.</summary>
    public int Choose(Tensor logits) => Sampler.Next(logits, History, _banned);

    public int Accept(int token, Gpt2Tokenizer tokenizer)
    {
        if (_eos.Contains(token))
        {
            (Finished, _reason) = (true, FinishReason.EndOfSequence);
            return token;
        }
        _history.Add(token);
        _banned?.Accept(token, tokenizer);
        if (options.StopSequences.Count > 0 || options.MaxCharacters is not null)
        {
            var text = tokenizer.Decode(Generated);
            var cut = options.StopSequences.Select(s => text.IndexOf(s, StringComparison.Ordinal)).Where(i => i >= 0).DefaultIfEmpty(-1).Min();
            if (cut >= 0)
                (Finished, _reason, _text) = (true, FinishReason.StopSequence, text[..cut]);
            else if (text.TrimStart().Length > options.MaxCharacters)
                (Finished, _reason) = (true, FinishReason.CharacterLimit);
        }
        if (!Finished && _history.Count - Prompt.Count >= options.MaxNewTokens)
            Finished = true;
        return token;
    }

    public GenerationResult Result(Gpt2Tokenizer tokenizer)
    {
        var generated = Generated;
        if (_reason == FinishReason.StopSequence)
        {
            // Keep the tokens whose text lies entirely before the stop sequence.
            while (generated.Count > 0 && tokenizer.Decode(generated).Length > _text!.Length)
                generated.RemoveAt(generated.Count - 1);
        }
        return new GenerationResult(Prompt, generated, _text ?? tokenizer.Decode(generated), _reason);
    }
}

namespace ParaphraseService.Model.Generation;

public enum FinishReason
{
    /// <summary>Reached the token limit.</summary>
    Length,
    /// <summary>Produced the end-of-sequence token.</summary>
    EndOfSequence,
    /// <summary>Produced a stop sequence.</summary>
    StopSequence,
    /// <summary>The text outgrew <see cref="GenerationOptions.MaxCharacters"/>.</summary>
    CharacterLimit,
}

/// <param name="GeneratedIds">New tokens, without the end-of-sequence token and without the tokens of a stop sequence.</param>
/// <param name="Text">Decoded new tokens, cut before the stop sequence.</param>
public sealed record GenerationResult(IReadOnlyList<int> PromptIds, IReadOnlyList<int> GeneratedIds, string Text, FinishReason FinishReason);

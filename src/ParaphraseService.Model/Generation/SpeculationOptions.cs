namespace ParaphraseService.Model.Generation;

/// <summary>
/// Prompt-lookup speculative decoding in a continuous batch (<see cref="PromptLookup"/>): each row may propose tokens
/// copied from its own prompt and have them verified in the same forward pass as its next token.
/// </summary>
public sealed record SpeculationOptions
{
    /// <summary>Off: one token per row per step.</summary>
    public static SpeculationOptions Off { get; } = new() { Enabled = false };

    public bool Enabled { get; init; } = true;

    /// <summary>Most draft tokens one row verifies in one step (its own count adapts below this).</summary>
    public int MaxDraftTokens { get; init; } = 8;

    /// <summary>
    /// Fewest draft tokens a row proposes when its history matches (fewer only where fewer are left to generate or fit;
    /// at most <see cref="MaxDraftTokens"/>). A step of up to four positions costs little more than one on the CPU (the
    /// demo model's forward: 1.03, 1.08 and 1.11 times one position for two to four, 1.21 for five), so a shorter draft
    /// saves no time, and it is where a row's draft starts.
    /// </summary>
    public int MinDraftTokens { get; init; } = 3;

    /// <summary>The fewest draft tokens in effect: <see cref="MinDraftTokens"/>, capped by <see cref="MaxDraftTokens"/>.</summary>
    public int FewestDraftTokens => Math.Min(MinDraftTokens, MaxDraftTokens);

    /// <summary>Longest and shortest run of last tokens looked up in the prompt (the longest match found is used).</summary>
    public int MaxNgram { get; init; } = 3;
    public int MinNgram { get; init; } = 1;

    /// <summary>
    /// Most token positions one decode step computes, drafts included: past this a step stops being bound by reading
    /// the weights and becomes bound by compute, and extra positions cost as much as they could save. Every row of a step
    /// computes as many positions as the longest draft needs, so each row's draft is at most MaxStepTokens / rows − 1
    /// tokens, and a large batch decodes without speculation.
    /// </summary>
    public int MaxStepTokens { get; init; } = 16;

    /// <summary>
    /// Drafts cut to the length that pays for itself, from what the decode steps are measured to cost by their positions
    /// and how often draft tokens at each depth were accepted (<see cref="DraftPlanner"/>, <see cref="DraftAcceptance"/>),
    /// so that speculation does not slow down a batch whose steps are bound by arithmetic, or rows whose drafts keep
    /// failing (sampling at a high temperature). Off: every row drafts as much as <see cref="MaxStepTokens"/> allows.
    /// </summary>
    public bool CostAware { get; init; } = true;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first value out of range.</summary>
    public void Validate()
    {
        if (MaxDraftTokens is < 1 or > 64) throw new ArgumentException($"MaxDraftTokens must be 1-64 (got {MaxDraftTokens}).");
        if (MinDraftTokens is < 1 or > 64) throw new ArgumentException($"MinDraftTokens must be 1-64 (got {MinDraftTokens}).");
        if (MinNgram < 1 || MaxNgram < MinNgram || MaxNgram > 16)
            throw new ArgumentException($"n-grams must satisfy 1 <= MinNgram <= MaxNgram <= 16 (got {MinNgram}, {MaxNgram}).");
        if (MaxStepTokens is < 1 or > 4096) throw new ArgumentException($"MaxStepTokens must be 1-4096 (got {MaxStepTokens}).");
    }
}

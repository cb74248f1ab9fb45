namespace ParaphraseService.Training.Evaluation;

/// <summary>
/// One sequence to score: its token ids, and the first position whose token is predicted and counted. Tokens before
/// <see cref="FirstScored"/> are context only (a prompt; a window's first token, which nothing predicts).
/// </summary>
public sealed record EvalSequence
{
    public EvalSequence(IReadOnlyList<int> ids, int firstScored)
    {
        ArgumentNullException.ThrowIfNull(ids);
        if (firstScored < 1 || firstScored > ids.Count)
            throw new ArgumentOutOfRangeException(nameof(firstScored), firstScored, $"The first scored token must be in [1, {ids.Count}]: a token is predicted from the ones before it.");
        Ids = ids;
        FirstScored = firstScored;
    }

    public IReadOnlyList<int> Ids { get; }

    public int FirstScored { get; }

    /// <summary>Tokens predicted and counted.</summary>
    public int ScoredCount => Ids.Count - FirstScored;
}

namespace ParaphraseService.Model.Generation;

/// <summary>
/// What drafts have yielded, learned from the verified ones and shared by every row of a model (like <see cref="IStepCost"/>):
/// how often a draft token at each depth is accepted once the ones before it were, in two states of the row (its last
/// draft accepted whole: inside a copied span, where the next draft is likely right too; or not), and what a row has
/// gained per step. By depth, because a paraphrase copies spans: once a draft's first tokens are right, the next is more
/// likely right than the first was, so one acceptance rate per row undervalues a long draft (on the demo model, drafts
/// planned that way were cut where they paid: README, speculation). Thread-safe.
/// </summary>
public sealed class DraftAcceptance
{
    /// <summary>The deepest draft token counted (<see cref="SpeculationOptions.MaxDraftTokens"/> is at most this).</summary>
    public const int MaxDepth = 64;

    // Each draft verified in a state multiplies that state's counts by this: about the last hundred drafts count.
    private const double Decay = 0.99;

    // A state whose drafts are cut as not worth their cost would never be measured again: each cut moves its counts back
    // toward even odds, so it is tried again after a few steps.
    private const double SkipDecay = 0.9;

    // Each decode step multiplies the yield's sums by this: about the last thirty steps count.
    private const double StepDecay = 0.97;

    private readonly Lock _gate = new();
    private readonly double[,] _reached = new double[2, MaxDepth + 1], _accepted = new double[2, MaxDepth + 1];
    private double _rowSteps, _tokens, _positions;

    /// <summary>A draft of <paramref name="drafted"/> tokens, proposed in state <paramref name="copying"/>, had its first <paramref name="accepted"/> accepted.</summary>
    public void Verified(bool copying, int drafted, int accepted)
    {
        if (drafted <= 0) return;
        var state = copying ? 1 : 0;
        lock (_gate)
        {
            Fade(state, Decay);
            // Depths up to the first rejected token were reached; the ones before it were accepted.
            for (var depth = 1; depth <= Math.Min(Math.Min(drafted, accepted + 1), MaxDepth); depth++)
            {
                _reached[state, depth]++;
                if (depth <= accepted) _accepted[state, depth]++;
            }
        }
    }

    /// <summary>A row's draft, proposed in state <paramref name="copying"/>, was not verified because it did not pay.</summary>
    public void Skipped(bool copying)
    {
        lock (_gate)
            Fade(copying ? 1 : 0, SkipDecay);
    }

    /// <summary>A decode step of <paramref name="rows"/> rows computed <paramref name="positions"/> positions and produced <paramref name="tokens"/> tokens.</summary>
    public void Stepped(int rows, int tokens, int positions)
    {
        if (rows <= 0) return;
        lock (_gate)
            (_rowSteps, _tokens, _positions) = (StepDecay * _rowSteps + rows, StepDecay * _tokens + tokens, StepDecay * _positions + positions);
    }

    /// <summary>
    /// The chance that the draft token at <paramref name="depth"/> (1: the first) is accepted once the ones before it were:
    /// its recent acceptances over its recent verifications, with one of each added (even odds before any).
    /// </summary>
    public double Acceptance(bool copying, int depth)
    {
        lock (_gate)
            return Chance(copying ? 1 : 0, Math.Clamp(depth, 1, MaxDepth));
    }

    /// <summary>
    /// A row's expected tokens from a step that verifies a draft of k tokens, for k from 0 to <paramref name="longest"/>
    /// (element k): its next token, then each draft token while all before it were accepted.
    /// </summary>
    public double[] ExpectedTokens(bool copying, int longest)
    {
        var state = copying ? 1 : 0;
        var expected = new double[Math.Clamp(longest, 0, MaxDepth) + 1];
        var reach = expected[0] = 1.0;
        lock (_gate)
            for (var depth = 1; depth < expected.Length; depth++)
                expected[depth] = expected[depth - 1] + (reach *= Chance(state, depth));
        return expected;
    }

    // Recent acceptances over recent verifications at a depth, with one of each added. Under the lock.
    private double Chance(int state, int depth) => (_accepted[state, depth] + 1) / (_reached[state, depth] + 2);

    // Multiplies a state's counts by factor. Under the lock.
    private void Fade(int state, double factor)
    {
        for (var depth = 1; depth <= MaxDepth; depth++)
            (_reached[state, depth], _accepted[state, depth]) = (factor * _reached[state, depth], factor * _accepted[state, depth]);
    }

    /// <summary>
    /// Tokens per unit of step cost that a step of <paramref name="rows"/> rows has been yielding: rows × recent tokens per
    /// row-step over the cost of rows × recent positions per row (one and one before any step: decoding without drafts).
    /// </summary>
    public double Rate(int rows, IStepCost cost)
    {
        double tokens, positions;
        lock (_gate)
            (tokens, positions) = _rowSteps > 0 ? (_tokens / _rowSteps, _positions / _rowSteps) : (1, 1);
        return rows * tokens / cost.Cost(Math.Max(rows, (int)Math.Round(rows * positions)));
    }
}

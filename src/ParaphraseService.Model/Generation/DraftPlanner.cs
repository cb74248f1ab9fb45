namespace ParaphraseService.Model.Generation;

/// <summary>
/// How long the drafts of one decode step should be. Every row of a step computes as many positions as the longest draft
/// needs, so the step's cost is set by rows × width; a row's expected tokens at a width come from how often draft tokens
/// at each depth were accepted (<see cref="DraftAcceptance"/>). The width chosen gives the most expected tokens less what
/// the step's time would have yielded at the rate decoding has been going (tokens per unit of cost): the rule that
/// maximizes tokens over a run of steps, where the most tokens per unit of this step's cost alone cuts drafts whose
/// tokens would come faster than the run's average (on the demo model's paraphrases: 1.84 against 1.91 times plain
/// decoding's speed, simulated on its greedy outputs with the real drafter; README, speculation). One position per row (no
/// drafts) when no draft pays for itself.
/// </summary>
public static class DraftPlanner
{
    /// <param name="proposed">Each row's draft length (0: none).</param>
    /// <param name="copying">Each row's state: whether its last draft was accepted whole.</param>
    /// <param name="acceptance">What drafts have yielded.</param>
    /// <param name="cost">The cost of a step by its positions.</param>
    /// <returns>Positions per row: 1 plus the most draft tokens any row keeps.</returns>
    public static int Width(IReadOnlyList<int> proposed, IReadOnlyList<bool> copying, DraftAcceptance acceptance, IStepCost cost)
    {
        var rows = proposed.Count;
        if (rows == 0) return 1;
        var rate = acceptance.Rate(rows, cost);
        var longest = proposed.Max();
        // expected tokens by draft length, for rows in each state
        var (fresh, copied) = (acceptance.ExpectedTokens(false, longest), acceptance.ExpectedTokens(true, longest));
        var (best, bestValue) = (1, rows - rate * cost.Cost(rows));
        for (var width = 2; width <= longest + 1; width++)
        {
            var expected = 0.0;
            for (var r = 0; r < rows; r++)
                expected += (copying[r] ? copied : fresh)[Math.Min(Math.Min(proposed[r], width - 1), fresh.Length - 1)];
            var value = expected - rate * cost.Cost(rows * width);
            if (value > bestValue) (best, bestValue) = (width, value);
        }
        return best;
    }
}

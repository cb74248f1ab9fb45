namespace ParaphraseService.Model.Generation;

/// <summary>
/// How long the drafts of one decode step should be. Every row of a step computes as many positions as the longest
/// draft needs, so the step's cost is set by rows × width; a row with a draft of k tokens, each accepted with
/// probability α once the ones before it were, yields 1 + α + … + α^k tokens on average (its next token, then the
/// accepted draft). The width chosen gives the most expected tokens per unit of the step's expected cost; one position
/// per row (no drafts) when no draft pays for itself.
/// </summary>
public static class DraftPlanner
{
    /// <param name="proposed">Each row's draft length (0: none).</param>
    /// <param name="acceptance">Each row's chance that a draft token is accepted after the ones before it.</param>
    /// <param name="cost">The cost of a step by its positions.</param>
    /// <returns>Positions per row: 1 plus the most draft tokens any row keeps.</returns>
    public static int Width(IReadOnlyList<int> proposed, IReadOnlyList<double> acceptance, IStepCost cost)
    {
        var rows = proposed.Count;
        var longest = proposed.Count == 0 ? 0 : proposed.Max();
        var (best, bestRate) = (1, rows / cost.Cost(rows));
        for (var width = 2; width <= longest + 1; width++)
        {
            var expected = 0.0;
            for (var r = 0; r < rows; r++)
                expected += ExpectedTokens(Math.Min(proposed[r], width - 1), acceptance[r]);
            var rate = expected / cost.Cost(rows * width);
            if (rate > bestRate) (best, bestRate) = (width, rate);
        }
        return best;
    }

    /// <summary>1 + α + α² + … + α^k: the next token, then each draft token while all before it were accepted.</summary>
    public static double ExpectedTokens(int draft, double acceptance)
    {
        var (sum, term) = (1.0, 1.0);
        for (var i = 0; i < draft; i++)
            sum += term *= acceptance;
        return sum;
    }
}

using ParaphraseService.Model.Generation;

namespace ParaphraseService.Model.Tests.Generation;

public class DraftPlannerTests
{
    /// <summary>A step costs 1 + slope · (positions − 1).</summary>
    private sealed class LinearCost(double slope) : IStepCost
    {
        public void Observe(int positions, double seconds) { }
        public double Cost(int positions) => 1 + slope * (positions - 1);
    }

    [Fact]
    public void ExpectedTokensAreTheNextTokenAndEachDraftTokenWhileAllBeforeItWereAccepted()
    {
        Assert.Equal(1.0, DraftPlanner.ExpectedTokens(0, 0.9), 12);
        Assert.Equal(1 + 0.5 + 0.25 + 0.125, DraftPlanner.ExpectedTokens(3, 0.5), 12);
        Assert.Equal(4.0, DraftPlanner.ExpectedTokens(3, 1.0), 12);
    }

    [Fact]
    public void TheWidthGivesTheMostTokensPerCost()
    {
        // One row, acceptance 1/2, 0.1 a position: per cost 1 (no draft), 1.5/1.1, 1.75/1.2 = 1.458, 1.875/1.3 = 1.442, ...
        Assert.Equal(3, DraftPlanner.Width([8], [0.5], new LinearCost(0.1)));
        // free positions: the whole draft
        Assert.Equal(9, DraftPlanner.Width([8], [0.5], new LinearCost(0)));
    }

    [Fact]
    public void NoDraftPaysWhenAPositionCostsAsMuchAsAStep()
    {
        // Every extra position costs a whole step: a draft can only break even if every token is accepted.
        Assert.Equal(1, DraftPlanner.Width([8, 8, 8], [0.9, 0.6, 0.99], new LinearCost(1)));
    }

    [Fact]
    public void DraftsThatKeepFailingAreNotVerified()
    {
        Assert.Equal(1, DraftPlanner.Width([4, 4], [0.05, 0.1], new LinearCost(0.12)));
        // the same rows with drafts that are mostly right
        Assert.True(DraftPlanner.Width([4, 4], [0.9, 0.8], new LinearCost(0.12)) > 1);
    }

    [Fact]
    public void MoreRowsAffordShorterDrafts()
    {
        // The same rows' drafts on the same cost: the more rows, the more a step of a given width costs.
        var one = DraftPlanner.Width([8], [0.6], new LinearCost(0.12));
        var four = DraftPlanner.Width([8, 8, 8, 8], [0.6, 0.6, 0.6, 0.6], new LinearCost(0.12));
        Assert.True(four < one, $"1 row: width {one}; 4 rows: width {four}");
    }

    [Fact]
    public void RowsWithoutADraftStillCountTheirOneToken()
    {
        // A row with nothing to verify yields its one token at any width; the other row's draft decides.
        Assert.Equal(DraftPlanner.Width([6], [0.7], new LinearCost(0.05)) > 1, DraftPlanner.Width([6, 0], [0.7, 0], new LinearCost(0.05)) > 1);
        Assert.Equal(1, DraftPlanner.Width([0, 0], [0.5, 0.5], new LinearCost(0)));
        Assert.Equal(1, DraftPlanner.Width([], [], new LinearCost(0)));
    }
}

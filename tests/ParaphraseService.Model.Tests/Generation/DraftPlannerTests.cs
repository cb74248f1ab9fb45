using ParaphraseService.Model.Generation;

namespace ParaphraseService.Model.Tests.Generation;

public class DraftPlannerTests
{
    /// <summary>A record where each draft token was accepted with <paramref name="rate"/> (in either state), by a seeded draw.</summary>
    private static DraftAcceptance Accepting(double rate)
    {
        var acceptance = new DraftAcceptance();
        var random = new Random(7);
        for (var i = 0; i < 500; i++)
            foreach (var copying in new[] { false, true })
            {
                var accepted = 0;
                while (accepted < 16 && random.NextDouble() < rate) accepted++;
                acceptance.Verified(copying, 16, accepted);
            }
        return acceptance;
    }

    [Fact]
    public void WithoutAHistoryOfStepsTheWidthPaysForItselfAgainstDecodingWithoutDrafts()
    {
        // Even odds at every depth (nothing verified yet) and no step yet: the rate is one token per one-position step.
        // Expected tokens less the step's cost: 1 − 1 = 0 alone, 1.5 − 1.1, 1.75 − 1.2, 1.875 − 1.3 = 0.575, 1.9375 − 1.4.
        var acceptance = new DraftAcceptance();
        Assert.Equal(4, DraftPlanner.Width([8], [false], acceptance, new LinearCost(0.1)));
        // free positions: the whole draft
        Assert.Equal(9, DraftPlanner.Width([8], [false], acceptance, new LinearCost(0)));
    }

    [Fact]
    public void NoDraftPaysWhenAPositionCostsAsMuchAsAStep()
    {
        // Every extra position costs a whole step: a draft can only break even if every token is accepted.
        Assert.Equal(1, DraftPlanner.Width([8, 8, 8], [true, false, true], Accepting(0.9), new LinearCost(1)));
    }

    [Fact]
    public void DraftsThatKeepFailingAreNotVerified()
    {
        Assert.Equal(1, DraftPlanner.Width([4, 4], [false, false], Accepting(0.05), new LinearCost(0.12)));
        // the same rows with drafts that are mostly right
        Assert.True(DraftPlanner.Width([4, 4], [false, false], Accepting(0.85), new LinearCost(0.12)) > 1);
    }

    [Fact]
    public void DeepDraftTokensThatAreRightMakeALongDraftPay()
    {
        // First tokens of a draft often wrong, but once right, right to the end (a copied span): one rate per row would
        // value a long draft at a fraction of what it yields.
        var spans = new DraftAcceptance();
        for (var i = 0; i < 100; i++)
            spans.Verified(false, 8, i % 2 == 0 ? 0 : 8);
        Assert.InRange(spans.Acceptance(false, 1), 0.45, 0.55);
        Assert.True(spans.Acceptance(false, 5) > 0.95);
        Assert.Equal(9, DraftPlanner.Width([8], [false], spans, new LinearCost(0.12)));
    }

    [Fact]
    public void MoreRowsAffordShorterDrafts()
    {
        // The same rows' drafts on the same cost: the more rows, the more a step of a given width costs.
        var one = DraftPlanner.Width([8], [false], Accepting(0.6), new LinearCost(0.12));
        var four = DraftPlanner.Width([8, 8, 8, 8], [false, false, false, false], Accepting(0.6), new LinearCost(0.12));
        Assert.True(four < one, $"1 row: width {one}; 4 rows: width {four}");
    }

    [Fact]
    public void ADrivingRateRaisesWhatADraftMustYield()
    {
        // Steps have been yielding three tokens a row at two positions each (2.4 a unit of cost): a draft token of even
        // odds at 0.25 a position no longer pays (0.5 < 2.4 · 0.25), where against one token a step it does.
        var fast = new DraftAcceptance();
        for (var i = 0; i < 100; i++) fast.Stepped(1, 3, 2);
        Assert.True(DraftPlanner.Width([4], [false], new DraftAcceptance(), new LinearCost(0.25)) > 1);
        Assert.Equal(1, DraftPlanner.Width([4], [false], fast, new LinearCost(0.25)));
    }

    [Fact]
    public void RowsWithoutADraftStillCountTheirOneToken()
    {
        // A row with nothing to verify yields its one token at any width; the other row's draft decides.
        var acceptance = Accepting(0.7);
        Assert.Equal(DraftPlanner.Width([6], [false], acceptance, new LinearCost(0.05)) > 1,
            DraftPlanner.Width([6, 0], [false, false], acceptance, new LinearCost(0.05)) > 1);
        Assert.Equal(1, DraftPlanner.Width([0, 0], [false, false], acceptance, new LinearCost(0)));
        Assert.Equal(1, DraftPlanner.Width([], [], acceptance, new LinearCost(0)));
    }
}

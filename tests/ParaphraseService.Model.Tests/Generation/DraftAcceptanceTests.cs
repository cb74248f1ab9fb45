using ParaphraseService.Model.Generation;

namespace ParaphraseService.Model.Tests.Generation;

public class DraftAcceptanceTests
{
    [Fact]
    public void EachDepthCountsTheDraftsThatReachedIt()
    {
        var acceptance = new DraftAcceptance();
        Assert.Equal(0.5, acceptance.Acceptance(false, 1), 12); // nothing known yet
        // Drafts of four: two rejected at their first token, one at its third, one accepted whole.
        acceptance.Verified(false, 4, 0);
        acceptance.Verified(false, 4, 0);
        acceptance.Verified(false, 4, 2);
        acceptance.Verified(false, 4, 4);
        // depth 1: reached 4 times, accepted twice; depth 3: reached twice, accepted once; depth 4: reached once, accepted
        Assert.InRange(acceptance.Acceptance(false, 1), 0.49, 0.51);
        Assert.InRange(acceptance.Acceptance(false, 2), 0.74, 0.76);
        Assert.InRange(acceptance.Acceptance(false, 3), 0.49, 0.51);
        Assert.InRange(acceptance.Acceptance(false, 4), 0.66, 0.67);
        // the other state learned nothing
        Assert.Equal(0.5, acceptance.Acceptance(true, 1), 12);
    }

    [Fact]
    public void ExpectedTokensMultiplyTheChancesOfReachingEachDepth()
    {
        var acceptance = new DraftAcceptance();
        Assert.Equal(1.0, acceptance.ExpectedTokens(false, 0)[0], 12);
        // even odds at every depth: 1 + 1/2 + 1/4 + 1/8
        Assert.Equal(1.875, acceptance.ExpectedTokens(false, 3)[3], 12);
        for (var i = 0; i < 50; i++) acceptance.Verified(true, 3, 3);
        Assert.True(acceptance.ExpectedTokens(true, 3)[3] > 3.8);
    }

    [Fact]
    public void ADraftThatIsCutDriftsItsStateBackToEvenOdds()
    {
        var acceptance = new DraftAcceptance();
        for (var i = 0; i < 30; i++) acceptance.Verified(false, 3, 0);
        var failing = acceptance.Acceptance(false, 1);
        Assert.True(failing < 0.1, $"{failing}");
        // cut because it did not pay: some thirty cuts later (a paraphrase's steps) it is worth trying again
        for (var i = 0; i < 30; i++) acceptance.Skipped(false);
        Assert.InRange(acceptance.Acceptance(false, 1), 0.3, 0.5);
    }

    [Fact]
    public void RecentDraftsCountMore()
    {
        var acceptance = new DraftAcceptance();
        for (var i = 0; i < 300; i++) acceptance.Verified(false, 1, 1);
        for (var i = 0; i < 100; i++) acceptance.Verified(false, 1, 0);
        // 300 accepted then 100 rejected: by counts alike 0.75, with the older ones fading well under half
        Assert.True(acceptance.Acceptance(false, 1) < 0.5, $"{acceptance.Acceptance(false, 1)}");
    }

    [Fact]
    public void TheRateIsWhatStepsOfThatManyRowsHaveBeenYieldingPerCost()
    {
        var acceptance = new DraftAcceptance();
        var cost = new LinearCost(0.1);
        // before any step: one token a row, one position a row
        Assert.Equal(1 / cost.Cost(1), acceptance.Rate(1, cost), 12);
        Assert.Equal(4 / cost.Cost(4), acceptance.Rate(4, cost), 12);
        for (var i = 0; i < 200; i++) acceptance.Stepped(2, 6, 8); // three tokens a row at four positions
        Assert.Equal(3 / cost.Cost(4), acceptance.Rate(1, cost), 6);
        Assert.Equal(12 / cost.Cost(16), acceptance.Rate(4, cost), 6);
    }
}

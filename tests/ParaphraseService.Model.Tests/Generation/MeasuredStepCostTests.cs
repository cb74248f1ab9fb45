using ParaphraseService.Model.Generation;

namespace ParaphraseService.Model.Tests.Generation;

public class MeasuredStepCostTests
{
    [Fact]
    public void BeforeAnyStepEachExtraPositionCostsThePriorSlope()
    {
        var cost = new MeasuredStepCost();
        Assert.Equal(1.0, cost.Cost(1), 12);
        Assert.Equal(1 + 7 * MeasuredStepCost.PriorSlope, cost.Cost(8), 12);
    }

    [Fact]
    public void StepsOfOneSizeOnlyScaleThePriorToTheirTime()
    {
        var cost = new MeasuredStepCost();
        for (var i = 0; i < 20; i++) cost.Observe(4, 0.02);
        // no spread in positions, so no slope is fitted: the prior's shape through the measured time
        Assert.Equal(0.02, cost.Cost(4), 9);
        Assert.Equal((1 + 7 * MeasuredStepCost.PriorSlope) / (1 + 3 * MeasuredStepCost.PriorSlope), cost.Cost(8) / cost.Cost(4), 9);
    }

    [Fact]
    public void StepsOfSeveralSizesGiveTheirLine()
    {
        var cost = new MeasuredStepCost();
        foreach (var positions in Enumerable.Repeat(new[] { 1, 4, 9, 16 }, 10).SelectMany(p => p))
            cost.Observe(positions, 0.010 + 0.003 * positions);
        Assert.Equal(0.013, cost.Cost(1), 9);
        Assert.Equal(0.058, cost.Cost(16), 9);
        Assert.Equal(0.034, cost.Cost(8), 9); // between sizes seen
    }

    [Fact]
    public void RecentStepsOutweighOldOnes()
    {
        // The machine (or the batch's kind of work) changes: extra positions that cost a lot now cost nothing.
        var cost = new MeasuredStepCost();
        for (var i = 0; i < 100; i++)
            foreach (var p in new[] { 1, 8 }) cost.Observe(p, 0.01 * p);
        Assert.Equal(8.0, cost.Cost(8) / cost.Cost(1), 2);
        for (var i = 0; i < 150; i++)
            foreach (var p in new[] { 1, 8 }) cost.Observe(p, 0.01);
        Assert.InRange(cost.Cost(8) / cost.Cost(1), 1.0, 1.05);
    }

    [Fact]
    public void ImpossibleTimesAreIgnoredAndNoiseNeverMakesAStepFree()
    {
        var cost = new MeasuredStepCost();
        cost.Observe(4, double.NaN);
        cost.Observe(4, -1);
        cost.Observe(0, 0.5);
        cost.Observe(3, double.PositiveInfinity);
        Assert.Equal(1.0, cost.Cost(1), 12); // still the prior
        // Times that fall as positions grow (noise) fit a slope of 0, not a negative one.
        for (var i = 0; i < 10; i++)
        {
            cost.Observe(1, 0.02);
            cost.Observe(9, 0.01);
        }
        Assert.True(cost.Cost(1) > 0);
        Assert.Equal(cost.Cost(1), cost.Cost(64), 12);
    }
}

using ParaphraseService.Model.Generation;

namespace ParaphraseService.Model.Tests.Generation;

/// <summary>A step cost for planning tests: 1 + slope · (positions − 1).</summary>
internal sealed class LinearCost(double slope) : IStepCost
{
    public void Observe(int positions, double seconds) { }

    public double Cost(int positions) => 1 + slope * (positions - 1);
}

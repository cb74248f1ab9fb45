namespace ParaphraseService.Model.Generation;

/// <summary>What a decode step costs by the positions it computes (rows × (1 + draft tokens)).</summary>
public interface IStepCost
{
    /// <summary>A step that computed <paramref name="positions"/> positions took <paramref name="seconds"/>.</summary>
    void Observe(int positions, double seconds);

    /// <summary>The expected time of a step of <paramref name="positions"/> positions, in any unit (only ratios are used).</summary>
    double Cost(int positions);
}

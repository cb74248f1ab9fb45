namespace ParaphraseService.Model.Generation;

/// <summary>
/// The cost of a decode step learned from the steps themselves: their seconds fitted to a + b·positions by exponentially
/// weighted least squares, so it follows the model, the device and the machine's load. Until the steps seen differ
/// enough in positions to fit a slope, each extra position is taken to cost <see cref="PriorSlope"/> of a one-position
/// step (measured on this CPU, README, speculation: 0.12 a position on the fp32 demo model; a model whose several-row
/// steps are bound by arithmetic costs more a position, one bound by reading its weights less). Thread-safe.
/// </summary>
public sealed class MeasuredStepCost : IStepCost
{
    /// <summary>Extra cost of each position past the first, relative to one, before any slope is measured.</summary>
    public const double PriorSlope = 0.1;

    // Each later step multiplies an observation's weight by this: about the last 30 steps count.
    private const double Decay = 0.97;

    // Below this weighted variance of positions (e.g. only one-row steps so far), the slope is not fitted.
    private const double MinimumSpread = 0.5;

    private readonly Lock _gate = new();
    private double _weight, _positions, _seconds, _positionsSquared, _product;

    public void Observe(int positions, double seconds)
    {
        if (positions < 1 || !double.IsFinite(seconds) || seconds <= 0) return;
        lock (_gate)
        {
            (_weight, _positions, _seconds) = (Decay * _weight + 1, Decay * _positions + positions, Decay * _seconds + seconds);
            _positionsSquared = Decay * _positionsSquared + (double)positions * positions;
            _product = Decay * _product + positions * seconds;
        }
    }

    public double Cost(int positions)
    {
        lock (_gate)
        {
            // Before any step: the prior's line through one second at one position (only ratios are used).
            var (meanPositions, meanSeconds) = _weight > 0 ? (_positions / _weight, _seconds / _weight) : (1.0, 1.0);
            var spread = _weight > 0 ? _positionsSquared / _weight - meanPositions * meanPositions : 0;
            double perStep, perPosition;
            if (spread < MinimumSpread)
            {
                // seconds = unit · (1 + PriorSlope · (p − 1)) through the mean
                var unit = meanSeconds / (1 + PriorSlope * (meanPositions - 1));
                (perStep, perPosition) = (unit * (1 - PriorSlope), unit * PriorSlope);
            }
            else
            {
                perPosition = Math.Max(0, (_product / _weight - meanPositions * meanSeconds) / spread);
                perStep = meanSeconds - perPosition * meanPositions;
            }
            // A fit whose line passes below zero at small steps (noise) still gives every step some cost.
            return Math.Max(perStep + perPosition * positions, 1e-3 * meanSeconds);
        }
    }
}

using System.Runtime.Intrinsics;
using ParaphraseService.Model.Kernels;

namespace ParaphraseService.Model.Tests.Kernels;

public class VectorMathTests
{
    [Fact]
    public void ExpIsWithinTwoUlpOfTheDoubleResultOverTheNormalRange()
    {
        // every 1/64 from the lowest normal result to the highest argument, plus the ends and zero
        var arguments = Enumerable.Range(0, (int)((88.37 + 87.33) * 64)).Select(i => -87.33f + i / 64f).Append(0f).Append(-87.33654f).Append(88.37626f).ToArray();
        var worst = 0.0;
        for (var i = 0; i < arguments.Length; i += 8)
        {
            var block = new float[8];
            for (var lane = 0; lane < 8; lane++) block[lane] = arguments[Math.Min(i + lane, arguments.Length - 1)];
            var result = VectorMath.Exp(Vector256.Create(block));
            for (var lane = 0; lane < 8; lane++)
            {
                var exact = Math.Exp(block[lane]);
                // error in units of the float spacing at the exact value
                var ulp = Math.ScaleB(1.0, Math.ILogB(exact) - 23);
                worst = Math.Max(worst, Math.Abs(result[lane] - exact) / ulp);
            }
        }
        Assert.True(worst <= 2, $"worst error {worst} ulp");
        Assert.Equal(1f, VectorMath.Exp(Vector256<float>.Zero)[0]);
    }

    [Fact]
    public void ExpIsExactlyZeroBelowTheNormalRangeAndForMinusInfinity()
    {
        var result = VectorMath.Exp(Vector256.Create(float.NegativeInfinity, -1e30f, -104f, -88f, -87.34f, float.MinValue, -1000f, -87.3f));
        for (var lane = 0; lane < 7; lane++)
            Assert.Equal(0f, result[lane]);
        Assert.True(result[7] > 0 && float.IsNormal(result[7]));
    }
}

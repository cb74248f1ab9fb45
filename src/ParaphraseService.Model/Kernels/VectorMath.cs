using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace ParaphraseService.Model.Kernels;

/// <summary>Elementwise functions eight floats at a time, where .NET's own are not vectorized on this hardware.</summary>
internal static class VectorMath
{
    // Cephes' expf: the lowest argument whose result is a normal float (e^x = 2^-126), and the highest below overflow.
    private const float LowestArgument = -87.33654f;
    private const float HighestArgument = 88.37626f;

    /// <summary>
    /// e^x to within 2 ulp (Cephes' expf: x = n·ln 2 + r with |r| ≤ ln 2 / 2, a degree-5 polynomial for e^r, 2^n written
    /// into the exponent); exactly 0 below e^-87.3 (where floats turn subnormal; −∞ included) and clamped at e^88.4.
    /// The lanes must not hold NaN. A scalar <c>Math.Exp</c> per logit took half a millisecond of each sampled token.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Exp(Vector256<float> x)
    {
        var underflow = Vector256.LessThan(x, Vector256.Create(LowestArgument));
        x = Vector256.Min(Vector256.Max(x, Vector256.Create(LowestArgument)), Vector256.Create(HighestArgument));
        var n = Vector256.Floor(x * Vector256.Create(1.44269504088896341f) + Vector256.Create(0.5f));
        // ln 2 in two parts, so that n · ln 2 is subtracted without losing r's low bits
        var r = x - n * Vector256.Create(0.693359375f) - n * Vector256.Create(-2.12194440e-4f);
        var p = Vector256.Create(1.9875691500e-4f);
        p = p * r + Vector256.Create(1.3981999507e-3f);
        p = p * r + Vector256.Create(8.3334519073e-3f);
        p = p * r + Vector256.Create(4.1665795894e-2f);
        p = p * r + Vector256.Create(1.6666665459e-1f);
        p = p * r + Vector256.Create(5.0000001201e-1f);
        var y = p * r * r + r + Vector256<float>.One;
        var twoToN = Vector256.ShiftLeft(Vector256.ConvertToInt32(n) + Vector256.Create(127), 23).AsSingle();
        return Vector256.ConditionalSelect(underflow, Vector256<float>.Zero, y * twoToN);
    }

    /// <summary>
    /// values[i] = e^(values[i] − shift) in place, every value through <see cref="Exp(Vector256{float})"/> (the last few
    /// too, padded), so equal values give equal results wherever they sit. The values and the shift must not be NaN.
    /// </summary>
    public static void Exp(Span<float> values, float shift) => Map(values, values, new ShiftedExp(shift));

    // gelu_new's constants with the tanh folded into a logistic: 0.5·(1 + tanh(z)) = 1 / (1 + e^(−2z)), so
    // −2z = −x · (2·√(2/π) + 2·√(2/π)·0.044715·x²).
    private const float GeluLinear = 1.5957691216057308f;
    private const float GeluCubic = 0.07135481627f;

    /// <summary>
    /// gelu_new, PyTorch's tanh-approximate GELU: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), computed as
    /// x / (1 + e^(−2·√(2/π)·(x + 0.044715·x³))), which is the same function without the cancellation of 1 + tanh near −1
    /// (within a few ulp of a double-precision evaluation). NaN and −∞ give NaN, +∞ gives +∞, as PyTorch's form does.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> GeluNew(Vector256<float> x)
    {
        var exponent = -x * (Vector256.Create(GeluLinear) + Vector256.Create(GeluCubic) * x * x);
        // Exp's lanes must not be NaN: a NaN x gives NaN through the division whatever Exp returns for it
        var gelu = x / (Vector256<float>.One + Exp(Vector256.ConditionalSelect(Vector256.Equals(exponent, exponent), exponent, Vector256<float>.Zero)));
        // Past Exp's range the result is below |x|·2^-127: 0 with x's sign, as PyTorch's form gives (NaN for −∞ too)
        return Vector256.ConditionalSelect(Vector256.GreaterThan(exponent, Vector256.Create(HighestArgument)), x * Vector256<float>.Zero, gelu);
    }

    /// <summary>output[i] = <see cref="GeluNew(Vector256{float})"/>(input[i]); the spans may be the same memory.</summary>
    public static void GeluNew(ReadOnlySpan<float> input, Span<float> output) => Map(input, output, default(Gelu));

    /// <summary>A function of eight floats at a time, which <see cref="Map"/> applies over a span.</summary>
    private interface ILanes
    {
        Vector256<float> Apply(Vector256<float> x);
    }

    private readonly struct ShiftedExp(float shift) : ILanes
    {
        private readonly Vector256<float> _shift = Vector256.Create(shift);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Vector256<float> Apply(Vector256<float> x) => Exp(x - _shift);
    }

    private readonly struct Gelu : ILanes
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Vector256<float> Apply(Vector256<float> x) => GeluNew(x);
    }

    /// <summary>
    /// output[i] = f(input[i]) for every value, the last few too (padded with zeros), so that equal values give equal
    /// results wherever they sit; the spans may be the same memory.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Map<TLanes>(ReadOnlySpan<float> input, Span<float> output, TLanes f) where TLanes : struct, ILanes
    {
        if (output.Length < input.Length) throw new ArgumentException("The output is shorter than the input.", nameof(output));
        const int lanes = 8;
        var i = 0;
        fixed (float* x = input, y = output)
        {
            // Two vectors an iteration: a polynomial (and gelu's division) waits on its own results
            for (; i + 2 * lanes <= input.Length; i += 2 * lanes)
            {
                var (a, b) = (f.Apply(Vector256.Load(x + i)), f.Apply(Vector256.Load(x + i + lanes)));
                a.Store(y + i);
                b.Store(y + i + lanes);
            }
            for (; i + lanes <= input.Length; i += lanes)
                f.Apply(Vector256.Load(x + i)).Store(y + i);
        }
        if (i == input.Length) return;
        Span<float> tail = stackalloc float[lanes];
        tail.Clear();
        input[i..].CopyTo(tail);
        f.Apply(Vector256.Create<float>(tail)).CopyTo(tail);
        tail[..(input.Length - i)].CopyTo(output[i..]);
    }
}

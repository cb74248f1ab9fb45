using static TorchSharp.torch;

namespace ParaphraseService.Model.Tests.Checkpoints;

internal static class TestTensors
{
    public static readonly ScalarType[] SupportedDTypes =
    [
        ScalarType.Float64, ScalarType.Float32, ScalarType.Float16, ScalarType.BFloat16, ScalarType.Int64,
        ScalarType.Int32, ScalarType.Int16, ScalarType.Int8, ScalarType.Byte, ScalarType.Bool,
    ];

    /// <summary>The values of ramp() in make_checkpoint_formats.py: floats -1, -0.75, ...; ints 37*i - 50 (wrapping); bools i % 3 == 0.</summary>
    public static Tensor Ramp(ScalarType dtype, params long[] shape)
    {
        using var scope = NewDisposeScope();
        var count = shape.Aggregate(1L, (a, b) => a * b);
        Tensor values = dtype switch
        {
            ScalarType.Bool => arange(count, ScalarType.Int64).remainder(3).eq(0),
            ScalarType.Float64 or ScalarType.Float32 or ScalarType.Float16 or ScalarType.BFloat16 =>
                arange(count, ScalarType.Float64).mul(0.25).sub(1).to(dtype),
            _ => arange(count, ScalarType.Int64).mul(37).sub(50).to(dtype),
        };
        return values.reshape(shape).MoveToOuterDisposeScope();
    }

    /// <summary>Same dtype, shape and exact values.</summary>
    public static void AssertSame(Tensor expected, Tensor actual, string? what = null)
    {
        Assert.True(expected.dtype == actual.dtype, $"{what}: dtype {actual.dtype}, expected {expected.dtype}");
        Assert.True(expected.shape.SequenceEqual(actual.shape),
            $"{what}: shape [{string.Join(", ", actual.shape)}], expected [{string.Join(", ", expected.shape)}]");
        Assert.True(expected.Equals(actual), $"{what}: values differ");
    }
}

using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace ParaphraseService.Model.Kernels;

/// <summary>
/// How a KV cache stores its keys and values, for the loops that read them (<see cref="Core.CpuAttention"/>): loads of
/// eight elements and of one, as fp32, from the element <c>i</c> of a row. Implemented by structs, so each loop is
/// compiled once per element type with the load inlined.
/// </summary>
internal unsafe interface ICachedElements
{
    /// <summary>Bytes per element.</summary>
    static abstract int Size { get; }

    static abstract Vector256<float> Load8(byte* row, long i);

    static abstract float Load(byte* row, long i);
}

/// <summary>fp32 elements, read as they are.</summary>
internal readonly unsafe struct Float32Elements : ICachedElements
{
    public static int Size => sizeof(float);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load8(byte* row, long i) => Vector256.Load((float*)row + i);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Load(byte* row, long i) => ((float*)row)[i];
}

/// <summary>
/// bfloat16 elements: the top half of an fp32's bits, widened exactly by shifting them back (so arithmetic on them is the
/// arithmetic on the fp32 values they round to).
/// </summary>
internal readonly unsafe struct BFloat16Elements : ICachedElements
{
    public static int Size => sizeof(ushort);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load8(byte* row, long i)
    {
        var at = (ushort*)row + i;
        var wide = Avx2.IsSupported
            ? Avx2.ConvertToVector256Int32(at).AsUInt32()
            : Vector256.WidenLower(Vector128.Load(at).ToVector256());
        return Vector256.ShiftLeft(wide, 16).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Load(byte* row, long i) => BitConverter.UInt32BitsToSingle((uint)((ushort*)row)[i] << 16);
}

using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Kernels;

/// <summary>
/// The memory behind a contiguous CPU tensor, for loops that would otherwise be a dozen LibTorch dispatches (each one a
/// native call and, on a busy machine, a wake-up of LibTorch's thread pool). The tensor must outlive the pointer.
/// </summary>
internal static unsafe class TensorMemory
{
    // LibTorchSharp's own accessor (TorchSharp's TensorAccessor wraps the same call but copies on most paths).
    [DllImport("LibTorchSharp")]
    private static extern IntPtr THSTensor_data(IntPtr handle);

    public static float* Floats(Tensor t) => (float*)Data(t, ScalarType.Float32);

    public static sbyte* Bytes(Tensor t) => (sbyte*)Data(t, ScalarType.Int8);

    public static bool* Bools(Tensor t) => (bool*)Data(t, ScalarType.Bool);

    public static long* Longs(Tensor t) => (long*)Data(t, ScalarType.Int64);

    /// <summary>The first element of a CPU fp32 tensor of any strides (a view's offset included); index it with t.stride().</summary>
    public static float* StridedFloats(Tensor t) => (float*)Data(t, ScalarType.Float32, contiguous: false);

    /// <summary>The first element of a CPU tensor of its own dtype and any strides; index it with t.stride() times its element size.</summary>
    public static byte* StridedData(Tensor t) => (byte*)Data(t, t.dtype, contiguous: false);

    // TorchSharp's shape and stride() fill their arrays through a managed callback from native code, a few microseconds
    // each; dim(), size(i) and stride(i) are plain calls. A decode step asks for shapes hundreds of times.

    /// <summary>t's shape with its last dimension replaced by (or, with replaceLast false, followed by) <paramref name="last"/>.</summary>
    public static long[] ShapeWithLast(Tensor t, long last, bool replaceLast = true)
    {
        var kept = (int)t.dim() - (replaceLast ? 1 : 0);
        var shape = new long[kept + 1];
        for (var i = 0; i < kept; i++) shape[i] = t.size(i);
        shape[kept] = last;
        return shape;
    }

    public static long[] Strides(Tensor t)
    {
        var strides = new long[t.dim()];
        for (var i = 0; i < strides.Length; i++) strides[i] = t.stride(i);
        return strides;
    }

    private static IntPtr Data(Tensor t, ScalarType dtype, bool contiguous = true)
    {
        if (t.dtype != dtype || t.device_type != DeviceType.CPU || contiguous && !t.is_contiguous())
            throw new ArgumentException($"Expected a contiguous CPU {dtype} tensor, got {t.dtype} on {t.device_type}{(t.is_contiguous() ? "" : ", not contiguous")}.");
        return THSTensor_data(t.Handle);
    }
}

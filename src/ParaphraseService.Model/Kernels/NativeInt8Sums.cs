using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;

namespace ParaphraseService.Model.Kernels;

/// <summary>
/// The int8 kernel's integer sums with AVX512-VNNI (one instruction for 64 multiply-adds of bytes), from the native
/// library ParaphraseService.Model.csproj builds beside this assembly out of <c>Kernels/Native/int8_vnni.c</c>: .NET 10
/// reaches only the VEX-encoded AVX-VNNI, which CPUs with AVX512-VNNI alone (Zen 4, Ice Lake and Cascade Lake servers)
/// lack. Used where the library was built and loads and the CPU reports AVX512-VNNI; elsewhere the managed sums run.
/// Both give the same integers, so the kernel's results do not depend on which ran.
/// </summary>
internal static unsafe class NativeInt8Sums
{
    public const string LibraryFile = "libparaphrase_int8.so";

    private static readonly delegate* unmanaged<sbyte*, int, int, sbyte*, int, int*, void> s_sums = Load();

    /// <summary>Whether <see cref="Sums"/> can run here.</summary>
    public static bool IsSupported => s_sums != null;

    /// <summary>Whether this CPU has AVX512-VNNI and the OS keeps the 512-bit registers (whether or not the library loaded).</summary>
    public static bool CpuSupports => Avx512BW.IsSupported && (X86Base.CpuId(7, 0).Ecx & (1 << 11)) != 0;

    /// <summary>sums (rows × outputs) = codes (rows × k) · weightsᵀ (outputs × k), all row-major, exact in 32 bits for k ≤ <see cref="Avx2Int8Kernel.MaxInFeatures"/>.</summary>
    public static void Sums(sbyte* codes, int rows, int k, sbyte* weights, int outputs, int* sums)
    {
        if (s_sums == null)
            throw new PlatformNotSupportedException("The AVX512-VNNI int8 sums need a CPU with AVX512-VNNI and " + LibraryFile + " beside the assembly.");
        s_sums(codes, rows, k, weights, outputs, sums);
    }

    private static delegate* unmanaged<sbyte*, int, int, sbyte*, int, int*, void> Load()
    {
        if (!CpuSupports)
            return null;
        var directory = Path.GetDirectoryName(typeof(NativeInt8Sums).Assembly.Location) is { Length: > 0 } d ? d : AppContext.BaseDirectory;
        return NativeLibrary.TryLoad(Path.Combine(directory, LibraryFile), out var library)
            && NativeLibrary.TryGetExport(library, "paraphrase_int8_sums", out var sums)
            ? (delegate* unmanaged<sbyte*, int, int, sbyte*, int, int*, void>)sums
            : null;
    }
}

using ParaphraseService.Model.Kernels;
namespace ParaphraseService.Model.Layers;

/// <summary>How the weights of every Linear and of the token embedding are stored.</summary>
public enum Quantization
{
    /// <summary>Full precision, in the model dtype.</summary>
    None,

    /// <summary>8-bit integers with one fp32 scale per output row; LayerNorms and biases stay in full precision.</summary>
    Int8,
}

/// <summary>How an int8 layer computes.</summary>
public enum Int8Kernel
{
    /// <summary>The device's best: the AVX2 kernel on a CPU that has AVX2 (fbgemm on other CPUs), dequantize elsewhere.</summary>
    Auto,

    /// <summary>
    /// Our own AVX2 kernel (CPU only, <see cref="Avx2Int8Kernel"/>): activations coded in 8 bits per row, weights read
    /// once as int8, the product split across threads by output columns. Fastest for decode steps.
    /// </summary>
    Avx2,

    /// <summary>fbgemm's int8 GEMM (CPU only): activations quantized on the fly, weights read as int8.</summary>
    Fbgemm,

    /// <summary>Dequantize the weight to the activation dtype for each call, then an ordinary matmul (the GPU path).</summary>
    Dequantize,
}

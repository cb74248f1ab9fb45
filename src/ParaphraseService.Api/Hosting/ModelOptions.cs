using System.ComponentModel.DataAnnotations;
using ParaphraseService.Model.Layers;

namespace ParaphraseService.Api.Hosting;

/// <summary>The <c>Model</c> configuration section.</summary>
public sealed class ModelOptions : IValidatableObject
{
    public const string Section = "Model";

    /// <summary>A model folder, a hub id (Org/Name[@revision]) or "demo".</summary>
    [Required(AllowEmptyStrings = false)]
    public string Source { get; set; } = "demo";

    [RegularExpression("^(auto|cpu|cuda(:[0-9]+)?)$", ErrorMessage = "Model:Device must be auto, cpu, cuda or cuda:N.")]
    public string Device { get; set; } = "auto";

    [RegularExpression("^(float32|fp32|bfloat16|bf16|float16|fp16)$", ErrorMessage = "Model:Dtype must be float32, bfloat16 or float16.")]
    public string Dtype { get; set; } = "float32";

    /// <summary>auto: int8 for models of a billion parameters or more and for int8 checkpoints; none; int8.</summary>
    [RegularExpression("^(auto|none|int8)$", ErrorMessage = "Model:Quantization must be auto, none or int8.")]
    public string Quantization { get; set; } = "auto";

    /// <summary>
    /// How generation's KV caches keep keys and values: auto (bfloat16 for int8 weights computing in float32 on the CPU,
    /// where it adds nothing measurable to their error; otherwise as computed), model (as computed) or bfloat16 (half the
    /// memory).
    /// </summary>
    [RegularExpression("^(auto|model|bfloat16|bf16)$", ErrorMessage = "Model:KvCache must be auto, model or bfloat16.")]
    public string KvCache { get; set; } = "auto";

    /// <summary>
    /// How int8 layers compute: auto (the AVX2 kernel on a CPU with AVX2, else fbgemm; dequantize on a GPU), avx2, fbgemm
    /// (keeps only its packed weight: a fine-tune first derives each layer's int8 matrix again) or dequantize.
    /// </summary>
    [RegularExpression("^(auto|avx2|fbgemm|dequantize)$", ErrorMessage = "Model:Int8Kernel must be auto, avx2, fbgemm or dequantize.")]
    public string Int8Kernel { get; set; } = "auto";

    /// <summary>
    /// int8 on the CPU: activations above this multiple of their row's mean magnitude are multiplied exactly; 0 turns it
    /// off; unset, the kernel's default (see Int8Options.OutlierFactor).
    /// </summary>
    [Range(0, 1e6, ErrorMessage = "Model:Int8OutlierFactor must be 0 (off) or a number from 1 to 1e6.")]
    public double? Int8OutlierFactor { get; set; }

    /// <summary>LoRA adapters kept in memory at once (least recently used unloaded first).</summary>
    [Range(1, 1024)]
    public int MaxResidentAdapters { get; set; } = 8;

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        // Between 0 and 1 most of a row would count as outliers, and a tiny value rounds to 0 in fp32 and fails the load.
        // [RegularExpression] passes an empty value, which would fail the model load after start instead.
        if (string.IsNullOrEmpty(Int8Kernel))
            yield return new ValidationResult("Model:Int8Kernel must be auto, avx2, fbgemm or dequantize.", [nameof(Int8Kernel)]);
        if (string.IsNullOrEmpty(KvCache))
            yield return new ValidationResult("Model:KvCache must be auto, model or bfloat16.", [nameof(KvCache)]);
        if (Int8OutlierFactor is > 0 and < 1)
            yield return new ValidationResult("Model:Int8OutlierFactor must be 0 (off) or a number from 1 to 1e6.", [nameof(Int8OutlierFactor)]);
    }
}

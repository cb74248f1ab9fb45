using System.ComponentModel.DataAnnotations;

namespace ParaphraseService.Api.Adapters;

/// <summary>The <c>Adapters</c> configuration section: where adapters are stored and how large an upload may be.</summary>
public sealed class AdaptersOptions
{
    public const string Section = "Adapters";

    /// <summary>The store's folder, one sub-folder per adapter; a relative path is taken from the content root.</summary>
    [Required(AllowEmptyStrings = false, ErrorMessage = "Adapters:Directory is required.")]
    public string Directory { get; set; } = Path.Combine("data", "adapters");

    /// <summary>Largest request body an upload may have (the zip with its multipart framing); default 256 MB.</summary>
    [Range(1L, long.MaxValue, ErrorMessage = "Adapters:MaxUploadBytes must be positive.")]
    public long MaxUploadBytes { get; set; } = 256L << 20;

    /// <summary>Most bytes an upload may unpack to, or a server folder may hold, all files together; default 1 GB.</summary>
    [Range(1L, long.MaxValue, ErrorMessage = "Adapters:MaxUnpackedBytes must be positive.")]
    public long MaxUnpackedBytes { get; set; } = 1L << 30;

    /// <summary>Most files an uploaded zip may hold; default 16.</summary>
    [Range(1, 10_000, ErrorMessage = "Adapters:MaxFiles must be between 1 and 10000.")]
    public int MaxFiles { get; set; } = 16;

    /// <summary>
    /// Largest uncompressed/compressed ratio of one zip entry bigger than <see cref="RatioCheckMinBytes"/>; default
    /// 100. Real adapter weights compress by about 1.1x (a fresh, all-zero lora_B beside a random lora_A about 2x).
    /// </summary>
    [Range(1, 100_000, ErrorMessage = "Adapters:MaxCompressionRatio must be between 1 and 100000.")]
    public int MaxCompressionRatio { get; set; } = 100;

    /// <summary>
    /// The adapter <c>/paraphrase</c> uses when a request names none (it wins over <see cref="UseBuiltInDefault"/>);
    /// unset by default. A request whose default is missing gets a 404 that names this setting.
    /// </summary>
    [RegularExpression(AdapterName.Pattern, ErrorMessage = "Adapters:Default must be an adapter name: 1-64 lowercase letters, digits, '.', '_' and '-', starting with a letter or digit.")]
    public string? Default { get; set; }

    /// <summary>
    /// Without <see cref="Default"/>: whether <c>/paraphrase</c> uses the model's built-in adapter (the demo model's
    /// paws-demo) when a request names none; default true. False, or a model without one, serves the base model with
    /// the few-shot prompt.
    /// </summary>
    public bool UseBuiltInDefault { get; set; } = true;

    /// <summary>Entries at most this large are not ratio-checked (small JSON files compress well and are harmless).</summary>
    public const long RatioCheckMinBytes = 1 << 20;
}

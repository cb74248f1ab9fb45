using System.CommandLine;
using ParaphraseService.Model.Layers;
using ParaphraseService.Model.Loading;

namespace ParaphraseService.Cli.Commands;

/// <summary>Options every model-loading command shares.</summary>
internal static class CommonOptions
{
    /// <summary>A dataset or input file an option names, checked before any work: a usage error (exit 2) naming the option.</summary>
    public static string ExistingFile(string path, string option) =>
        File.Exists(path) ? path
        : Directory.Exists(path) ? throw new UsageException($"{option}: '{path}' is a folder; name a file.")
        : throw new UsageException($"{option}: no such file '{path}'.");

    public static Option<bool> TsvQuoting() => new("--tsv-quoting")
    {
        Description = "TSV (not PAWS): read fields in double quotes as pandas and Python's csv write them (\"a \"\"b\"\"\", tabs and line breaks inside quotes).",
    };

    public static Option<string> Model() => new("--model", "-m")
    {
        Description = "A model folder, a Hugging Face hub id (Org/Name[@revision]), 'demo' (a small trained model that ships with the tool) or 'demo-random' (random weights).",
        DefaultValueFactory = _ => DemoModel.SourceName,
    };

    public static Option<string> Device() => new("--device")
    {
        Description = "auto (CUDA when available, else CPU), cpu, cuda or cuda:N.",
        DefaultValueFactory = _ => "auto",
    };

    public static Option<string> Dtype() => new("--dtype")
    {
        Description = "float32, bfloat16 or float16 (GPU only).",
        DefaultValueFactory = _ => "float32",
    };

    public static Option<string> Quantization() => new("--quantization", "-q")
    {
        Description = "auto (int8 for models of 1B+ parameters or int8 checkpoints, else none), none or int8.",
        DefaultValueFactory = _ => "auto",
    };

    public static Option<string> KvCache() => new("--kv-cache")
    {
        Description = "How the KV cache keeps keys and values: auto (bfloat16 for int8 weights on the CPU, where it adds nothing measurable to their error; " +
            "otherwise as the model computes them), model (as computed) or bfloat16 (half the memory and half the bytes a decode step reads back).",
        DefaultValueFactory = _ => "auto",
    };

    public static Option<bool> Speculate() => new("--speculate")
    {
        Description = "Prompt-lookup speculative decoding: each sequence proposes tokens copied from its prompt and verifies them in one pass. " +
            "The same output, in fewer passes.",
    };

    public static Option<double?> Int8OutlierFactor() => new("--int8-outlier-factor")
    {
        Description = $"int8 on the CPU: activations above this multiple of their row's mean magnitude are multiplied exactly; 0 turns that off. " +
            $"Default: {Int8Options.Avx2Default} with the avx2 kernel, {Int8Options.FbgemmDefault} with fbgemm (which keeps one more byte per weight for it).",
    };

    /// <summary>The int8 settings of --int8-outlier-factor (0: off), refused by name when out of range.</summary>
    public static Int8Options Int8(ParseResult parse, Option<double?> outlierFactor, Int8Kernel kernel = Int8Kernel.Auto)
    {
        var factor = parse.GetValue(outlierFactor);
        if (factor is { } f && !(f == 0 || f is >= 1 and <= 1e6))
            throw new UsageException($"--int8-outlier-factor must be 0 (off) or a number from 1 to 1e6, got {f}.");
        return Int8Options.Default with { Kernel = kernel, OutlierFactor = Int8Options.FromSetting(factor) };
    }

    public static ModelLoadOptions LoadOptions(ParseResult parse, Option<string> device, Option<string> dtype, Option<string> quantization,
        Option<string>? kvCache = null)
    {
        var options = new ModelLoadOptions
        {
            Device = parse.GetValue(device)!,
            Dtype = parse.GetValue(dtype)!,
            Quantization = parse.GetValue(quantization)!,
        };
        return kvCache is null ? options : options with { KvCache = parse.GetValue(kvCache)! };
    }
}

using System.CommandLine;
using ParaphraseService.Model.Loading;

namespace ParaphraseService.Cli.Commands;

/// <summary>Options every model-loading command shares.</summary>
internal static class CommonOptions
{
    public static Option<string> Model() => new("--model", "-m")
    {
        Description = "A model folder, a Hugging Face hub id (Org/Name[@revision]) or 'demo' (random weights, offline).",
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
}

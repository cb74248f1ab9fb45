using System.Diagnostics.CodeAnalysis;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Checkpoints;

/// <summary>The safetensors dtype names we read and write, and the TorchSharp dtype each one maps to.</summary>
internal static class SafetensorsDType
{
    private static readonly Dictionary<string, ScalarType> ByName = new(StringComparer.Ordinal)
    {
        ["F64"] = ScalarType.Float64,
        ["F32"] = ScalarType.Float32,
        ["F16"] = ScalarType.Float16,
        ["BF16"] = ScalarType.BFloat16,
        ["I64"] = ScalarType.Int64,
        ["I32"] = ScalarType.Int32,
        ["I16"] = ScalarType.Int16,
        ["I8"] = ScalarType.Int8,
        ["U8"] = ScalarType.Byte,
        ["BOOL"] = ScalarType.Bool,
    };

    private static readonly Dictionary<ScalarType, string> ByType = ByName.ToDictionary(p => p.Value, p => p.Key);

    public static string SupportedNames => string.Join(", ", ByName.Keys);

    public static bool TryParse(string name, out ScalarType dtype) => ByName.TryGetValue(name, out dtype);

    public static bool TryGetName(ScalarType dtype, [MaybeNullWhen(false)] out string name) =>
        ByType.TryGetValue(dtype, out name);
}

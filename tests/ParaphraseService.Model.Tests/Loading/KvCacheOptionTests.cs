using ParaphraseService.Model.Layers;
using ParaphraseService.Model.Loading;
using TorchSharp;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Tests.Loading;

/// <summary>ModelLoadOptions.KvCache: which dtype generation's caches keep, and what a load makes of it.</summary>
public class KvCacheOptionTests
{
    public static TheoryData<string, Quantization, ScalarType, DeviceType, ScalarType?> Choices => new()
    {
        { "auto", Quantization.Int8, ScalarType.Float32, DeviceType.CPU, ScalarType.BFloat16 }, // int8: rounding adds nothing measurable
        { "auto", Quantization.None, ScalarType.Float32, DeviceType.CPU, null },                // full precision stays exact
        { "auto", Quantization.Int8, ScalarType.Float16, DeviceType.CPU, null },                // already 16 bits
        { "auto", Quantization.Int8, ScalarType.Float32, DeviceType.CUDA, null },               // no loop there reads bfloat16
        { "model", Quantization.Int8, ScalarType.Float32, DeviceType.CPU, null },
        { "bfloat16", Quantization.None, ScalarType.Float32, DeviceType.CPU, ScalarType.BFloat16 },
        { " BF16 ", Quantization.None, ScalarType.Float16, DeviceType.CUDA, ScalarType.BFloat16 },
        { "bfloat16", Quantization.None, ScalarType.BFloat16, DeviceType.CPU, null },           // what the model computes in anyway
    };

    [Theory, MemberData(nameof(Choices))]
    public void ResolvesToTheDtypeTheCachesKeep(string setting, Quantization quantization, ScalarType dtype, DeviceType device, ScalarType? expected)
        => Assert.Equal(expected, new ModelLoadOptions { KvCache = setting }.ResolveKvCache(quantization, dtype, device));

    [Theory]
    [InlineData("fp8")]
    [InlineData("")]
    [InlineData("float32; drop")]
    public void AnUnknownSettingIsRefusedByName(string setting)
    {
        var error = Assert.Throws<ArgumentException>(() => new ModelLoadOptions { KvCache = setting }.ResolveKvCache(Quantization.Int8, ScalarType.Float32, DeviceType.CPU));
        Assert.Contains($"'{setting}'", error.Message);
        Assert.Contains("auto, model or bfloat16", error.Message);
    }

    [Theory]
    [InlineData("int8", "auto", ScalarType.BFloat16)]
    [InlineData("int8", "model", null)]
    [InlineData("none", "auto", null)]
    [InlineData("none", "bfloat16", ScalarType.BFloat16)]
    public void ALoadedModelCarriesIt(string quantization, string setting, ScalarType? expected)
    {
        using var loaded = ModelLoader.LoadFolder(Fixtures.Get("gptj-tiny", "safetensors"),
            new ModelLoadOptions { Device = "cpu", Quantization = quantization, KvCache = setting });
        Assert.Equal(expected, loaded.Model.KvCacheDtype);
    }
}

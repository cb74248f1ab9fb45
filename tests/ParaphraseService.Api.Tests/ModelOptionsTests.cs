using Microsoft.Extensions.Options;

namespace ParaphraseService.Api.Tests;

public class ModelOptionsTests
{
    private const string FactorMessage = "Model:Int8OutlierFactor must be 0 (off) or a number from 1 to 1e6";
    private const string KernelMessage = "Model:Int8Kernel must be auto, avx2, fbgemm or dequantize";

    [Theory]
    [InlineData("Model:Int8OutlierFactor", "-1", FactorMessage)]
    [InlineData("Model:Int8OutlierFactor", "0.5", FactorMessage)]
    [InlineData("Model:Int8OutlierFactor", "1e-300", FactorMessage)]
    [InlineData("Model:Int8OutlierFactor", "NaN", FactorMessage)]
    [InlineData("Model:Int8OutlierFactor", "Infinity", FactorMessage)]
    [InlineData("Model:Int8OutlierFactor", "1e7", FactorMessage)]
    [InlineData("Model:Int8Kernel", "gpu", KernelMessage)]
    [InlineData("Model:Int8Kernel", "AVX2; rm -rf /", KernelMessage)]
    [InlineData("Model:Int8Kernel", "", KernelMessage)]
    public void AnInt8SettingOutOfRangeStopsTheServiceAtStart(string key, string value, string message)
        => Assert.Contains(message, ServiceApplication.StartError(new() { [key] = value }).Message);

    [Theory]
    [InlineData("fp8")]
    [InlineData("float8_e4m3")]
    [InlineData("")]
    [InlineData("bfloat16\n")]
    public void AnUnknownKvCacheDtypeStopsTheServiceAtStart(string value)
        => Assert.Contains("Model:KvCache must be auto, model or bfloat16", ServiceApplication.StartError(new() { ["Model:KvCache"] = value }).Message);
}

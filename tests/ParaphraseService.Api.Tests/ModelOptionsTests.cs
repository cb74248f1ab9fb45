using Microsoft.Extensions.Options;

namespace ParaphraseService.Api.Tests;

public class ModelOptionsTests
{
    [Theory]
    [InlineData("-1")]
    [InlineData("0.5")]
    [InlineData("1e-300")]
    [InlineData("NaN")]
    [InlineData("Infinity")]
    [InlineData("1e7")]
    public void AnInt8OutlierFactorOutOfRangeStopsTheServiceAtStart(string value)
    {
        using var app = new ServiceApplication(new() { ["Model:Int8OutlierFactor"] = value });
        var error = Assert.Throws<OptionsValidationException>(() => app.CreateClient());
        Assert.Contains("Model:Int8OutlierFactor must be 0 (off) or a number from 1 to 1e6", error.Message);
    }

    [Theory]
    [InlineData("gpu")]
    [InlineData("AVX2; rm -rf /")]
    [InlineData("")]
    public void AnUnknownInt8KernelStopsTheServiceAtStart(string value)
    {
        using var app = new ServiceApplication(new() { ["Model:Int8Kernel"] = value });
        var error = Assert.Throws<OptionsValidationException>(() => app.CreateClient());
        Assert.Contains("Model:Int8Kernel must be auto, avx2, fbgemm or dequantize", error.Message);
    }
}

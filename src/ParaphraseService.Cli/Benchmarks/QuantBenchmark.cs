using System.Diagnostics;
using ParaphraseService.Model.Checkpoints;
using ParaphraseService.Model.Core;
using ParaphraseService.Model.Diagnostics;
using ParaphraseService.Model.GptJ;
using ParaphraseService.Model.Layers;
using ParaphraseService.Model.Loading;
using ParaphraseService.Model.Lora;
using static TorchSharp.torch;

namespace ParaphraseService.Cli.Benchmarks;

/// <summary>One weight format measured on the bench model.</summary>
/// <param name="WeightBytes">Bytes of all weights as stored (int8 values, scales, biases, LayerNorms).</param>
/// <param name="BytesPerToken">Weight bytes one decode step reads (every Linear and lm_head; one embedding row is negligible).</param>
/// <param name="ResidentBytes">Growth of the process's resident memory while the model was built.</param>
public sealed record QuantBenchVariant(
    string Name, long WeightBytes, long BytesPerToken, long ResidentBytes, double TokensPerSecondBatch1, double TokensPerSecondBatch8);

public sealed record QuantBenchReport(
    string Model, long Parameters, int Threads, double ReadBandwidthGBps, QuantBenchVariant Fp32, QuantBenchVariant Int8,
    double SpeedupBatch1, double SpeedupBatch8, double BandwidthLimitTokensPerSecond, double FractionOfBandwidthLimit,
    double LogitsRelativeError, double LogitsRelativeErrorDequantizeKernel, double LogitsRelativeErrorWithOutliers,
    double LogitsRelativeErrorWithOutliersUnhandled);

/// <summary>
/// fp32 against int8 on the GPT-J-shaped 250M bench model, side by side in one process: decode speed at batch 1 and 8,
/// memory, the int8 speed as a fraction of what memory bandwidth allows, and how far int8 logits drift from fp32.
/// </summary>
public static class QuantBenchmark
{
    private const long Seed = 1234;
    // Outlier features as LLM.int8() found them in 6B+ models: a few fixed channels of every LayerNorm output.
    private static readonly long[] OutlierChannels = [11, 404, 877];
    private const float OutlierScale = 40f;

    public static QuantBenchReport Run(int decodeSteps, Action<string> log)
    {
        var config = CheckpointPresets.Bench250MConfig;
        var bandwidth = MeasureReadBandwidth();
        log($"read bandwidth {bandwidth:F1} GB/s");

        // int8 first: its resident growth is then measured on a heap that no larger model has used before.
        var int8 = Measure("int8", config, Quantization.Int8, decodeSteps, log, out var int8Logits);
        var fp32 = Measure("fp32", config, Quantization.None, decodeSteps, log, out var fp32Logits);
        var error = RelativeError(int8Logits, fp32Logits);
        using var dequantized = Logits(config, Quantization.Int8, new Int8Options(Int8Kernel.Dequantize), withOutliers: false);

        using var outlierFp32 = Logits(config, Quantization.None, Int8Options.Default, withOutliers: true);
        using var outlierInt8 = Logits(config, Quantization.Int8, Int8Options.Default, withOutliers: true);
        using var outlierUnhandled = Logits(config, Quantization.Int8, new Int8Options(OutlierFactor: float.PositiveInfinity), withOutliers: true);
        var limit = bandwidth * 1e9 / int8.BytesPerToken;
        long parameters;
        using (var meta = new GptJForCausalLM(config, ScalarType.Float32, device("meta")))
            parameters = meta.parameters().Sum(p => p.numel());
        var report = new QuantBenchReport(
            "GPT-J-shaped bench-250m (n_embd 1024, 12 layers, 16 heads, rotary_dim 64, vocab 50400; random weights)",
            parameters, get_num_threads(), bandwidth, fp32, int8,
            int8.TokensPerSecondBatch1 / fp32.TokensPerSecondBatch1, int8.TokensPerSecondBatch8 / fp32.TokensPerSecondBatch8,
            limit, int8.TokensPerSecondBatch1 / limit,
            error, RelativeError(dequantized, fp32Logits), RelativeError(outlierInt8, outlierFp32), RelativeError(outlierUnhandled, outlierFp32));
        fp32Logits.Dispose();
        int8Logits.Dispose();
        return report;
    }

    private static QuantBenchVariant Measure(string name, GptJConfig config, Quantization quantization, int steps, Action<string> log, out Tensor logits)
    {
        GC.Collect();
        var before = ProcessMemory.ResidentBytes;
        using var model = Build(config, quantization, Int8Options.Default, withOutliers: false);
        var resident = ProcessMemory.ResidentBytes - before;
        var (weightBytes, perToken) = WeightBytes(model);
        var batch1 = DecodeTimer.TokensPerSecond(model, 1, steps);
        var batch8 = DecodeTimer.TokensPerSecond(model, 8, steps);
        log($"{name}: {batch1:F1} tokens/s at batch 1, {batch8:F1} at batch 8, weights {weightBytes / 1e6:F0} MB");
        logits = Forward(model);
        return new QuantBenchVariant(name, weightBytes, perToken, resident, batch1, batch8);
    }

    internal static GptJForCausalLM Build(GptJConfig config, Quantization quantization, Int8Options int8, bool withOutliers, LoraRouting? lora = null)
    {
        using var random = new RandomCheckpoint(config, Seed);
        using var weights = withOutliers ? new OutlierCheckpoint(random) : null;
        return ModelLoader.Build(config, (ICheckpointSource?)weights ?? random, new LayerFactory(ScalarType.Float32, CPU, quantization, int8, lora), "bench-250m");
    }

    private static Tensor Logits(GptJConfig config, Quantization quantization, Int8Options int8, bool withOutliers)
    {
        using var model = Build(config, quantization, int8, withOutliers);
        return Forward(model);
    }

    private static Tensor Forward(GptJForCausalLM model)
    {
        using var noGrad = no_grad();
        using var ids = DecodeTimer.Prompt(1, 32);
        return model.forward(new CausalLMInput(ids));
    }

    private static (long All, long PerToken) WeightBytes(GptJForCausalLM model)
    {
        long all = 0, perToken = 0;
        var quantized = model.named_modules().Where(m => m.module is IQuantizedWeightLayer).ToList();
        foreach (var (name, module) in quantized)
        {
            var bytes = ((IQuantizedWeightLayer)module).WeightBytes;
            all += bytes;
            if (module is Int8Linear) perToken += bytes;
        }
        foreach (var (name, p) in model.named_parameters())
        {
            var bytes = p.numel() * p.ElementSize;
            all += bytes;
            if (name != "transformer.wte.weight") perToken += bytes;
        }
        return (all, perToken);
    }

    /// <summary>GB/s of summing a 1 GiB fp32 tensor that is not in any cache, best of five.</summary>
    private static double MeasureReadBandwidth()
    {
        using var big = ones(256L << 20);
        var best = double.MaxValue;
        for (var i = 0; i < 5; i++)
        {
            var clock = Stopwatch.StartNew();
            using var sum = big.sum();
            _ = sum.item<float>();
            best = Math.Min(best, clock.Elapsed.TotalSeconds);
        }
        return big.numel() * 4 / best / 1e9;
    }

    private static double RelativeError(Tensor actual, Tensor expected) => ((actual - expected).norm() / expected.norm()).item<float>();

    /// <summary>The random weights with a few LayerNorm channels scaled up, so those features dominate every layer's input.</summary>
    private sealed class OutlierCheckpoint(ICheckpointSource inner) : ICheckpointSource
    {
        public IReadOnlyDictionary<string, CheckpointTensorInfo> Tensors => inner.Tensors;

        public Tensor Read(string name)
        {
            var tensor = inner.Read(name);
            if (name.EndsWith(".ln_1.weight", StringComparison.Ordinal))
                foreach (var channel in OutlierChannels)
                    tensor[channel] *= OutlierScale;
            return tensor;
        }

        public void Dispose() { }
    }
}

using System.Globalization;
using System.Text.RegularExpressions;
using ParaphraseService.Model.Layers;
using ParaphraseService.Model.Loading;
using ParaphraseService.Model.Lora.Peft;
using ParaphraseService.Training.Datasets;
using ParaphraseService.Training.Evaluation;
using ParaphraseService.Training.Prompts;
using Xunit.Abstractions;

namespace ParaphraseService.Training.Tests.Evaluation;

/// <summary>
/// Properties of the committed demo weights (not timings): the held-out perplexity its README states, int8 within 1%
/// of it, and the paraphrase adapter well below the base on held-out pairs.
/// </summary>
public partial class DemoModelQualityTests(ITestOutputHelper output)
{
    [GeneratedRegex(@"Held-out perplexity: \*\*(?<value>[0-9.]+)\*\*")]
    private static partial Regex StatedPerplexity();

    [Fact]
    public void HeldOutPerplexityIsTheFigureItsReadmeStates()
    {
        var readme = File.ReadAllText(Path.Combine(DemoModel.Folder, "README.md"));
        var stated = double.Parse(StatedPerplexity().Match(readme).Groups["value"].Value, CultureInfo.InvariantCulture);
        using var demo = DemoModelReference.Load();

        var report = LikelihoodEvaluator.Evaluate([new EvalModel("none", demo.Model)], HeldOutText(demo), demo.Config.EosTokenId, batchSize: 16);

        output.WriteLine($"held-out perplexity {report.Models[0].Perplexity:F4}, README {stated}");
        Assert.Equal(stated, report.Models[0].Perplexity, 1e-3);
    }

    [Theory]
    [InlineData(Int8Kernel.Avx2)]
    [InlineData(Int8Kernel.Fbgemm)]
    [InlineData(Int8Kernel.Dequantize)]
    public void Int8RaisesHeldOutPerplexityByAtMostOnePercent(Int8Kernel kernel)
    {
        using var none = DemoModelReference.Load();
        using var int8 = DemoModelReference.Load(Quantization.Int8, kernel);

        var report = LikelihoodEvaluator.Evaluate([new EvalModel("none", none.Model), new EvalModel("int8", int8.Model)], HeldOutText(none),
            none.Config.EosTokenId, batchSize: 16);

        var c = report.Comparisons[0];
        output.WriteLine($"{kernel}: perplexity {report.Models[0].Perplexity:F4} -> {report.Models[1].Perplexity:F4} ({c.PerplexityIncrease:P3}), " +
            $"top-1 agreement {c.Top1Agreement:P2}, KL {c.MeanKl:E2}, logits error {c.LogitsRelativeError:E2}");
        Assert.InRange(c.PerplexityIncrease, -0.01, 0.01);
        // 98% for every kernel, also where fbgemm codes activations in 7 bits (CPUs without VNNI): there the exact outlier
        // pass (Int8Options.OutlierFactor) lifted it from 97.0% to 98.2%; the AVX2 kernel's 8-bit codes reach 97.9% without
        // it and 98.4% at its default factor (README, Evaluating models).
        const double atLeast = 0.98;
        Assert.True(c.Top1Agreement >= atLeast, $"top-1 agreement {c.Top1Agreement:P2}");
    }

    [Fact]
    public void TheAdapterPredictsHeldOutParaphrasesFarBetterThanTheBase()
    {
        using var demo = DemoModelReference.Load(adapters: 1);
        var (adapter, _, _) = demo.Adapters!.LoadFolder(demo.BundledAdapter!.Folder);
        var template = PromptTemplate.ForAdapter(AdapterMetadata.Load(Path.Combine(demo.BundledAdapter.Folder, AdapterMetadata.FileName)).PromptTemplate);
        var read = ParaphraseDatasetReader.Read(DemoModelReference.Folder("heldout-pairs.tsv"));
        var pairs = DatasetPreparation.Prepare(read, new DatasetPreparationOptions { EvalFraction = 0 }).Train;

        var report = LikelihoodEvaluator.Evaluate([new EvalModel("base", demo.Model), new EvalModel("adapter", demo.Model, adapter)],
            EvalSequences.FromPairs(pairs, template, demo.Tokenizer, 512), demo.Config.EosTokenId, batchSize: 32);

        output.WriteLine($"held-out pairs: base {report.Models[0].MeanNll:F4}, adapter {report.Models[1].MeanNll:F4}");
        Assert.True(report.Models[1].MeanNll <= 0.7 * report.Models[0].MeanNll, $"base {report.Models[0].MeanNll}, adapter {report.Models[1].MeanNll}");
    }

    private static IReadOnlyList<EvalSequence> HeldOutText(LoadedModel demo) => EvalSequences.FromTextFile(
        DemoModelReference.Folder("heldout.txt"), demo.Tokenizer, DemoModelReference.Json.GetProperty("heldout_text").GetProperty("window").GetInt32());
}

using System.Security.Cryptography;
using System.Text;
using ParaphraseService.Model.GptJ;
using ParaphraseService.Model.Layers;
using ParaphraseService.Model.Loading;
using ParaphraseService.Model.Tokenization;
using ParaphraseService.Training.Datasets;
using ParaphraseService.Training.Evaluation;
using ParaphraseService.Training.Prompts;
using ParaphraseService.Training.FineTuning;
using static TorchSharp.torch;

namespace ParaphraseService.Training.Tests.Evaluation;

public class LikelihoodEvaluatorTests
{
    private static readonly PromptTemplate FineTuneTemplate = new(PromptTemplate.FineTuneTemplateText);

    [Fact]
    public void TextPerplexityEqualsThePyTorchReference()
    {
        using var demo = DemoModelReference.Load();
        var reference = DemoModelReference.Json.GetProperty("heldout_text");
        var window = reference.GetProperty("window").GetInt32();
        var sequences = EvalSequences.FromTextFile(DemoModelReference.Folder("heldout.txt"), demo.Tokenizer, window);

        var report = LikelihoodEvaluator.Evaluate([new EvalModel("none", demo.Model)], sequences, demo.Config.EosTokenId, batchSize: 16);

        Assert.Equal(reference.GetProperty("predicted").GetInt64(), report.ScoredTokens);
        Assert.Equal(reference.GetProperty("nll").GetDouble(), report.Models[0].MeanNll, 1e-5);
    }

    [Fact]
    public void PairsCountOnlyTargetTokensAndEqualThePyTorchReference()
    {
        using var demo = DemoModelReference.Load();
        var reference = DemoModelReference.Json.GetProperty("heldout_pairs_base");
        var read = ParaphraseDatasetReader.Read(DemoModelReference.Folder("heldout-pairs.tsv"));
        var pairs = DatasetPreparation.Prepare(read, new DatasetPreparationOptions { EvalFraction = 0 }).Train;
        var sequences = EvalSequences.FromPairs(pairs, FineTuneTemplate, demo.Tokenizer, maxLength: 512);

        var report = LikelihoodEvaluator.Evaluate([new EvalModel("none", demo.Model)], sequences, demo.Config.EosTokenId, batchSize: 32);

        var targetTokens = pairs.Sum(p => demo.Tokenizer.Encode(" " + p.Target + "\n").Count);
        Assert.Equal(reference.GetProperty("pairs").GetInt32(), pairs.Count);
        Assert.Equal(targetTokens, report.ScoredTokens);
        Assert.Equal(reference.GetProperty("target_tokens").GetInt64(), report.ScoredTokens);
        Assert.Equal(reference.GetProperty("nll").GetDouble(), report.Models[0].MeanNll, 1e-5);
    }

    [Fact]
    public void APromptChangesTheLossButNotWhatIsCounted()
    {
        using var demo = DemoModelReference.Load();
        ParaphrasePair[] pairs = [new("The cat sat on the mat .", "On the mat sat the cat ."), new("He was born in 1950 in Paris .", "In 1950 he was born in Paris .")];
        var plain = Evaluate(demo, EvalSequences.FromPairs(pairs, FineTuneTemplate, demo.Tokenizer, 512));
        var other = Evaluate(demo, EvalSequences.FromPairs(pairs, new PromptTemplate("Some unrelated words first. {text} =>"), demo.Tokenizer, 512));

        Assert.Equal(plain.ScoredTokens, other.ScoredTokens);
        Assert.NotEqual(plain.Models[0].MeanNll, other.Models[0].MeanNll, 3);
    }

    [Fact]
    public void AModelComparedWithItselfAgreesEverywhere()
    {
        using var first = DemoModelReference.Load();
        using var second = DemoModelReference.Load();
        var sequences = EvalSequences.FromTextFile(DemoModelReference.Folder("heldout.txt"), first.Tokenizer, 128).Take(12).ToList();

        var report = LikelihoodEvaluator.Evaluate([new EvalModel("a", first.Model), new EvalModel("b", second.Model)], sequences, first.Config.EosTokenId, batchSize: 5);

        var c = Assert.Single(report.Comparisons);
        Assert.Equal(("a", "b"), (c.Reference, c.Other));
        Assert.Equal(1.0, c.Top1Agreement);
        Assert.Equal(0.0, c.MeanKl, 1e-9);
        Assert.Equal(0.0, c.LogitsRelativeError, 1e-9);
        Assert.Equal(0.0, c.PerplexityIncrease, 1e-9);
        Assert.Equal(report.Models[0].MeanNll, report.Models[1].MeanNll);
    }

    [Fact]
    public void BatchingAndPaddingDoNotChangeTheFigures()
    {
        using var demo = DemoModelReference.Load();
        // windows of different lengths: the last one is short, so batches of 3 pad it
        var sequences = EvalSequences.FromTextFile(DemoModelReference.Folder("heldout.txt"), demo.Tokenizer, 100).Take(7)
            .Append(new EvalSequence(demo.Tokenizer.Encode("Köroğlu is a village ."), 1)).ToList();
        var one = Evaluate(demo, sequences, batchSize: 1);
        var three = Evaluate(demo, sequences, batchSize: 3);
        Assert.Equal(one.ScoredTokens, three.ScoredTokens);
        Assert.Equal(one.Models[0].MeanNll, three.Models[0].MeanNll, 1e-5);
    }

    [Fact]
    public void Int8AgainstFullPrecisionIsMeasuredOnTheSameTokens()
    {
        using var none = DemoModelReference.Load();
        using var int8 = DemoModelReference.Load(Quantization.Int8, Int8Kernel.Dequantize);
        var sequences = EvalSequences.FromTextFile(DemoModelReference.Folder("heldout.txt"), none.Tokenizer, 256).Take(8).ToList();

        var report = LikelihoodEvaluator.Evaluate([new EvalModel("none", none.Model), new EvalModel("int8", int8.Model)], sequences, none.Config.EosTokenId, batchSize: 8);

        var c = Assert.Single(report.Comparisons);
        Assert.InRange(c.Top1Agreement, 0.9, 1.0);
        Assert.InRange(c.MeanKl, 1e-9, 0.05); // int8 changes the distribution a little, never not at all
        Assert.InRange(c.LogitsRelativeError, 1e-5, 0.05);
        Assert.Equal(Math.Exp(report.Models[1].MeanNll - report.Models[0].MeanNll) - 1, c.PerplexityIncrease, 1e-12);
    }

    [Fact]
    public void TheHeldOutTextTokenizesAsThePythonScriptDid()
    {
        var tokenizer = Gpt2Tokenizer.FromFolder(DemoModel.Folder);
        var reference = DemoModelReference.Json.GetProperty("heldout_text");
        var text = File.ReadAllText(DemoModelReference.Folder("heldout.txt"));
        var ids = tokenizer.Encode(text);

        Assert.Equal(reference.GetProperty("tokens").GetInt32(), ids.Count);
        Assert.Equal(reference.GetProperty("ids_sha256").GetString(), Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(string.Join(",", ids)))));
        Assert.Contains("Pjetër Dungu", text); // non-ASCII letters are in it, and come back as they went in
        Assert.Contains("Timothée Chalamet", text);
        foreach (var line in text.Split('\n'))
            Assert.Equal(line, tokenizer.Decode(tokenizer.Encode(line)));
        Assert.Equal(1024, tokenizer.VocabularySize);
        Assert.Equal([1023], tokenizer.Encode(Gpt2Tokenizer.EndOfTextToken));
        Assert.Equal(1023, tokenizer.EndOfTextTokenId);
    }

    [Fact]
    public void WhatCannotBeScoredIsRefusedWithAReason()
    {
        using var demo = DemoModelReference.Load();
        EvalModel[] models = [new("none", demo.Model)];
        Assert.Contains("outside the model's vocabulary", Assert.Throws<ArgumentException>(() =>
            LikelihoodEvaluator.Evaluate(models, [new EvalSequence([1, 2, 5000], 1)], 0, 1)).Message);
        Assert.Contains("context holds 512", Assert.Throws<ArgumentException>(() =>
            LikelihoodEvaluator.Evaluate(models, [new EvalSequence(Enumerable.Repeat(5, 600).ToArray(), 1)], 0, 1)).Message);
        Assert.Contains("no token to score", Assert.Throws<ArgumentException>(() =>
            LikelihoodEvaluator.Evaluate(models, [new EvalSequence([1, 2], 2)], 0, 1)).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new EvalSequence([1, 2], 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => LikelihoodEvaluator.Evaluate(models, [new EvalSequence([1, 2], 1)], -1, 1));
        using var random = RandomDemoModel.Load(new ModelLoadOptions { Device = "cpu" });
        Assert.Contains("share a vocabulary", Assert.Throws<ArgumentException>(() =>
            LikelihoodEvaluator.Evaluate([.. models, new EvalModel("random", random.Model)], [new EvalSequence([1, 2], 1)], 0, 1)).Message);
    }

    [Fact]
    public void TextFilesThatAreNotUtf8OrTooShortAreRefused()
    {
        var tokenizer = Gpt2Tokenizer.FromFolder(DemoModel.Folder);
        var folder = Directory.CreateTempSubdirectory("eval-text-").FullName;
        try
        {
            var invalid = Path.Combine(folder, "invalid.txt");
            File.WriteAllBytes(invalid, [.. "fine so far "u8, 0xC3, 0x28, .. " then broken"u8]);
            Assert.Contains("not UTF-8 text (invalid bytes at byte 12)", Assert.Throws<InvalidDataException>(() => EvalSequences.FromTextFile(invalid, tokenizer, 64)).Message);

            var empty = Path.Combine(folder, "empty.txt");
            File.WriteAllBytes(empty, [0xEF, 0xBB, 0xBF]);
            Assert.Contains("0 token(s)", Assert.Throws<InvalidDataException>(() => EvalSequences.FromTextFile(empty, tokenizer, 64)).Message);

            var bom = Path.Combine(folder, "bom.txt");
            File.WriteAllBytes(bom, [0xEF, 0xBB, 0xBF, .. "The river rises ."u8]);
            var sequences = EvalSequences.FromTextFile(bom, tokenizer, 64);
            Assert.Equal(tokenizer.Encode("The river rises ."), Assert.Single(sequences).Ids);

            Assert.Throws<FileNotFoundException>(() => EvalSequences.FromTextFile(Path.Combine(folder, "missing.txt"), tokenizer, 64));
            Assert.Throws<ArgumentOutOfRangeException>(() => EvalSequences.FromText("a b c", tokenizer, 1));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public void TextWindowsCoverEveryTokenOnceAndPredictAllButTheirFirst()
    {
        var tokenizer = Gpt2Tokenizer.FromFolder(DemoModel.Folder);
        var text = string.Concat(Enumerable.Repeat("The bridge was built in 1901 and rebuilt later .\n", 20));
        var ids = tokenizer.Encode(text);
        var sequences = EvalSequences.FromText(text, tokenizer, 64);

        var covered = sequences.SelectMany(s => s.Ids).ToList();
        Assert.Equal(ids.Take(covered.Count), covered);
        Assert.InRange(ids.Count - covered.Count, 0, 1); // a last window of one token would predict nothing
        Assert.All(sequences, s => Assert.Equal(1, s.FirstScored));
        Assert.Equal(covered.Count - sequences.Count, sequences.Sum(s => s.ScoredCount));
        Assert.All(sequences.SkipLast(1), s => Assert.Equal(64, s.Ids.Count));
    }

    private static LikelihoodReport Evaluate(LoadedModel model, IReadOnlyList<EvalSequence> sequences, int batchSize = 8) =>
        LikelihoodEvaluator.Evaluate([new EvalModel("none", model.Model)], sequences, model.Config.EosTokenId, batchSize);
}

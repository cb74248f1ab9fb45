using ParaphraseService.Model.Gpt2;
using ParaphraseService.Model.GptJ;
using ParaphraseService.Model.Loading;
using ParaphraseService.Model.Lora.Peft;
using ParaphraseService.Model.Tokenization;
using ParaphraseService.Training.Datasets;
using ParaphraseService.Training.FineTuning;
using ParaphraseService.Training.Prompts;

namespace ParaphraseService.Training.Tests.FineTuning;

/// <summary>What a fine-tune checks before it starts: target modules, sequence lengths, settings at their extremes.</summary>
public class FineTuneChecksTests
{
    private static readonly Gpt2Tokenizer Tokenizer = Gpt2Tokenizer.BuiltIn();
    private static readonly AdapterTarget GptJ = GptJFamily.LoraTargets(DemoModel.Config with { LayerCount = 2 });

    [Theory]
    [InlineData("q_proj")]
    [InlineData("attn.q_proj")]
    [InlineData("transformer.h.1.mlp.fc_in")]
    [InlineData("all-linear")]
    [InlineData("ALL-LINEAR")]
    public void NamesThatSelectModulesOfTheBaseAreAccepted(string name) => Assert.Null(LoraTargets.Problem([name], GptJ));

    [Fact]
    public void NamesThatSelectNothingAreNamedWithTheValidNames()
    {
        var problem = LoraTargets.Problem(["q_proj", "c_attn", "proj"], GptJ)!;
        Assert.Contains("'c_attn', 'proj' match no module of the gptj base", problem);
        Assert.DoesNotContain("'q_proj'", problem);
        foreach (var valid in new[] { "q_proj", "k_proj", "v_proj", "out_proj", "fc_in", "fc_out", "all-linear" })
            Assert.Contains(valid, problem);
        // GPT-2's names are its own.
        var gpt2 = Gpt2Family.LoraTargets(new Gpt2Config { VocabSize = 100, MaxPositions = 16, HiddenSize = 8, LayerCount = 1, HeadCount = 2 });
        Assert.Null(LoraTargets.Problem(["c_attn"], gpt2));
        Assert.Contains("c_attn, c_proj, c_fc", LoraTargets.Problem(["q_proj"], gpt2));
    }

    [Fact]
    public void EmptyHugeAndBlankListsAreRefused()
    {
        Assert.Contains("at least one", LoraTargets.Problem([], GptJ));
        Assert.Contains("at most 256", LoraTargets.Problem([.. Enumerable.Repeat("q_proj", 10_000)], GptJ));
        Assert.Contains("must not be empty", LoraTargets.Problem(["q_proj", " "], GptJ));
        // Thousands of distinct wrong names: the message stays short.
        var many = LoraTargets.Problem([.. Enumerable.Range(0, 200).Select(i => "bad" + i + new string('x', 1000))], GptJ)!;
        Assert.Contains("and 190 more", many);
        Assert.True(many.Length < 1500, $"{many.Length} characters");
    }

    [Fact]
    public void AnExampleThatDoesNotFitIsRefusedNeverCut()
    {
        var template = PromptTemplate.FineTuneDefault;
        var pair = new ParaphrasePair("The meeting has been moved to Thursday afternoon.", "The meeting is now on Thursday afternoon.");
        var length = TrainingBatches.Length(pair, template, Tokenizer);
        var example = TrainingBatches.Tokenize(pair, template, Tokenizer, length);
        Assert.Equal(template.Render(pair.Source), Tokenizer.Decode(example.Prompt)); // the whole prompt, as served
        Assert.Equal(" " + pair.Target + "\n", Tokenizer.Decode(example.Target));
        var error = Assert.Throws<ArgumentException>(() => TrainingBatches.Tokenize(pair, template, Tokenizer, length - 1));
        Assert.Contains($"is {length} tokens", error.Message);
        Assert.Contains($"maximum sequence length of {length - 1}", error.Message);
    }

    [Fact]
    public void ATemplateThatLeavesNoRoomIsRefused()
    {
        Assert.Null(TrainingBatches.TemplateProblem(PromptTemplate.FineTuneDefault, Tokenizer, 16));
        // The few-shot prompt is about 100 tokens: nothing fits in 64.
        var problem = TrainingBatches.TemplateProblem(PromptTemplate.Default, Tokenizer, 64);
        Assert.NotNull(problem);
        Assert.Contains("the prompt template alone is", problem);
        Assert.Contains("maximum sequence length of 64", problem);
    }

    [Fact]
    public void PreparationDropsAndCountsPairsWhoseExampleIsTooLong()
    {
        var template = PromptTemplate.FineTuneDefault;
        List<ParaphrasePair> pairs =
        [
            new("a short one", "one that is short"),
            new(string.Join(' ', Enumerable.Repeat("long", 40)), "short target"),
            new("short source", string.Join(' ', Enumerable.Repeat("long", 40))),
            new("another short one", "a different short one"),
        ];
        var options = new DatasetPreparationOptions
        {
            EvalFraction = 0, MaxTokensPerExample = 32, ExampleTokenCounter = p => TrainingBatches.Length(p, template, Tokenizer),
        };
        var prepared = DatasetPreparation.Prepare(pairs, options);
        Assert.Equal(2, prepared.Summary.TooLongDropped);
        Assert.Equal(32, prepared.Summary.MaxTokensPerExample);
        Assert.All(prepared.Train, p => Assert.True(TrainingBatches.Length(p, template, Tokenizer) <= 32));

        var none = Assert.Throws<DatasetException>(() => DatasetPreparation.Prepare(pairs, options with { MaxTokensPerExample = 8 }));
        Assert.Contains("4 too long (over 8 tokens with the prompt", none.Message);
        Assert.Throws<ArgumentException>(() => DatasetPreparation.Prepare(pairs, new DatasetPreparationOptions { MaxTokensPerExample = 8 }));
    }

    [Fact]
    public void SettingsAtTheirExtremesAreRefusedByField()
    {
        static IEnumerable<string> Fields(LoraTrainingOptions o) => o.Problems().Select(p => p.Field);
        Assert.Empty(new LoraTrainingOptions().Problems());
        Assert.Equal(["alpha"], Fields(new LoraTrainingOptions { Alpha = double.NaN }));
        Assert.Equal(["alpha"], Fields(new LoraTrainingOptions { Alpha = double.PositiveInfinity }));
        Assert.Equal(["alpha"], Fields(new LoraTrainingOptions { Alpha = 1e308 }));
        Assert.Equal(["dropout"], Fields(new LoraTrainingOptions { Dropout = double.NaN }));
        Assert.Equal(["learningRate"], Fields(new LoraTrainingOptions { LearningRate = double.NaN }));
        Assert.Equal(["epochs"], Fields(new LoraTrainingOptions { Epochs = int.MaxValue }));
        Assert.Equal(["warmupSteps"], Fields(new LoraTrainingOptions { WarmupSteps = -1 }));
        Assert.Equal(["maxSteps"], Fields(new LoraTrainingOptions { MaxSteps = int.MaxValue }));
        Assert.Equal(["rank", "batchSize", "maxSequenceLength"], Fields(new LoraTrainingOptions { Rank = -1, BatchSize = 0, MaxSequenceLength = int.MinValue }));
        var settings = new FineTuneSettings { EarlyStoppingPatience = 2, BleuSamples = -1, CheckpointEverySteps = -5 };
        Assert.Equal(["earlyStoppingPatience", "checkpointEverySteps", "bleuSamples"], settings.Problems().Select(p => p.Field));
        var error = Assert.Throws<ArgumentException>(() => new LoraTrainingOptions { Rank = 0, Epochs = 0 }.Validate());
        Assert.Contains("rank must be 1-256 (got 0)", error.Message);
        Assert.Contains("epochs must be 1-10000 (got 0)", error.Message);
    }
}

using ParaphraseService.Model.GptJ;
using ParaphraseService.Model.Layers;
using ParaphraseService.Model.Loading;
using ParaphraseService.Model.Lora;
using ParaphraseService.Model.Tokenization;
using ParaphraseService.Training.Datasets;
using ParaphraseService.Training.Prompts;
using ParaphraseService.Training.FineTuning;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace ParaphraseService.Training.Tests.FineTuning;

[Collection(TrainingCollection.Name)]
public class LoraTrainingSessionTests(ITestOutputHelper output)
{
    private static readonly PromptTemplate Template = ReverseWords.Template;

    private static List<ParaphrasePair> Pairs(int count, int seed) => ReverseWords.Pairs(count, seed);

    private static (GptJForCausalLM Model, AdapterRegistry Registry) DemoShapedModel(Quantization quantization = Quantization.None,
        Int8Options? int8 = null, ScalarType dtype = ScalarType.Float32)
    {
        var config = DemoModel.Config with { LayerCount = 2, MaxPositions = 256 };
        using var random = new RandomCheckpoint(config, 5);
        using var weights = new ConfidentOutput(random);
        var model = ModelLoader.Build(config, weights,
            new LayerFactory(dtype, CPU, quantization, int8 ?? new Int8Options(Int8Kernel.Dequantize), new LoraRouting()), "demo-2");
        return (model, new AdapterRegistry(model, 2));
    }

    [Theory]
    [InlineData(Quantization.None)]
    [InlineData(Quantization.Int8)]
    public void ATinyModelLearnsASyntheticParaphraseMapping(Quantization quantization)
    {
        var (model, registry) = DemoShapedModel(quantization);
        using (model)
        using (registry)
        {
            var trainer = new LossEvaluator(model, Gpt2Tokenizer.BuiltIn(), Template);
            var train = Pairs(96, 1);
            var eval = Pairs(16, 2);
            var before = trainer.EvalLoss(eval, adapter: null);
            var steps = new List<TrainingStep>();
            var options = new LoraTrainingOptions { Rank = 8, Alpha = 16, TargetModules = null, LearningRate = 5e-3, BatchSize = 8, MaxSteps = 40, Epochs = 10, WarmupSteps = 4 };
            var adapter = TrainToEnd.Adapter(model, registry, Template, "reverse", train, options, steps.Add);
            var after = trainer.EvalLoss(eval, adapter);

            output.WriteLine($"{quantization}: eval loss {before:F3} -> {after:F3}; train loss {steps[0].Loss:F3} -> {steps[^1].Loss:F3}");
            Assert.Equal(40, steps.Count);
            Assert.True(after < 0.5 * before, $"eval loss {before} -> {after}");
            Assert.Same(adapter, registry.Get("reverse"));
            Assert.All(adapter.Matrices.Values, m => Assert.False(m.A.requires_grad)); // frozen again for serving
        }
    }

    [Fact]
    public void SameSeedSameAdapter()
    {
        float[] Run()
        {
            var (model, registry) = DemoShapedModel();
            using (model)
            using (registry)
            {
                var adapter = TrainToEnd.Adapter(model, registry, Template, "x", Pairs(32, 3), new LoraTrainingOptions { Rank = 4, MaxSteps = 5, BatchSize = 4, Dropout = 0.1, LearningRate = 1e-3 });
                return adapter.Matrices.OrderBy(m => m.Key).SelectMany(m => m.Value.B.data<float>().ToArray()).ToArray();
            }
        }
        var first = Run();
        Assert.Equal(first, Run());
        Assert.Contains(first, v => v != 0); // B really moved from zero
    }

    [Fact]
    public void LossCoversTargetTokensOnly()
    {
        var tokenizer = Gpt2Tokenizer.BuiltIn();
        var example = TrainingBatches.Tokenize(new ParaphrasePair("red cat", "cat red"), Template, tokenizer, 128);
        var (ids, mask, labels) = TrainingBatches.Collate([example, TrainingBatches.Tokenize(new ParaphrasePair("sun", "sun moon"), Template, tokenizer, 128)], 50256, CPU);
        var row = labels[0].data<long>().ToArray();
        Assert.All(row[..example.Prompt.Count], l => Assert.Equal(TrainingBatches.Ignore, l));
        Assert.Equal(example.Target.Select(t => (long)t), row[example.Prompt.Count..example.Length]);
        Assert.Equal(" cat red\n", tokenizer.Decode(example.Target));
        Assert.Equal(0, mask[1, ^1].item<long>()); // the shorter row is padded, and its padding is not learned
        Assert.Equal(TrainingBatches.Ignore, labels[1, ^1].item<long>());
        Assert.Throws<ArgumentException>(() => new LoraTrainingOptions { Rank = 0 }.Validate());
    }

    [Fact]
    public void ASessionRefusesAnExampleTooLongAndTargetNamesThatSelectNothing()
    {
        var (model, registry) = DemoShapedModel();
        using (model)
        using (registry)
        {
            List<ParaphrasePair> pairs = [new("red cat", "cat red"), new(string.Join(' ', Enumerable.Repeat("sun", 30)), "moon")];
            var tooLong = Assert.Throws<ArgumentException>(() =>
                new LoraTrainingSession(model, registry, Gpt2Tokenizer.BuiltIn(), Template, "x", pairs, new LoraTrainingOptions { MaxSequenceLength = 16 }));
            Assert.StartsWith("Pair 2: A training example is", tooLong.Message);
            var unknown = Assert.Throws<ArgumentException>(() => new LoraTrainingSession(model, registry, Gpt2Tokenizer.BuiltIn(), Template, "x",
                pairs[..1], new LoraTrainingOptions { TargetModules = ["q_proj", "query"] }));
            Assert.Contains("'query' matches no module of the gptj base", unknown.Message);
            // Neither left an adapter attached for training.
            using var ok = new LoraTrainingSession(model, registry, Gpt2Tokenizer.BuiltIn(), Template, "x", pairs[..1], new LoraTrainingOptions { Epochs = 10_000 });
            Assert.Equal(10_000, ok.TotalSteps);
        }
    }

    private static float[] Flatten(LoraAdapter adapter) =>
        adapter.Matrices.OrderBy(m => m.Key, StringComparer.Ordinal).SelectMany(m => m.Value.A.data<float>().ToArray().Concat(m.Value.B.data<float>().ToArray())).ToArray();

    private static float[] TrainSteps(LoraTrainingOptions options, int steps, Quantization quantization = Quantization.None, Int8Options? int8 = null)
    {
        var (model, registry) = DemoShapedModel(quantization, int8);
        using (model)
        using (registry)
        using (var session = new LoraTrainingSession(model, registry, Gpt2Tokenizer.BuiltIn(), Template, "x", Pairs(48, 4), options))
        {
            for (var i = 0; i < steps; i++) session.RunStep();
            return Flatten(session.Adapter);
        }
    }

    [Fact]
    public void GradientCheckpointingTakesTheSameSteps()
    {
        // Dropout on: the recomputation must draw the same masks as the first forward.
        var options = new LoraTrainingOptions { Rank = 4, TargetModules = null, BatchSize = 4, GradientAccumulation = 2, Dropout = 0.1, LearningRate = 1e-2, MaxSteps = 3 };
        var plain = TrainSteps(options with { GradientCheckpointing = false }, 3);
        var checkpointed = TrainSteps(options with { GradientCheckpointing = true }, 3);
        var largest = plain.Zip(checkpointed, (a, b) => Math.Abs(a - b)).Max();
        output.WriteLine($"largest difference after 3 steps: {largest:E2}");
        Assert.True(largest < 1e-5, $"checkpointed steps differ by {largest}");
        Assert.Contains(plain, v => v != 0);
    }

    [Fact]
    public void ABatchRunInOneExamplePassesTakesTheSameSteps()
    {
        var options = new LoraTrainingOptions { Rank = 4, TargetModules = null, BatchSize = 4, GradientAccumulation = 2, Dropout = 0, LearningRate = 1e-2, MaxSteps = 3 };
        var whole = TrainSteps(options, 3);
        var passes = TrainSteps(options with { MaxExamplesPerPass = 1 }, 3);
        // Equal up to float rounding (padding to other lengths reorders sums; Adam's first steps amplify tiny differences).
        var relative = Math.Sqrt(whole.Zip(passes, (a, b) => (double)(a - b) * (a - b)).Sum() / whole.Sum(v => (double)v * v));
        output.WriteLine($"one-example passes vs whole batches after 3 steps: relative L2 difference {relative:E2}");
        Assert.True(relative < 1e-4, $"passes differ by {relative}");
        Assert.Contains(whole, v => v != 0);
    }

    [Fact]
    public void AnFbgemmBaseTrainsThroughItsKeptMatricesLikeTheDequantizedOne()
    {
        // The fbgemm forward rounds activations to 8 bits per call, so its steps drift from the dequantize kernel's
        // (measured 6e-2 after 3 steps at this learning rate); a wrong gradient would give a difference near 1.
        var options = new LoraTrainingOptions { Rank = 4, TargetModules = null, BatchSize = 4, Dropout = 0, LearningRate = 1e-2, MaxSteps = 3 };
        var dequantized = TrainSteps(options, 3, Quantization.Int8, new Int8Options(Int8Kernel.Dequantize));
        var fbgemm = TrainSteps(options, 3, Quantization.Int8, new Int8Options(Int8Kernel.Fbgemm, KeepWeightForTraining: true));
        var difference = Math.Sqrt(dequantized.Zip(fbgemm, (a, b) => (double)(a - b) * (a - b)).Sum() / dequantized.Sum(v => (double)v * v));
        output.WriteLine($"fbgemm vs dequantize adapter after 3 steps, relative L2 {difference:E2}");
        Assert.True(difference < 0.15, $"relative difference {difference}");
        Assert.NotEqual(dequantized, fbgemm); // really a different kernel
    }

    [Fact]
    public void AResumedRunEqualsAnUninterruptedOne()
    {
        var options = new LoraTrainingOptions { Rank = 4, TargetModules = null, BatchSize = 4, GradientAccumulation = 2, Dropout = 0.1, LearningRate = 1e-2, Epochs = 2 };
        var pairs = Pairs(40, 6); // 5 steps per epoch: the resumed run crosses an epoch boundary
        var folder = Path.Combine(Path.GetTempPath(), "resume-" + Guid.NewGuid().ToString("N"));
        try
        {
            float[] uninterrupted;
            var (model, registry) = DemoShapedModel();
            using (model)
            using (registry)
            {
                using (var session = new LoraTrainingSession(model, registry, Gpt2Tokenizer.BuiltIn(), Template, "x", pairs, options))
                {
                    while (!session.IsComplete) session.RunStep();
                    Assert.Equal(10, session.Step);
                    uninterrupted = Flatten(session.Adapter);
                }
                using (var first = new LoraTrainingSession(model, registry, Gpt2Tokenizer.BuiltIn(), Template, "x", pairs, options))
                {
                    for (var i = 0; i < 4; i++) first.RunStep();
                    Assert.Null(first.RunMicroBatch()); // half a step in flight is not saved...
                    Assert.Throws<InvalidOperationException>(() => first.SaveCheckpoint(folder));
                    Assert.NotNull(first.RunMicroBatch());
                    first.SaveCheckpoint(folder); // ...whole steps are
                }
            }
            Assert.Equal(5, LoraTrainingSession.CheckpointStep(folder));

            // A new process: a fresh model and session, resumed from the checkpoint.
            var (model2, registry2) = DemoShapedModel();
            using (model2)
            using (registry2)
            using (var resumed = new LoraTrainingSession(model2, registry2, Gpt2Tokenizer.BuiltIn(), Template, "x", pairs, options, resumeFrom: folder))
            {
                Assert.Equal(5, resumed.Step);
                Assert.Equal(2, resumed.Epoch);
                while (!resumed.IsComplete) resumed.RunStep();
                var largest = uninterrupted.Zip(Flatten(resumed.Adapter), (a, b) => Math.Abs(a - b)).Max();
                output.WriteLine($"resumed vs uninterrupted, largest difference {largest:E2}");
                Assert.True(largest < 1e-6, $"resumed run differs by {largest}");
            }
        }
        finally
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public void MixedPrecisionABfloat16BaseTrainsFp32Adapters()
    {
        var (model, registry) = DemoShapedModel(dtype: ScalarType.BFloat16);
        using (model)
        using (registry)
        {
            var trainer = new LossEvaluator(model, Gpt2Tokenizer.BuiltIn(), Template);
            var eval = Pairs(16, 2);
            var before = trainer.EvalLoss(eval, adapter: null);
            var adapter = TrainToEnd.Adapter(model, registry, Template, "bf16", Pairs(64, 1), new LoraTrainingOptions { Rank = 8, Alpha = 16, TargetModules = null, LearningRate = 5e-3, BatchSize = 8, MaxSteps = 12, WarmupSteps = 2 });
            var after = trainer.EvalLoss(eval, adapter);
            output.WriteLine($"bfloat16 base: eval loss {before:F3} -> {after:F3}");
            Assert.All(adapter.Matrices.Values, m => Assert.Equal(ScalarType.Float32, m.A.dtype)); // adapters and AdamW state stay fp32
            Assert.True(after < 0.8 * before, $"eval loss {before} -> {after}");
        }
    }

    [Fact]
    public void EarlyStoppingEndsARunWhoseEvalLossStopsImproving()
    {
        var (model, registry) = DemoShapedModel();
        using (model)
        using (registry)
        {
            var data = DatasetPreparation.Prepare(Pairs(60, 7), new DatasetPreparationOptions { EvalFraction = 0.2 });
            // A learning rate too small to move the loss: every evaluation after the first fails to improve it.
            var settings = new FineTuneSettings
            {
                Training = new LoraTrainingOptions { Rank = 2, BatchSize = 4, LearningRate = 1e-9, MaxSteps = 30, Epochs = 10 },
                EvalEverySteps = 2, EarlyStoppingPatience = 2, CheckpointEverySteps = 0, BleuSamples = 2, BleuMaxNewTokens = 4,
            };
            using var run = new FineTuneRun(model, registry, Gpt2Tokenizer.BuiltIn(), Template, "early", data, settings);
            var events = run.Run().ToList();
            Assert.Equal(6, run.Step); // evaluations at steps 2, 4, 6: no better after 4 and 6
            Assert.Equal(1, run.Metrics["stopped_early"]);
            Assert.Equal([2, 4, 6], events.OfType<FineTuneEvent.Evaluated>().Where(e => !e.Base).Select(e => e.Step).Take(3));
            Assert.Single(events.OfType<FineTuneEvent.Scored>()); // still evaluated and scored at the end
            Assert.True(run.Metrics.ContainsKey("ibleu"));
        }
    }

    /// <summary>
    /// Random weights with an output layer 20x larger: at init std 0.02 the frozen lm_head cannot express a confident
    /// prediction (logits within a few units of each other, loss at least ~8 nats of 10.8), as a trained one can.
    /// </summary>
    private sealed class ConfidentOutput(ParaphraseService.Model.Checkpoints.ICheckpointSource inner) : ParaphraseService.Model.Checkpoints.ICheckpointSource
    {
        public IReadOnlyDictionary<string, ParaphraseService.Model.Checkpoints.CheckpointTensorInfo> Tensors => inner.Tensors;

        public Tensor Read(string name)
        {
            var tensor = inner.Read(name);
            return name == "lm_head.weight" ? tensor.mul_(20) : tensor;
        }

        public void Dispose() { }
    }
}

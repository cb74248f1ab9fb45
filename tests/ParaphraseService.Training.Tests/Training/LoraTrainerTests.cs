using ParaphraseService.Model.GptJ;
using ParaphraseService.Model.Layers;
using ParaphraseService.Model.Loading;
using ParaphraseService.Model.Lora;
using ParaphraseService.Model.Tokenization;
using ParaphraseService.Training.Datasets;
using ParaphraseService.Training.Prompts;
using ParaphraseService.Training.Training;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace ParaphraseService.Training.Tests.Training;

public class LoraTrainerTests(ITestOutputHelper output)
{
    private static readonly string[] Words = ["red", "blue", "green", "cat", "dog", "bird", "sun", "moon", "tree", "river"];
    private static readonly PromptTemplate Template = new("Source: {text}\nTarget:");

    /// <summary>A synthetic paraphrase mapping: the same three words in reverse order.</summary>
    private static List<ParaphrasePair> Pairs(int count, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ =>
        {
            var w = Enumerable.Range(0, 3).Select(_ => Words[random.Next(Words.Length)]).ToArray();
            return new ParaphrasePair(string.Join(' ', w), string.Join(' ', w.Reverse()));
        }).ToList();
    }

    private static (GptJForCausalLM Model, AdapterRegistry Registry) DemoShapedModel(Quantization quantization = Quantization.None)
    {
        var config = DemoModel.Config with { LayerCount = 2, MaxPositions = 256 };
        using var random = new RandomCheckpoint(config, 5);
        using var weights = new ConfidentOutput(random);
        var model = ModelLoader.Build(config, weights,
            new LayerFactory(ScalarType.Float32, CPU, quantization, new Int8Options(Int8Kernel.Dequantize), new LoraRouting()), "demo-2");
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
            var trainer = new LoraTrainer(model, registry, Gpt2Tokenizer.BuiltIn(), Template);
            var train = Pairs(96, 1);
            var eval = Pairs(16, 2);
            var before = trainer.EvalLoss(eval, adapter: null);
            var steps = new List<TrainingStep>();
            var options = new LoraTrainingOptions { Rank = 8, Alpha = 16, TargetModules = null, LearningRate = 5e-3, BatchSize = 8, MaxSteps = 40, Epochs = 10, WarmupSteps = 4 };
            var adapter = trainer.Train("reverse", train, options, steps.Add);
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
                var trainer = new LoraTrainer(model, registry, Gpt2Tokenizer.BuiltIn(), Template);
                var adapter = trainer.Train("x", Pairs(32, 3), new LoraTrainingOptions { Rank = 4, MaxSteps = 5, BatchSize = 4, Dropout = 0.1, LearningRate = 1e-3 });
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

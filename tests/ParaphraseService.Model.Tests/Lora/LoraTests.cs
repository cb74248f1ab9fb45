using ParaphraseService.Model.Checkpoints;
using ParaphraseService.Model.Core;
using ParaphraseService.Model.Generation;
using ParaphraseService.Model.GptJ;
using ParaphraseService.Model.Kernels;
using ParaphraseService.Model.Layers;
using ParaphraseService.Model.Loading;
using ParaphraseService.Model.Lora;
using ParaphraseService.Model.Tokenization;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Tests.Lora;

public class LoraTests
{
    private static readonly long[] Sequence = [5, 17, 42, 8, 91, 3, 60, 22];

    private static GptJForCausalLM LoraModel(Quantization quantization = Quantization.None, Int8Options? int8 = null)
    {
        using var weights = new RandomCheckpoint(TinyModels.Config, 7);
        return ModelLoader.Build(TinyModels.Config, weights,
            new LayerFactory(ScalarType.Float32, CPU, quantization, int8, new LoraRouting()), "tiny-lora");
    }

    private static Tensor Logits(GptJForCausalLM model, long[] ids, LoraAdapter? adapter = null)
    {
        using var noGrad = no_grad();
        return model.forward(new CausalLMInput(tensor(ids).unsqueeze(0), Adapters: adapter is null ? null : [adapter]));
    }

    /// <summary>An adapter with random, nonzero A and B on the given modules.</summary>
    private static LoraAdapter RandomAdapter(string name, IReadOnlyDictionary<string, (long In, long Out)> targets, long seed, int rank = 4, double scaling = 2.0)
    {
        var generator = new Generator((ulong)seed, CPU);
        var weights = targets.ToDictionary(t => t.Key, t => (randn([rank, t.Value.In], generator: generator) * 0.3f, randn([t.Value.Out, rank], generator: generator) * 0.3f));
        return LoraAdapter.FromWeights(name, scaling, 0, weights, CPU);
    }

    [Fact]
    public void RoutingListsEachAdapterOfAForwardOnceInTheOrderOfItsFirstRow()
    {
        var targets = new Dictionary<string, (long In, long Out)> { ["q_proj"] = (4, 4) };
        using var a = RandomAdapter("a", targets, seed: 1);
        using var b = RandomAdapter("b", targets, seed: 2);
        var routing = new LoraRouting();
        using (routing.Use([b, null, a, b, a]))
            Assert.Equal([b, a], routing.Adapters);
        Assert.Empty(routing.Adapters);
        using (routing.Use([null, null]))
        {
            Assert.Null(routing.Rows);
            Assert.Empty(routing.Adapters);
        }
    }

    [Fact]
    public void LoraCapableModelLoadsTheSameCheckpointKeysAndComputesTheSame()
    {
        using var plain = ModelLoader.LoadFolder(Fixtures.Get("gptj-tiny", "safetensors"), new ModelLoadOptions { Device = "cpu" });
        using var checkpoint = CheckpointFiles.Open(Fixtures.Get("gptj-tiny", "safetensors"));
        var config = GptJConfig.Load(Fixtures.Get("gptj-tiny", "safetensors", "config.json"));
        using var lora = ModelLoader.Build(config, checkpoint, new LayerFactory(ScalarType.Float32, CPU, Lora: new LoraRouting()), "lora");
        Assert.Contains(lora.named_parameters(), p => p.name == "transformer.h.0.attn.q_proj.base_layer.weight");
        using var ids = tensor(Sequence).unsqueeze(0);
        using var noGrad = no_grad();
        Assert.True(plain.Model.forward(new CausalLMInput(ids)).eq(lora.forward(new CausalLMInput(ids))).all().item<bool>());
    }

    [Fact]
    public void FreshAdapterChangesNothingUntilTrained()
    {
        using var model = LoraModel();
        using var registry = new AdapterRegistry(model, 4);
        var fresh = LoraAdapter.CreateNew("fresh", rank: 8, alpha: 16, useRsLora: false, dropout: 0.1, registry.Targets, CPU, seed: 1);
        registry.Load(fresh);
        Assert.Equal(2.0, fresh.Scaling);
        Assert.Equal(2 * 6, fresh.Modules.Count); // all-linear: q/k/v/out_proj, fc_in, fc_out in 2 layers
        using var without = Logits(model, Sequence);
        using var with = Logits(model, Sequence, fresh);
        Assert.True(with.eq(without).all().item<bool>());
    }

    [Fact]
    public void DeltaIsScaledBTimesAOfTheInput()
    {
        var routing = new LoraRouting();
        using var linear = nn.Linear(6, 5, hasBias: true);
        using var layer = new LoraLinear(linear, 6, 5, routing);
        var a = tensor(new float[,] { { 1, 0, 0, 0, 0, 2 }, { 0, 1, 1, 0, 0, 0 } });             // [r=2, in=6]
        var b = tensor(new float[,] { { 1, 0 }, { 0, 1 }, { 1, 1 }, { 0, 0 }, { -1, 3 } });      // [out=5, r=2]
        using var adapter = LoraAdapter.FromWeights("known", 0.5, 0, new Dictionary<string, (Tensor, Tensor)> { ["layer"] = (a, b) }, CPU);
        layer.Attach(adapter, adapter.Weights["layer"]);
        using var x = tensor(new float[,] { { 1, 2, 3, 4, 5, 6 } }).unsqueeze(0); // (1, 1, 6)

        using var noGrad = no_grad();
        using var baseOutput = linear.forward(x);
        using (routing.Use([adapter]))
        {
            using var y = layer.forward(x);
            // x·Aᵀ = [1 + 12, 2 + 3] = [13, 5]; ·Bᵀ = [13, 5, 18, 0, 2]; · 0.5
            var expected = baseOutput + tensor(new float[] { 6.5f, 2.5f, 9f, 0f, 1f });
            Assert.True(y.allclose(expected, rtol: 0, atol: 1e-5));
        }
        using var plainAgain = layer.forward(x);
        Assert.True(plainAgain.eq(baseOutput).all().item<bool>());
    }

    [Fact]
    public void OneLayerMixesRowsOfDifferentRanksAndScalingsAndRowsWhoseAdapterSkipsIt()
    {
        var routing = new LoraRouting();
        using var linear = nn.Linear(6, 5, hasBias: true);
        using var layer = new LoraLinear(linear, 6, 5, routing);
        var generator = new Generator(3, CPU);
        Tensor Random(params long[] shape) => randn(shape, generator: generator);
        // Per module: x at rank 3, scaling 0.5 here; y at rank 1, scaling 2 here; z has weights for another layer only.
        using var x = LoraAdapter.FromModules("x", 4, 9.0, 0, new Dictionary<string, (Tensor, Tensor, double)>
        {
            ["layer"] = (Random(3, 6), Random(5, 3), 0.5), ["other"] = (Random(4, 6), Random(5, 4), 9.0),
        }, CPU);
        using var y = LoraAdapter.FromModules("y", 1, 2.0, 0, new Dictionary<string, (Tensor, Tensor, double)> { ["layer"] = (Random(1, 6), Random(5, 1), 2.0) }, CPU);
        using var z = LoraAdapter.FromModules("z", 2, 1.0, 0, new Dictionary<string, (Tensor, Tensor, double)> { ["other"] = (Random(2, 6), Random(5, 2), 1.0) }, CPU);
        layer.Attach(x, x.Weights["layer"]);
        layer.Attach(y, y.Weights["layer"]);
        using var input = Random(5, 2, 6); // (B, T, in)
        LoraAdapter?[] rows = [x, y, null, z, x];

        using var noGrad = no_grad();
        using var baseOutput = linear.forward(input);
        using (routing.Use(rows))
        {
            using var output = layer.forward(input);
            for (var r = 0; r < rows.Length; r++)
            {
                // result = result + lora_B(lora_A(x)) * scaling, for the row's own adapter where it has this module
                using var expected = rows[r] is { } adapter && adapter.Weights.TryGetValue("layer", out var w)
                    ? baseOutput[r] + input[r].matmul(w.A.t()).matmul(w.B.t()) * w.Scaling
                    : baseOutput[r].alias();
                Assert.True(output[r].allclose(expected, rtol: 0, atol: 1e-5), $"row {r}");
            }
        }
        Assert.False(x.Weights["layer"].A.shape[0] == y.Weights["layer"].A.shape[0]); // the ranks do differ
        Assert.True(x.HasModuleSettings);
        Assert.False(y.HasModuleSettings);
    }

    [Theory]
    [InlineData(1, 1)]    // a decode step of one row: one thread
    [InlineData(5, 3)]    // a few positions per row
    [InlineData(5, 200)]  // a prompt: enough work for the kernel's threads
    public void CpuKernelEqualsLibTorchOpsRowByRow(int batch, int positions)
    {
        var routing = new LoraRouting();
        using var linear = new FloatLinear(40, 77, hasBias: true, CPU, ScalarType.Float32); // 77: two blocks of 32, one of 8 and a tail
        using var layer = new LoraLinear(linear, 40, 77, routing);
        layer.eval(); // as served: the kernel never runs in training mode (dropout)
        var generator = new Generator(11, CPU);
        // factors of a trained adapter's size, so the update is of the base output's size (a tolerance means the same for both)
        Tensor Random(params long[] shape) => randn(shape, generator: generator) * 0.3f;
        using var x = LoraAdapter.FromModules("x", 8, 16.0, 0, new Dictionary<string, (Tensor, Tensor, double)> { ["layer"] = (Random(8, 40), Random(77, 8), 2.0) }, CPU);
        using var y = LoraAdapter.FromModules("y", 3, 1.0, 0, new Dictionary<string, (Tensor, Tensor, double)> { ["layer"] = (Random(3, 40), Random(77, 3), 0.25) }, CPU);
        using var z = LoraAdapter.FromModules("z", 2, 1.0, 0, new Dictionary<string, (Tensor, Tensor, double)> { ["other"] = (Random(2, 40), Random(77, 2), 1.0) }, CPU);
        foreach (var adapter in new[] { x, y })
            layer.Attach(adapter, adapter.Weights["layer"]);
        LoraAdapter?[] pattern = [y, x, null, z, x];
        var rows = Enumerable.Range(0, batch).Select(r => pattern[r % pattern.Length]).ToArray();
        using var input = Random(batch, positions, 40);

        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        using (routing.Use(rows))
        {
            var fast = layer.forward(input);
            Tensor reference;
            using (CpuKernels.Suppress())
                reference = layer.forward(input);
            Assert.False(ReferenceEquals(fast, reference));
            Assert.True(fast.allclose(reference, rtol: 1e-5, atol: 1e-5), $"largest difference {(fast - reference).abs().max().item<float>()}");
            // rows without this layer's adapter are the base output bit for bit, and the rest really changed
            var baseOutput = linear.forward(input);
            for (var r = 0; r < batch; r++)
                Assert.Equal(rows[r] is null || rows[r] == z, fast[r].eq(baseOutput[r]).all().item<bool>());
        }
    }

    [Fact]
    public void ModulesOfMismatchedFactorsAreRefused()
    {
        var error = Assert.Throws<ArgumentException>(() => LoraAdapter.FromModules("bad", 2, 1, 0,
            new Dictionary<string, (Tensor, Tensor, double)> { ["m"] = (zeros(2, 6), zeros(5, 3), 1.0) }, CPU));
        Assert.Contains("module m: A [2, 6] and B [5, 3] are not [r, in] and [out, r]", error.Message);
        Assert.Throws<ArgumentException>(() => LoraAdapter.FromModules("nan", 2, 1, 0,
            new Dictionary<string, (Tensor, Tensor, double)> { ["m"] = (zeros(2, 6), zeros(5, 2), double.NaN) }, CPU));
    }

    [Theory]
    [InlineData(Quantization.None, Int8Kernel.Auto)]
    [InlineData(Quantization.Int8, Int8Kernel.Dequantize)]
    public void MixedBatchRowsEqualEachRowRunAloneWithItsAdapter(Quantization quantization, Int8Kernel kernel)
    {
        using var model = LoraModel(quantization, new Int8Options(kernel));
        using var registry = new AdapterRegistry(model, 4);
        var attention = registry.Targets.Where(t => t.Key.Contains(".attn.")).ToDictionary(t => t.Key, t => t.Value);
        var mlp = registry.Targets.Where(t => t.Key.Contains(".mlp.")).ToDictionary(t => t.Key, t => t.Value);
        registry.Load(RandomAdapter("a", attention, 1));
        registry.Load(RandomAdapter("b", mlp, 2, rank: 16));
        LoraAdapter?[] assignment = [registry.Get("a"), null, registry.Get("b"), registry.Get("a")];

        var ids = new long[4, Sequence.Length];
        for (var r = 0; r < 4; r++)
            for (var t = 0; t < Sequence.Length; t++)
                ids[r, t] = Sequence[(t + r) % Sequence.Length];
        using var noGrad = no_grad();
        using var batch = model.forward(new CausalLMInput(tensor(ids), Adapters: assignment));
        for (var r = 0; r < 4; r++)
        {
            var row = Enumerable.Range(0, Sequence.Length).Select(t => ids[r, t]).ToArray();
            using var alone = Logits(model, row, assignment[r]);
            Assert.True(alone[0].allclose(batch[r], rtol: 0, atol: 1e-5), $"row {r}");
        }
        using var baseOnly = Logits(model, Enumerable.Range(0, Sequence.Length).Select(t => ids[0, t]).ToArray());
        Assert.False(baseOnly[0].allclose(batch[0], rtol: 0, atol: 1e-3)); // the adapters do change the output
    }

    [Fact]
    public void RegistryKeepsAtMostTheCapUnloadingTheLeastRecentlyUsed()
    {
        using var model = LoraModel();
        using var registry = new AdapterRegistry(model, maxResident: 2);
        var targets = registry.Targets.Where(t => t.Key.EndsWith("q_proj", StringComparison.Ordinal)).ToDictionary(t => t.Key, t => t.Value);
        registry.Load(RandomAdapter("one", targets, 1));
        registry.Load(RandomAdapter("two", targets, 2));
        Assert.NotNull(registry.Get("one")); // "two" is now the least recently used
        var evicted = registry.Load(RandomAdapter("three", targets, 3));
        Assert.Equal(["two"], evicted);
        Assert.Equal(["one", "three"], registry.List().Select(a => a.Name));
        // rank 4 on two 32x32 q_proj layers, fp32: 2 x 4 x (32 + 32) x 4 bytes
        Assert.Equal(2 * 2 * 4 * (32 + 32) * 4, registry.TotalBytes);

        using var withOne = Logits(model, Sequence, registry.Get("one"));
        var one = registry.Get("one")!;
        Assert.True(registry.Unload("one"));
        using var baseOnly = Logits(model, Sequence);
        using var plain = TinyModels.Create();
        Assert.True(baseOnly.allclose(TinyModels.Logits(plain, Sequence), rtol: 0, atol: 1e-6)); // detached everywhere
        Assert.False(withOne.allclose(baseOnly, rtol: 0, atol: 1e-4));
        Assert.False(registry.Unload("one"));
    }

    [Fact]
    public void AdaptersForModulesTheModelLacksAreRefused()
    {
        using var model = LoraModel();
        using var registry = new AdapterRegistry(model, 2);
        var error = Assert.Throws<ArgumentException>(() => registry.Load(RandomAdapter("bad", new Dictionary<string, (long, long)>
        {
            ["transformer.h.9.attn.q_proj"] = (32, 32),
            ["lm_head"] = (32, 96),
        }, 1)));
        Assert.Contains("transformer.h.9.attn.q_proj", error.Message);
        Assert.Contains("lm_head", error.Message);
        Assert.Throws<InvalidOperationException>(() => Logits(TinyModels.Create(), Sequence, RandomAdapter("x", registry.Targets, 1)));
    }

    [Fact]
    public void GenerationWithMixedAdaptersEqualsEachRequestAlone()
    {
        using var model = LoraModel();
        using var registry = new AdapterRegistry(model, 4);
        registry.Load(RandomAdapter("a", registry.Targets, 5));
        registry.Load(RandomAdapter("b", registry.Targets, 6, rank: 2));
        var generator = new TextGenerator(model, Gpt2Tokenizer.BuiltIn());
        var options = new GenerationOptions { Greedy = true, MaxNewTokens = 10, EosTokenId = -1 };
        IReadOnlyList<int>[] prompts = [[5, 17, 42], [9, 9, 9, 9], [3]];
        LoraAdapter?[] adapters = [registry.Get("a"), registry.Get("b"), null];

        var batch = generator.Generate(prompts, [options, options, options], adapters: adapters);
        for (var r = 0; r < 3; r++)
            Assert.Equal(generator.Generate(prompts[r], options, adapter: adapters[r]).GeneratedIds, batch[r].GeneratedIds);
        Assert.NotEqual(generator.Generate(prompts[0], options).GeneratedIds, batch[0].GeneratedIds);
    }
}

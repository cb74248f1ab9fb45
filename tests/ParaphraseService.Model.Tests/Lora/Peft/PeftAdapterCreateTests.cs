using ParaphraseService.Model.Lora.Peft;
using ParaphraseService.Model.Tests.Checkpoints;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Tests.Lora.Peft;

/// <summary>Adapters built from weights in memory, as a fine-tuning run makes them.</summary>
public sealed class PeftAdapterCreateTests : IDisposable
{
    private readonly TempFolder _temp = new();

    public void Dispose() => _temp.Dispose();

    private static PeftLoraConfig MlpConfig => new()
    {
        R = 2,
        LoraAlpha = 4,
        TargetModules = PeftTargetModules.FromNames(["fc_in", "fc_out"]),
        BaseModelNameOrPath = "tiny",
    };

    [Fact]
    public void CopiesTheCallersTensorsToFloat32()
    {
        var trained = Trained(MlpConfig, ScalarType.BFloat16);
        try
        {
            using var adapter = PeftAdapter.Create("mlp", MlpConfig, trained, PeftFixtures.Target);

            Assert.Equal(trained.Keys.Order(), adapter.Modules.Keys);
            foreach (var (module, weights) in adapter.Modules)
            {
                Assert.Equal(ScalarType.Float32, weights.A.dtype);
                using var expectedA = trained[module].A.to_type(ScalarType.Float32);
                TestTensors.AssertSame(expectedA, weights.A, module);
            }
            // The adapter owns copies: the caller's tensors survive it.
            adapter.Dispose();
            Assert.False(trained.Values.First().A.IsInvalid);
        }
        finally
        {
            Dispose(trained);
        }
    }

    [Fact]
    public void Float32WeightsAreCopiedToo()
    {
        var trained = Trained(MlpConfig, ScalarType.Float32);
        try
        {
            using var adapter = PeftAdapter.Create("mlp", MlpConfig, trained, PeftFixtures.Target);
            var (module, weights) = trained.First();
            using var before = adapter.Modules[module].B.clone();

            weights.B.fill_(0);  // the trainer keeps training

            TestTensors.AssertSame(before, adapter.Modules[module].B, module);
        }
        finally
        {
            Dispose(trained);
        }
    }

    [Fact]
    public void ACreatedAdapterSavesAndLoads()
    {
        var trained = Trained(MlpConfig, ScalarType.Float32);
        try
        {
            var metadata = new AdapterMetadata { Origin = AdapterOrigin.FineTune, Created = DateTimeOffset.UtcNow, PromptTemplate = "{text}" };
            using var adapter = PeftAdapter.Create("mlp", MlpConfig, trained, PeftFixtures.Target, metadata);
            var folder = _temp.File("mlp");

            PeftAdapterFiles.Save(folder, adapter);
            using var loaded = PeftAdapterFiles.Load(folder, PeftFixtures.Target);

            Assert.Equal("mlp", loaded.Name);
            Assert.Equal(MlpConfig, loaded.Config);
            Assert.Equal(metadata, loaded.Metadata);
            foreach (var (module, weights) in trained)
            {
                TestTensors.AssertSame(weights.A, loaded.Modules[module].A, module);
                TestTensors.AssertSame(weights.B, loaded.Modules[module].B, module);
            }
        }
        finally
        {
            Dispose(trained);
        }
    }

    [Fact]
    public void WeightsThatDoNotFitAreRefusedAsWhenLoading()
    {
        var trained = Trained(MlpConfig with { R = 3 }, ScalarType.Float32);
        try
        {
            var error = Assert.Throws<AdapterValidationException>(() => PeftAdapter.Create("mlp", MlpConfig, trained, PeftFixtures.Target));

            Assert.Equal("adapter 'mlp'", error.Path);
            Assert.Contains("shapes that do not match r = 2", error.Message);
        }
        finally
        {
            Dispose(trained);
        }
    }

    [Fact]
    public void UnsupportedConfigsAreRefusedAsWhenLoading()
    {
        var trained = Trained(MlpConfig, ScalarType.Float32);
        try
        {
            var error = Assert.Throws<AdapterValidationException>(() =>
                PeftAdapter.Create("mlp", MlpConfig with { UseDora = true, TaskType = "SEQ_CLS" }, trained, PeftFixtures.Target));

            Assert.Equal(2, error.Problems.Count);
        }
        finally
        {
            Dispose(trained);
        }
    }

    /// <summary>Random factors for every module the config selects, as a trainer would hold them.</summary>
    private static Dictionary<string, LoraWeights> Trained(PeftLoraConfig config, ScalarType dtype)
    {
        using var generator = new TorchSharp.torch.Generator(5);
        return PeftFixtures.Target.Modules
            .Where(m => config.TargetModules!.Matches(m.Key))
            .ToDictionary(m => m.Key, m => new LoraWeights(
                randn([config.R, m.Value.In], generator: generator).to_type(dtype),
                randn([m.Value.Out, config.R], generator: generator).to_type(dtype)));
    }

    private static void Dispose(Dictionary<string, LoraWeights> weights)
    {
        foreach (var (a, b) in weights.Values)
        {
            a.Dispose();
            b.Dispose();
        }
    }
}

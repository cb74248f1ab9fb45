using ParaphraseService.Model.Checkpoints;
using ParaphraseService.Model.GptJ;
using ParaphraseService.Model.Layers;
using ParaphraseService.Model.Loading;
using ParaphraseService.Model.Lora;
using static TorchSharp.torch;

namespace ParaphraseService.Training.Tests.FineTuning;

/// <summary>When a serving int8 model holds the matrices training needs: derived layer by layer before the first job, released after the last.</summary>
public class Int8TrainingMatrixScheduleTests
{
    private static readonly GptJConfig Config = DemoModel.Config with { LayerCount = 2, MaxPositions = 64 };

    /// <summary>A model as the service serves it: fbgemm int8 layers without their int8 matrices.</summary>
    private static GptJForCausalLM Served(Quantization quantization = Quantization.Int8)
    {
        using var weights = new RandomCheckpoint(Config, 3);
        return ModelLoader.Build(Config, weights,
            new LayerFactory(ScalarType.Float32, CPU, quantization, new Int8Options(Int8Kernel.Fbgemm), new LoraRouting()), "t");
    }

    /// <summary>Opens the model's checkpoint, counting opens and disposals.</summary>
    private sealed class Checkpoints(GptJConfig config)
    {
        public int Opened { get; private set; }
        public int Open { get; private set; }

        public ICheckpointSource OpenOne()
        {
            Opened++;
            Open++;
            return new Counted(new RandomCheckpoint(config, 3), () => Open--);
        }

        private sealed class Counted(ICheckpointSource inner, Action disposed) : ICheckpointSource
        {
            public IReadOnlyDictionary<string, CheckpointTensorInfo> Tensors => inner.Tensors;
            public Tensor Read(string name) => inner.Read(name);
            public void Dispose()
            {
                inner.Dispose();
                disposed();
            }
        }
    }

    [Fact]
    public void MatricesAreDerivedOneLayerPerCallBeforeTheFirstJobAndReleasedWhenNoJobIsLeft()
    {
        using var model = Served();
        var checkpoints = new Checkpoints(Config);
        using var schedule = new Int8TrainingMatrixSchedule(model, checkpoints.OpenOne);
        var layers = schedule.LayersMissing;
        Assert.True(layers > 2);

        // No job waiting: nothing is derived, nothing opened.
        Assert.Equal(Int8TrainingPreparation.Ready, schedule.BeforeTraining(jobsRunning: false, jobsWaiting: false));
        Assert.Equal(layers, schedule.LayersMissing);
        Assert.Equal(0, checkpoints.Opened);

        // A job waits: one layer per call, the checkpoint opened once and closed when the last layer is done.
        Assert.Equal(Int8TrainingPreparation.Started, schedule.BeforeTraining(false, true));
        Assert.Equal(layers - 1, schedule.LayersMissing);
        for (var left = layers - 2; left >= 0; left--)
        {
            Assert.Equal(Int8TrainingPreparation.Derived, schedule.BeforeTraining(false, true));
            Assert.Equal(left, schedule.LayersMissing);
        }
        Assert.Equal(1, checkpoints.Open);
        Assert.Equal(Int8TrainingPreparation.Ready, schedule.BeforeTraining(false, true));
        Assert.Equal((1, 0), (checkpoints.Opened, checkpoints.Open));

        // While jobs are left nothing is released; once none is, everything.
        Assert.Equal(Int8TrainingPreparation.Ready, schedule.BeforeTraining(jobsRunning: true, jobsWaiting: true));
        Assert.Equal(0, schedule.AfterTraining(jobsLeft: true));
        Assert.Equal(0, schedule.LayersMissing);
        Assert.Equal(layers, schedule.AfterTraining(jobsLeft: false));
        Assert.Equal(layers, schedule.LayersMissing);
        Assert.Equal(0, schedule.AfterTraining(jobsLeft: false));
    }

    [Fact]
    public void JobsThatAllEndBeforeStartingStillGetTheMatricesReleased()
    {
        using var model = Served();
        var checkpoints = new Checkpoints(Config);
        using var schedule = new Int8TrainingMatrixSchedule(model, checkpoints.OpenOne);
        var layers = schedule.LayersMissing;
        schedule.BeforeTraining(false, true);
        schedule.BeforeTraining(false, true);
        // The waiting job was cancelled half way through the preparation.
        Assert.Equal(2, schedule.AfterTraining(jobsLeft: false));
        Assert.Equal(layers, schedule.LayersMissing);
        Assert.Equal(0, checkpoints.Open);
    }

    [Fact]
    public void ACheckpointThatChangedFailsWithAMessageAndLeavesNothingDerived()
    {
        using var model = Served();
        var changed = Config with { HiddenSize = 64, HeadCount = 4 };
        var opened = 0;
        using var schedule = new Int8TrainingMatrixSchedule(model, () =>
        {
            opened++;
            return new RandomCheckpoint(changed, 3);
        });
        var layers = schedule.LayersMissing;
        var error = Assert.Throws<Int8TrainingMatricesException>(() => schedule.BeforeTraining(false, true));
        Assert.True(error.Message.Contains(".weight") && error.Message.Contains("changed since loading"), error.Message);
        Assert.Equal(layers, schedule.LayersMissing);
        // The next call starts over (the next job may find the checkpoint restored).
        Assert.Throws<Int8TrainingMatricesException>(() => schedule.BeforeTraining(false, true));
        Assert.Equal(2, opened);
    }

    [Fact]
    public void WithoutACheckpointTheMatricesCannotBeDerived()
    {
        using var model = Served();
        using var schedule = new Int8TrainingMatrixSchedule(model, openCheckpoint: null);
        var error = Assert.Throws<Int8TrainingMatricesException>(() => schedule.BeforeTraining(false, true));
        Assert.Contains("no checkpoint", error.Message);
    }

    [Fact]
    public void AFullPrecisionModelNeedsNothing()
    {
        using var model = Served(Quantization.None);
        using var schedule = new Int8TrainingMatrixSchedule(model, () => throw new InvalidOperationException("never opened"));
        Assert.Equal(0, schedule.LayersMissing);
        Assert.Equal(Int8TrainingPreparation.Ready, schedule.BeforeTraining(false, true));
        Assert.Equal(0, schedule.AfterTraining(false));
    }
}

using System.Text.Json;
using ParaphraseService.Model.Layers;
using ParaphraseService.Model.Loading;

namespace ParaphraseService.Training.Tests.Evaluation;

/// <summary>
/// The demo model as tests load it, and the figures the PyTorch script measured on it
/// (tests/fixtures/demo-model/reference.json, written by tests/fixtures/make_demo_model.py).
/// </summary>
internal static class DemoModelReference
{
    public static string Folder(params string[] parts) => Fixtures.Get(["demo-model", .. parts]);

    public static JsonElement Json { get; } = JsonDocument.Parse(File.ReadAllText(Folder("reference.json"))).RootElement;

    public static LoadedModel Load(Quantization quantization = Quantization.None, Int8Kernel kernel = Int8Kernel.Auto, int adapters = 0) =>
        DemoModel.Load(new ModelLoadOptions
        {
            Device = "cpu",
            Quantization = quantization.ToString().ToLowerInvariant(),
            Int8 = Int8Options.Default with { Kernel = kernel },
            MaxResidentAdapters = adapters,
        });
}

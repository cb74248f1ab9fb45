using System.Text.Json.Nodes;
using ParaphraseService.Model.Checkpoints;
using ParaphraseService.Model.GptJ;
using ParaphraseService.Model.Lora.Peft;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Tests.Lora.Peft;

/// <summary>The adapters in tests/fixtures/peft (see make_peft_fixtures.py) and ways to make broken copies of them.</summary>
internal static class PeftFixtures
{
    /// <summary>PEFT's name for the weights file, spelled out so a changed constant in the code under test shows.</summary>
    public const string WeightsFile = "adapter_model.safetensors";

    /// <summary>make_peft_fixtures.py's MODULES: the index is part of each tensor's seed.</summary>
    public static readonly string[] ModuleNames = ["attn.q_proj", "attn.k_proj", "attn.v_proj", "attn.out_proj", "mlp.fc_in", "mlp.fc_out"];

    public static GptJConfig TinyConfig { get; } = GptJConfig.Load(Fixtures.Get("gptj-tiny", "safetensors", "config.json"));

    /// <summary>The tiny GPT-J the fixtures were made for: n_embd 64, 2 layers, MLP 256.</summary>
    public static AdapterTarget Target { get; } = GptJFamily.LoraTargets(TinyConfig);

    public static string Folder(string name) => Fixtures.Get("peft", name);

    /// <summary>values() of make_peft_fixtures.py for layer, module (a <see cref="ModuleNames"/> entry) and factor.</summary>
    public static Tensor Values(int layer, string module, bool isA, params long[] shape)
    {
        var seed = 100 * layer + 10 * Array.IndexOf(ModuleNames, module) + (isA ? 0 : 1);
        using var scope = NewDisposeScope();
        var count = shape.Aggregate(1L, (a, b) => a * b);
        var values = arange(count, ScalarType.Int64).mul(37).add(11 * seed).remainder(101).sub(50).to(ScalarType.Float32).div(128);
        return values.reshape(shape).MoveToOuterDisposeScope();
    }

    /// <summary>Expected lora_A / lora_B of a fixture module path such as "transformer.h.1.mlp.fc_in", at rank r.</summary>
    public static (Tensor A, Tensor B) Expected(string modulePath, long r)
    {
        var layer = int.Parse(modulePath.Split('.')[2]);
        var module = string.Join('.', modulePath.Split('.')[3..]);
        var (fanIn, fanOut) = Target.Modules[modulePath];
        return (Values(layer, module, true, r, fanIn), Values(layer, module, false, fanOut, r));
    }

    /// <summary>Copies a fixture folder to <paramref name="destination"/>.</summary>
    public static string Copy(string fixture, string destination)
    {
        Directory.CreateDirectory(destination);
        foreach (var file in Directory.EnumerateFiles(Folder(fixture)))
        {
            File.Copy(file, Path.Combine(destination, Path.GetFileName(file)));
        }
        return destination;
    }

    public static JsonObject ReadConfig(string folder) =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(folder, PeftLoraConfig.FileName)))!.AsObject();

    /// <summary>Changes fields of the folder's adapter_config.json.</summary>
    public static void EditConfig(string folder, Action<JsonObject> edit)
    {
        var config = ReadConfig(folder);
        edit(config);
        File.WriteAllText(Path.Combine(folder, PeftLoraConfig.FileName), config.ToJsonString());
    }

    /// <summary>Reads every tensor of the folder's adapter_model.safetensors (caller disposes).</summary>
    public static Dictionary<string, Tensor> ReadTensors(string folder)
    {
        using var reader = new SafetensorsReader(Path.Combine(folder, WeightsFile));
        return reader.Tensors.Keys.ToDictionary(k => k, reader.Read);
    }

    /// <summary>Rewrites the folder's adapter_model.safetensors after <paramref name="edit"/> changed the tensors.</summary>
    public static void EditTensors(string folder, Action<Dictionary<string, Tensor>> edit)
    {
        var tensors = ReadTensors(folder);
        try
        {
            edit(tensors);
            SafetensorsWriter.Write(Path.Combine(folder, WeightsFile), tensors,
                new Dictionary<string, string> { ["format"] = "pt" });
        }
        finally
        {
            foreach (var tensor in tensors.Values) tensor.Dispose();
        }
    }

    /// <summary>Puts <paramref name="tensor"/> under <paramref name="key"/>, disposing what was there.</summary>
    public static void Replace(Dictionary<string, Tensor> tensors, string key, Tensor tensor)
    {
        if (tensors.Remove(key, out var old)) old.Dispose();
        tensors[key] = tensor;
    }

    public static void Remove(Dictionary<string, Tensor> tensors, string key)
    {
        Assert.True(tensors.Remove(key, out var old), $"no tensor {key}");
        old.Dispose();
    }

    public static string Key(string module, string factor) => $"base_model.model.{module}.{factor}.weight";
}

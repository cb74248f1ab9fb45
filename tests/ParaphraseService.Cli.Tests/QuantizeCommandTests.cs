using ParaphraseService.Model.Checkpoints;
using ParaphraseService.Model.Tests;

namespace ParaphraseService.Cli.Tests;

public sealed class QuantizeCommandTests : IDisposable
{
    private readonly string _temp = Directory.CreateTempSubdirectory("quantize-cli-").FullName;

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    [Fact]
    public async Task SourceMissingATensorFailsAndWritesNothing()
    {
        // It exited 0 and wrote a checkpoint without the tensor.
        var source = Path.Combine(_temp, "source");
        Directory.CreateDirectory(source);
        var fixture = Fixtures.Get("gptj-tiny", "safetensors");
        File.Copy(Path.Combine(fixture, "config.json"), Path.Combine(source, "config.json"));
        using (var reader = new SafetensorsReader(Path.Combine(fixture, "model.safetensors")))
            SafetensorsWriter.Write(Path.Combine(source, "model.safetensors"),
                reader.Tensors.Values.Where(i => i.Name != "transformer.h.0.attn.q_proj.weight").ToList(), info => reader.Read(info.Name));
        var output = Path.Combine(_temp, "int8");

        var run = await CliRunner.RunAsync("quantize", "--model", source, "--out", output);

        Assert.Equal(1, run.ExitCode);
        Assert.Contains($"error: {source} does not match the model: missing 1 tensor(s): transformer.h.0.attn.q_proj.weight", run.StandardError);
        Assert.False(Directory.Exists(output));
    }
}

using ParaphraseService.Model.Checkpoints;
using ParaphraseService.Model.Loading;

namespace ParaphraseService.Model.Tests.Loading;

/// <summary>
/// A model folder with a named pipe where a file should be: the load is refused at once, naming the file, where opening
/// the pipe waited for a writer forever.
/// </summary>
public sealed class NamedPipeInModelFolderTests : IDisposable
{
    private static readonly ModelLoadOptions Cpu = new() { Device = "cpu" };
    private readonly string _folder = Directory.CreateTempSubdirectory("gptj-pipe-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [LinuxTheory]
    [InlineData("safetensors", "config.json", typeof(InvalidDataException))]
    [InlineData("safetensors", "model.safetensors", typeof(CheckpointException))]
    [InlineData("safetensors", "tokenizer.json", typeof(InvalidDataException))]
    [InlineData("bin", "pytorch_model.bin", typeof(CheckpointException))]
    [InlineData("sharded-safetensors", "model.safetensors.index.json", typeof(CheckpointException))]
    [InlineData("sharded-safetensors", "model-00002-of-00002.safetensors", typeof(CheckpointException))]
    [InlineData("sharded-bin", "pytorch_model.bin.index.json", typeof(CheckpointException))]
    [InlineData("sharded-bin", "pytorch_model-00001-of-00002.bin", typeof(CheckpointException))]
    public async Task ANamedPipeIsRefusedWithItsPath(string fixture, string file, Type expected)
    {
        foreach (var source in Directory.GetFiles(Fixtures.Get("gptj-tiny", fixture)))
            File.Copy(source, Path.Combine(_folder, Path.GetFileName(source)));
        var pipe = Path.Combine(_folder, file);
        NamedPipes.Create(pipe);

        var error = await NamedPipes.RefusedAsync<Exception>(() => ModelLoader.LoadFolder(_folder, Cpu).Dispose());

        Assert.IsType(expected, error);
        Assert.Contains($"{pipe}: not a regular file but a named pipe (FIFO)", error.Message, StringComparison.Ordinal);
    }
}

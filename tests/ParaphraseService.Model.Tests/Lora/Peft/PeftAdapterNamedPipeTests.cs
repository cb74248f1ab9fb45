using ParaphraseService.Model.Lora.Peft;
using ParaphraseService.Model.Tests.Checkpoints;

namespace ParaphraseService.Model.Tests.Lora.Peft;

/// <summary>
/// An adapter folder with a named pipe where a file should be: refused at once, naming the file, where opening the pipe
/// waited for a writer forever.
/// </summary>
public sealed class PeftAdapterNamedPipeTests : IDisposable
{
    private readonly TempFolder _temp = new();

    public void Dispose() => _temp.Dispose();

    [LinuxTheory]
    [InlineData("q-v", PeftLoraConfig.FileName)]
    [InlineData("q-v", PeftAdapterFiles.SafetensorsFileName)]
    [InlineData("q-v-bin", PeftAdapterFiles.LegacyBinFileName)]
    [InlineData("all-linear-rslora", AdapterMetadata.FileName)]
    public async Task ANamedPipeIsRefusedWithItsName(string fixture, string file)
    {
        var folder = PeftFixtures.Copy(fixture, _temp.File(fixture));
        NamedPipes.Create(Path.Combine(folder, file));

        var error = await NamedPipes.RefusedAsync<AdapterValidationException>(() => PeftAdapterFiles.Load(folder, PeftFixtures.Target).Dispose());

        Assert.Equal(folder, error.Path);
        Assert.Contains($"{file}: not a regular file but a named pipe (FIFO)", error.Message, StringComparison.Ordinal);
    }

    [LinuxTheory]
    [InlineData(PeftLoraConfig.FileName)]
    [InlineData(AdapterMetadata.FileName)]
    public async Task ANamedPipeReadAsOneFileIsRefusedWithItsPath(string file)
    {
        var pipe = _temp.File(file);
        NamedPipes.Create(pipe);

        var error = await NamedPipes.RefusedAsync<AdapterValidationException>(() =>
        {
            if (file == PeftLoraConfig.FileName)
                PeftLoraConfig.Load(pipe);
            else
                AdapterMetadata.Load(pipe);
        });

        Assert.Equal(pipe, error.Path);
        Assert.Contains("not a regular file but a named pipe (FIFO)", error.Message, StringComparison.Ordinal);
    }
}

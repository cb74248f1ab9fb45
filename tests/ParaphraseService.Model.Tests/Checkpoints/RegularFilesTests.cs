using ParaphraseService.Model.Checkpoints;

namespace ParaphraseService.Model.Tests.Checkpoints;

/// <summary>What counts as a file that may be opened: real files, links to them, and nothing that could block a read.</summary>
public sealed class RegularFilesTests : IDisposable
{
    private readonly TempFolder _temp = new();

    public void Dispose() => _temp.Dispose();

    [LinuxFact]
    public void ANamedPipeIsRefusedAndSoIsALinkToOne()
    {
        NamedPipes.Create(_temp.File("pipe"));
        File.CreateSymbolicLink(_temp.File("link"), _temp.File("pipe"));

        Assert.Equal("not a regular file but a named pipe (FIFO)", RegularFiles.Problem(_temp.File("pipe")));
        Assert.Equal("not a regular file but a named pipe (FIFO)", RegularFiles.Problem(_temp.File("link")));
    }

    [LinuxFact]
    public void ADeviceIsRefused() =>
        Assert.Equal("not a regular file but a character device", RegularFiles.Problem("/dev/null"));

    [LinuxFact]
    public void AFileALinkToOneAMissingPathAndAFolderAreLeftToTheCaller()
    {
        File.WriteAllText(_temp.File("config.json"), "{}");
        File.CreateSymbolicLink(_temp.File("link"), _temp.File("config.json"));
        Directory.CreateDirectory(_temp.File("folder"));

        Assert.Null(RegularFiles.Problem(_temp.File("config.json")));
        Assert.Null(RegularFiles.Problem(_temp.File("link")));
        Assert.Null(RegularFiles.Problem(_temp.File("missing.json")));
        Assert.Null(RegularFiles.Problem(_temp.File("folder")));
    }
}

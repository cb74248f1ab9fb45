namespace ParaphraseService.Model.Tests.Checkpoints;

/// <summary>Locates committed fixtures from the repository root, wherever the test assembly was built.</summary>
internal static class TestPaths
{
    private static readonly Lazy<string> Root = new(FindRepositoryRoot);

    public static string RepositoryRoot => Root.Value;

    /// <summary>A file under <c>tests/fixtures/checkpoint-formats</c>.</summary>
    public static string CheckpointFixture(params string[] parts) =>
        Path.Combine([RepositoryRoot, "tests", "fixtures", "checkpoint-formats", .. parts]);

    private static string FindRepositoryRoot()
    {
        for (var folder = new DirectoryInfo(AppContext.BaseDirectory); folder is not null; folder = folder.Parent)
        {
            if (File.Exists(Path.Combine(folder.FullName, "ParaphraseService.sln")))
            {
                return folder.FullName;
            }
        }
        throw new InvalidOperationException($"No folder above {AppContext.BaseDirectory} holds ParaphraseService.sln.");
    }
}

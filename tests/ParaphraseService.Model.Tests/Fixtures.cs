namespace ParaphraseService.Model.Tests;

/// <summary>Committed test inputs under <c>tests/fixtures</c>, found from the test binary's folder.</summary>
internal static class Fixtures
{
    private static readonly Lazy<string> s_root = new(() =>
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "ParaphraseService.sln")))
                return Path.Combine(dir.FullName, "tests", "fixtures");
        throw new DirectoryNotFoundException($"No ParaphraseService.sln above {AppContext.BaseDirectory}.");
    });

    public static string Get(params string[] parts) => Path.Combine([s_root.Value, .. parts]);
}

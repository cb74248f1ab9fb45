namespace ParaphraseService.Model.Tests.Hub;

/// <summary>One request the fake hub received, with the headers the tests assert on.</summary>
internal sealed record RecordedRequest(string Method, string Host, string Path, string? Authorization, string? Range)
{
    public bool IsApi => Path.StartsWith("/api/", StringComparison.Ordinal);

    public bool IsResolve => Path.Contains("/resolve/", StringComparison.Ordinal);

    public bool IsCdn => Path.StartsWith("/cdn/", StringComparison.Ordinal);
}

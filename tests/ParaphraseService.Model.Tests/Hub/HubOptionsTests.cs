using ParaphraseService.Model.Checkpoints.Hub;

namespace ParaphraseService.Model.Tests.Hub;

public sealed class HubOptionsTests
{
    private const string Home = "/home/someone";

    [Fact]
    public void DefaultsToTheStandardCacheAndHub()
    {
        var options = FromEnvironment();

        Assert.Equal(Path.Combine(Home, ".cache", "huggingface", "hub"), options.CacheDirectory);
        Assert.Equal(new Uri("https://huggingface.co"), options.Endpoint);
        Assert.Null(options.Token);
        Assert.False(options.Offline);
    }

    [Fact]
    public void CacheFollowsHfHubCacheThenHfHomeThenXdg()
    {
        Assert.Equal("/x/hub-cache", FromEnvironment(("HF_HUB_CACHE", "/x/hub-cache"), ("HF_HOME", "/y")).CacheDirectory);
        Assert.Equal("/legacy", FromEnvironment(("HUGGINGFACE_HUB_CACHE", "/legacy"), ("HF_HOME", "/y")).CacheDirectory);
        Assert.Equal(Path.Combine("/y", "hub"), FromEnvironment(("HF_HOME", "/y"), ("XDG_CACHE_HOME", "/z")).CacheDirectory);
        Assert.Equal(Path.Combine("/z", "huggingface", "hub"), FromEnvironment(("XDG_CACHE_HOME", "/z")).CacheDirectory);
        Assert.Equal(Path.Combine(Home, "models"), FromEnvironment(("HF_HUB_CACHE", "~/models")).CacheDirectory);
    }

    [Theory]
    [InlineData("1", true)]
    [InlineData("true", true)]
    [InlineData("YES", true)]
    [InlineData("on", true)]
    [InlineData("0", false)]
    [InlineData("false", false)]
    [InlineData("", false)]
    public void OfflineAcceptsHuggingFaceTruthyValues(string value, bool offline)
    {
        Assert.Equal(offline, FromEnvironment(("HF_HUB_OFFLINE", value)).Offline);
        Assert.Equal(offline, FromEnvironment(("TRANSFORMERS_OFFLINE", value)).Offline);
    }

    [Fact]
    public void EndpointAndTokenComeFromTheEnvironment()
    {
        var options = FromEnvironment(("HF_ENDPOINT", "https://hf-mirror.example/"), ("HF_TOKEN", " hf_abc "));

        Assert.Equal("https://hf-mirror.example/", options.Endpoint.AbsoluteUri);
        Assert.Equal("hf_abc", options.Token);
    }

    [Fact]
    public void TokenFallsBackToTheLoginTokenFile()
    {
        using var home = new TempDirectory();
        File.WriteAllText(Path.Combine(home.Path, "token"), "hf_from_file\n");

        Assert.Equal("hf_from_file", HubOptions.FromEnvironment(Env(("HF_HOME", home.Path)), Home).Token);
        Assert.Equal("hf_env", HubOptions.FromEnvironment(Env(("HF_HOME", home.Path), ("HF_TOKEN", "hf_env")), Home).Token);
    }

    [Fact]
    public void DownloadTimeoutSetsTheAttemptTimeout()
    {
        Assert.Equal(TimeSpan.FromSeconds(12.5), FromEnvironment(("HF_HUB_DOWNLOAD_TIMEOUT", "12.5")).AttemptTimeout);
    }

    [Fact]
    public void BadEndpointIsRejected()
    {
        Assert.Throws<ArgumentException>(() => FromEnvironment(("HF_ENDPOINT", "ftp://nope")));
    }

    [Fact]
    public void PrintingNeverShowsTheToken()
    {
        var text = new HubOptions { Token = "hf_supersecret" }.ToString();

        Assert.DoesNotContain("hf_supersecret", text, StringComparison.Ordinal);
        Assert.Contains("Token = ***", text, StringComparison.Ordinal);
    }

    [Fact]
    public void InvalidSettingsAreRejectedByTheClient()
    {
        using var http = new HttpClient();

        Assert.Throws<ArgumentOutOfRangeException>(() => new HubClient(http, new HubOptions { MaxAttempts = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new HubClient(http, new HubOptions { AttemptTimeout = TimeSpan.Zero }));
    }

    private static HubOptions FromEnvironment(params (string Name, string Value)[] variables) =>
        HubOptions.FromEnvironment(Env(variables), Home);

    private static Func<string, string?> Env(params (string Name, string Value)[] variables) =>
        name => variables.FirstOrDefault(v => v.Name == name).Value;
}

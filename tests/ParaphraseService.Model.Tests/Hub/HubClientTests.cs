using System.Text.Json;
using ParaphraseService.Model.Checkpoints.Hub;

namespace ParaphraseService.Model.Tests.Hub;

public sealed class HubClientTests : IAsyncLifetime
{
    private const string Repo = "test-org/tiny-gptj";
    private const string MainCommit = "1111111111111111111111111111111111111111";
    private const string Float16Commit = "2222222222222222222222222222222222222222";

    private static readonly FakeHubFile Config = FakeHubFile.Text("config.json", """{"model_type":"gptj","n_embd":64}""");
    private static readonly FakeHubFile Tokenizer = FakeHubFile.Text("tokenizer.json", """{"version":"1.0","model":{"type":"BPE"}}""");
    private static readonly FakeHubFile Weights = FakeHubFile.LfsBlob("model.safetensors", 300_000, seed: 1);
    private static readonly FakeHubFile EmptyFile = FakeHubFile.Text("added_tokens.json", "");
    private static readonly FakeHubFile Readme = FakeHubFile.Text("README.md", "# tiny");
    private static readonly FakeHubFile Float16Config = FakeHubFile.Text("config.json", """{"model_type":"gptj","torch_dtype":"float16"}""");
    private static readonly FakeHubFile Float16Weights = FakeHubFile.LfsBlob("model.safetensors", 150_000, seed: 2);

    private readonly TempDirectory _cache = new();
    private readonly HttpClient _http = HubClient.CreateHttpClient();
    private FakeHub _hub = null!;

    public async Task InitializeAsync()
    {
        _hub = await FakeHub.StartAsync();
        _hub.AddRepo(Repo)
            .AddCommit(MainCommit, [Config, Tokenizer, EmptyFile, Weights, Readme], "main")
            .AddCommit(Float16Commit, [Float16Config, Tokenizer, Float16Weights], "float16");
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _hub.DisposeAsync();
        _cache.Dispose();
    }

    private string RepoFolder => Path.Combine(_cache.Path, "models--test-org--tiny-gptj");

    [Fact]
    public async Task FreshDownloadBuildsTheStandardCacheLayout()
    {
        var snapshot = await Client().DownloadModelAsync(Repo);

        Assert.Equal(Path.Combine(RepoFolder, "snapshots", MainCommit), snapshot);
        Assert.Equal(MainCommit, File.ReadAllText(Path.Combine(RepoFolder, "refs", "main")));
        foreach (var file in new[] { Config, Tokenizer, EmptyFile, Weights })
        {
            var pointer = Path.Combine(snapshot, file.Name);
            Assert.Equal($"../../blobs/{file.Etag}", new FileInfo(pointer).LinkTarget);
            Assert.Equal(file.Content, File.ReadAllBytes(pointer));
            Assert.True(File.Exists(Path.Combine(RepoFolder, "blobs", file.Etag)));
        }

        Assert.False(File.Exists(Path.Combine(snapshot, Readme.Name)), "only what a checkpoint needs is downloaded");
        Assert.Empty(Directory.GetFiles(Path.Combine(RepoFolder, "blobs"), "*.incomplete"));
        // The weights came from the CDN origin (not the hub's), after a HEAD on the hub.
        Assert.Contains(_hub.Recorded, r => r is { IsCdn: true, Host: "localhost", Method: "GET" });
    }

    [Fact]
    public async Task SecondDownloadIsServedFromTheCacheWithoutFileRequests()
    {
        var first = await Client().DownloadModelAsync(Repo);
        _hub.Requests.Clear();

        var second = await Client().DownloadModelAsync(Repo);

        Assert.Equal(first, second);
        var only = Assert.Single(_hub.Recorded);
        Assert.True(only.IsApi, "only the revision lookup goes out");
    }

    [Fact]
    public async Task RevisionSuffixResolvesThatBranch()
    {
        var snapshot = await Client().DownloadModelAsync($"{Repo}@float16");

        Assert.Equal(Path.Combine(RepoFolder, "snapshots", Float16Commit), snapshot);
        Assert.Equal(Float16Commit, File.ReadAllText(Path.Combine(RepoFolder, "refs", "float16")));
        Assert.False(File.Exists(Path.Combine(RepoFolder, "refs", "main")));
        Assert.Equal(Float16Config.Content, File.ReadAllBytes(Path.Combine(snapshot, "config.json")));
        Assert.Equal(Float16Weights.Content, File.ReadAllBytes(Path.Combine(snapshot, "model.safetensors")));
        Assert.Contains(_hub.Recorded, r => r.IsApi && r.Path.EndsWith("/revision/float16", StringComparison.Ordinal));
    }

    [Fact]
    public async Task CutConnectionIsResumedWithARangeRequest()
    {
        _hub.CutDownloads = 1;

        var snapshot = await Client().DownloadModelAsync(Repo);

        Assert.Equal(Weights.Content, File.ReadAllBytes(Path.Combine(snapshot, "model.safetensors")));
        var cdn = _hub.Recorded.Where(r => r.IsCdn).ToList();
        Assert.Equal(2, cdn.Count);
        Assert.Null(cdn[0].Range);
        Assert.NotNull(cdn[1].Range);
        var resumedAt = long.Parse(cdn[1].Range!["bytes=".Length..^1], System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(resumedAt, 1, Weights.Content.Length / 2);
    }

    [Fact]
    public async Task ServerIgnoringRangeMeansStartingOver()
    {
        _hub.CutDownloads = 1;
        _hub.IgnoreRange = true;

        var snapshot = await Client().DownloadModelAsync(Repo);

        Assert.Equal(Weights.Content, File.ReadAllBytes(Path.Combine(snapshot, "model.safetensors")));
        Assert.NotNull(_hub.Recorded.Where(r => r.IsCdn).Last().Range);
    }

    [Fact]
    public async Task IncompleteFileFromAnEarlierRunIsResumed()
    {
        var blobs = Directory.CreateDirectory(Path.Combine(RepoFolder, "blobs")).FullName;
        File.WriteAllBytes(Path.Combine(blobs, Weights.Etag + ".incomplete"), Weights.Content[..1000]);

        var snapshot = await Client().DownloadModelAsync(Repo);

        Assert.Equal(Weights.Content, File.ReadAllBytes(Path.Combine(snapshot, "model.safetensors")));
        Assert.Equal("bytes=1000-", Assert.Single(_hub.Recorded, r => r.IsCdn).Range);
    }

    [Fact]
    public async Task ConcurrentDownloadsIntoOneCacheFetchTheWeightsOnce()
    {
        var downloads = Enumerable.Range(0, 3).Select(_ => Client().DownloadModelAsync(Repo)).ToList();

        var snapshots = await Task.WhenAll(downloads);

        Assert.Single(snapshots.Distinct());
        Assert.Equal(Weights.Content, File.ReadAllBytes(Path.Combine(snapshots[0], "model.safetensors")));
        Assert.Single(_hub.Recorded, r => r.IsCdn);
        Assert.True(File.Exists(Path.Combine(_cache.Path, ".locks", "models--test-org--tiny-gptj", Weights.Etag + ".lock")));
    }

    [Fact]
    public async Task CorruptDownloadIsRejectedAndNothingIsPublished()
    {
        _hub.CorruptLfs = true;

        var error = await Assert.ThrowsAsync<HubException>(() => Client().DownloadModelAsync(Repo));

        Assert.Equal(HubErrorKind.IntegrityCheckFailed, error.Kind);
        Assert.Contains("sha256", error.Message, StringComparison.Ordinal);
        Assert.Contains("model.safetensors", error.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(RepoFolder, "snapshots", MainCommit, "model.safetensors")));
        Assert.Empty(Directory.GetFiles(Path.Combine(RepoFolder, "blobs"), Weights.Etag + "*"));
        Assert.False(File.Exists(Path.Combine(RepoFolder, "refs", "main")), "the ref is written only for a complete snapshot");
    }

    [Fact]
    public async Task ServerErrorsAreRetriedUntilSuccess()
    {
        _hub.ApiFailures = 2;

        await Client(maxAttempts: 3).DownloadModelAsync(Repo);

        Assert.Equal(3, _hub.Recorded.Count(r => r.IsApi));
    }

    [Fact]
    public async Task ServerErrorsGiveUpAfterMaxAttempts()
    {
        _hub.ApiFailures = 100;

        var error = await Assert.ThrowsAsync<HubException>(() => Client(maxAttempts: 3).DownloadModelAsync(Repo));

        Assert.Equal(HubErrorKind.Unavailable, error.Kind);
        Assert.Equal(503, error.StatusCode);
        Assert.Contains("3 attempt", error.Message, StringComparison.Ordinal);
        Assert.Equal(3, _hub.Recorded.Count(r => r.IsApi));
    }

    [Theory]
    [InlineData(408)]
    [InlineData(429)]
    [InlineData(500)]
    [InlineData(502)]
    [InlineData(504)]
    public async Task TransientStatusesAreRetried(int status)
    {
        _hub.ApiFailures = 1;
        _hub.ApiFailureStatus = status;

        await Client().DownloadModelAsync(Repo);

        Assert.Equal(2, _hub.Recorded.Count(r => r.IsApi));
    }

    [Theory]
    [InlineData(400, HubErrorKind.HttpError)]
    [InlineData(403, HubErrorKind.Unauthorized)]
    public async Task OtherClientErrorsAreNotRetried(int status, HubErrorKind kind)
    {
        _hub.ApiFailures = 1;
        _hub.ApiFailureStatus = status;

        var error = await Assert.ThrowsAsync<HubException>(() => Client().DownloadModelAsync(Repo));

        Assert.Equal(kind, error.Kind);
        Assert.Equal(status, error.StatusCode);
        Assert.Single(_hub.Recorded);
    }

    [Fact]
    public async Task RefusedConnectionIsReportedAsUnavailable()
    {
        var closedPort = _hub.Endpoint.Port;
        await _hub.DisposeAsync();
        _hub = await FakeHub.StartAsync();
        var options = Options(maxAttempts: 2) with { Endpoint = new Uri($"http://127.0.0.1:{closedPort}") };

        var error = await Assert.ThrowsAsync<HubException>(() => new HubClient(_http, options).DownloadModelAsync(Repo));

        Assert.Equal(HubErrorKind.Unavailable, error.Kind);
        Assert.Contains("2 attempt", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task UnansweredRequestTimesOutAndIsRetried()
    {
        _hub.HangingApiRequests = 1;
        var options = Options() with { AttemptTimeout = TimeSpan.FromMilliseconds(200) };

        await new HubClient(_http, options).DownloadModelAsync(Repo);

        Assert.Equal(2, _hub.Recorded.Count(r => r.IsApi));
    }

    [Fact]
    public async Task StalledDownloadTimesOutAndResumes()
    {
        _hub.StallDownloads = 1;
        var options = Options() with { AttemptTimeout = TimeSpan.FromMilliseconds(200) };

        var snapshot = await new HubClient(_http, options).DownloadModelAsync(Repo);

        Assert.Equal(Weights.Content, File.ReadAllBytes(Path.Combine(snapshot, "model.safetensors")));
        Assert.NotNull(_hub.Recorded.Where(r => r.IsCdn).Last().Range);
    }

    [Fact]
    public async Task RateLimitWithShortRetryAfterIsRetried()
    {
        _hub.CdnFailures = 1;
        _hub.CdnFailureStatus = 429;
        _hub.CdnRetryAfter = "0";

        var snapshot = await Client().DownloadModelAsync(Repo);

        Assert.Equal(Weights.Content, File.ReadAllBytes(Path.Combine(snapshot, "model.safetensors")));
        Assert.Equal(2, _hub.Recorded.Count(r => r.IsCdn));
    }

    [Fact]
    public async Task RetryAfterIsHonouredAsTheDelay()
    {
        _hub.CdnFailures = 1;
        _hub.CdnFailureStatus = 429;
        _hub.CdnRetryAfter = "42";
        var clock = new InstantTimeProvider(longerThan: TimeSpan.FromMinutes(5));
        var options = Options() with { MaxDelay = TimeSpan.FromMinutes(1), AttemptTimeout = TimeSpan.FromMinutes(10), TimeProvider = clock };

        await new HubClient(_http, options).DownloadModelAsync(Repo);

        Assert.Equal([TimeSpan.FromSeconds(42)], clock.Delays);
    }

    [Fact]
    public async Task BackoffWaitsBetweenAttemptsWithinMaxDelay()
    {
        _hub.ApiFailures = 4;
        var clock = new InstantTimeProvider(longerThan: TimeSpan.FromMinutes(5));
        var options = Options(maxAttempts: 5) with
        {
            BaseDelay = TimeSpan.FromSeconds(1),
            MaxDelay = TimeSpan.FromSeconds(3),
            AttemptTimeout = TimeSpan.FromMinutes(10),
            TimeProvider = clock,
        };

        await new HubClient(_http, options).DownloadModelAsync(Repo);

        // Jittered exponential backoff: one wait per retry, never zero, never above MaxDelay (jitter makes the exact
        // values, and even their order, random).
        var delays = clock.Delays.ToList();
        Assert.Equal(4, delays.Count);
        Assert.All(delays, d => Assert.InRange(d, TimeSpan.FromMilliseconds(1), TimeSpan.FromSeconds(3)));
    }

    [Fact]
    public async Task RateLimitWithLongRetryAfterFailsAtOnce()
    {
        _hub.CdnFailures = 100;
        _hub.CdnFailureStatus = 429;
        _hub.CdnRetryAfter = "3600";

        var error = await Assert.ThrowsAsync<HubException>(() => Client().DownloadModelAsync(Repo));

        Assert.Equal(HubErrorKind.Unavailable, error.Kind);
        Assert.Equal(429, error.StatusCode);
        Assert.Contains("rate limiting", error.Message, StringComparison.Ordinal);
        Assert.Equal(1, _hub.Recorded.Count(r => r.IsCdn));
    }

    [Fact]
    public async Task UnauthorizedMentionsHfToken()
    {
        _hub.RequiredToken = "hf_secret";

        var error = await Assert.ThrowsAsync<HubException>(() => Client().DownloadModelAsync(Repo));

        Assert.Equal(HubErrorKind.Unauthorized, error.Kind);
        Assert.Equal(401, error.StatusCode);
        Assert.Contains("HF_TOKEN", error.Message, StringComparison.Ordinal);
        Assert.Contains(Repo, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TokenIsSentAsBearerToTheHubOnlyNotToTheCdn()
    {
        _hub.RequiredToken = "hf_secret";

        var snapshot = await Client(token: "hf_secret").DownloadModelAsync(Repo);

        Assert.Equal(Weights.Content, File.ReadAllBytes(Path.Combine(snapshot, "model.safetensors")));
        Assert.All(_hub.Recorded.Where(r => !r.IsCdn), r => Assert.Equal("Bearer hf_secret", r.Authorization));
        var cdn = Assert.Single(_hub.Recorded, r => r.IsCdn);
        Assert.Null(cdn.Authorization);
    }

    [Fact]
    public async Task OfflineModeServesTheCacheWithoutAnyRequest()
    {
        var online = await Client().DownloadModelAsync(Repo);
        _hub.Requests.Clear();

        var offline = Client(offline: true);
        Assert.Equal(online, await offline.DownloadModelAsync(Repo));
        Assert.Equal(online, await offline.DownloadModelAsync($"{Repo}@{MainCommit}"));
        Assert.Empty(_hub.Recorded);
    }

    [Fact]
    public async Task OfflineModeWithAnEmptyCacheSaysTheModelIsNotCached()
    {
        var error = await Assert.ThrowsAsync<HubException>(() => Client(offline: true).DownloadModelAsync(Repo));

        Assert.Equal(HubErrorKind.NotInCache, error.Kind);
        Assert.Contains(Repo, error.Message, StringComparison.Ordinal);
        Assert.Contains("HF_HUB_OFFLINE", error.Message, StringComparison.Ordinal);
        Assert.Empty(_hub.Recorded);
    }

    [Fact]
    public async Task UnreachableHubFallsBackToACompleteCachedSnapshot()
    {
        var online = await Client().DownloadModelAsync(Repo);
        _hub.ApiFailures = 100;

        Assert.Equal(online, await Client(maxAttempts: 2).DownloadModelAsync(Repo));
    }

    [Fact]
    public async Task UnknownRepositoryIsReportedAsNotFound()
    {
        var error = await Assert.ThrowsAsync<HubException>(() => Client().DownloadModelAsync("test-org/missing"));

        Assert.Equal(HubErrorKind.NotFound, error.Kind);
        Assert.Equal(404, error.StatusCode);
        Assert.Contains("Repository test-org/missing was not found", error.Message, StringComparison.Ordinal);
        Assert.Single(_hub.Recorded);
    }

    [Fact]
    public async Task UnknownRevisionIsReportedAsNotFound()
    {
        var error = await Assert.ThrowsAsync<HubException>(() => Client().DownloadModelAsync($"{Repo}@no-such-branch"));

        Assert.Equal(HubErrorKind.NotFound, error.Kind);
        Assert.Contains("Revision 'no-such-branch'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ProgressIsReportedUpToTheFullSize()
    {
        var progress = new SyncProgress<HubDownloadProgress>();

        await Client().DownloadModelAsync(Repo, progress);

        var weights = progress.Reports.Where(p => p.FileName == "model.safetensors").ToList();
        Assert.NotEmpty(weights);
        Assert.All(weights, p => Assert.Equal(Weights.Content.Length, p.TotalBytes));
        Assert.Equal(0, weights[0].BytesDownloaded);
        Assert.Equal(Weights.Content.Length, weights[^1].BytesDownloaded);
        Assert.Equal(weights.Select(p => p.BytesDownloaded).Order(), weights.Select(p => p.BytesDownloaded));
        Assert.Contains(progress.Reports, p => p.FileName == "config.json" && p.BytesDownloaded == Config.Content.Length);
    }

    [Fact]
    public async Task ShardedWeightsAreDownloadedWithTheirIndex()
    {
        var shard1 = FakeHubFile.LfsBlob("model-00001-of-00002.safetensors", 40_000, seed: 3);
        var shard2 = FakeHubFile.LfsBlob("model-00002-of-00002.safetensors", 30_000, seed: 4);
        var index = FakeHubFile.Text("model.safetensors.index.json", JsonSerializer.Serialize(new
        {
            metadata = new { total_size = 70_000 },
            weight_map = new Dictionary<string, string>
            {
                ["transformer.wte.weight"] = shard1.Name,
                ["transformer.h.0.attn.q_proj.weight"] = shard1.Name,
                ["lm_head.weight"] = shard2.Name,
            },
        }));
        const string sharded = "test-org/sharded";
        _hub.AddRepo(sharded).AddCommit(MainCommit, [Config, index, shard1, shard2, Weights with { Name = "pytorch_model.bin" }], "main");

        var snapshot = await Client().DownloadModelAsync(sharded);

        Assert.Equal(index.Content, File.ReadAllBytes(Path.Combine(snapshot, index.Name)));
        Assert.Equal(shard1.Content, File.ReadAllBytes(Path.Combine(snapshot, shard1.Name)));
        Assert.Equal(shard2.Content, File.ReadAllBytes(Path.Combine(snapshot, shard2.Name)));
        Assert.False(File.Exists(Path.Combine(snapshot, "pytorch_model.bin")), "safetensors are preferred");
    }

    [Fact]
    public async Task RepositoryWithoutWeightsListsWhatItHas()
    {
        _hub.AddRepo("test-org/no-weights").AddCommit(MainCommit, [Config, Readme], "main");

        var error = await Assert.ThrowsAsync<HubException>(() => Client().DownloadModelAsync("test-org/no-weights"));

        Assert.Equal(HubErrorKind.UnsupportedRepository, error.Kind);
        Assert.Contains("README.md, config.json", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task HttpClientThatFollowsRedirectsItselfIsRefused()
    {
        using var autoRedirecting = new HttpClient();
        var client = new HubClient(autoRedirecting, Options());

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => client.DownloadModelAsync(Repo));

        Assert.Contains("AllowAutoRedirect", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MalformedModelIdIsRejectedBeforeAnyRequest()
    {
        var error = await Assert.ThrowsAsync<HubException>(() => Client().DownloadModelAsync("test-org/../etc"));

        Assert.Equal(HubErrorKind.InvalidModelId, error.Kind);
        Assert.Empty(_hub.Recorded);
    }

    private HubOptions Options(int maxAttempts = 3, string? token = null, bool offline = false) => new()
    {
        Endpoint = _hub.Endpoint,
        CacheDirectory = _cache.Path,
        Token = token,
        Offline = offline,
        MaxAttempts = maxAttempts,
        BaseDelay = TimeSpan.Zero,
        MaxDelay = TimeSpan.FromSeconds(1),
        AttemptTimeout = TimeSpan.FromSeconds(10),
    };

    private HubClient Client(int maxAttempts = 3, string? token = null, bool offline = false) =>
        new(_http, Options(maxAttempts, token, offline));
}

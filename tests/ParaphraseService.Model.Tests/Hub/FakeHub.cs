using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace ParaphraseService.Model.Tests.Hub;

/// <summary>
/// A Hugging Face Hub on a real loopback HTTP server (Kestrel), speaking the parts of the protocol the client uses:
/// <c>GET /api/models/{repo}/revision/{revision}</c>, HEAD/GET <c>/{repo}/resolve/{revision}/{file}</c> with
/// X-Repo-Commit and ETag, and for LFS files a 302 to a "CDN" with X-Linked-Etag/X-Linked-Size. The CDN is the same
/// server reached as <c>localhost</c> while the hub is <c>127.0.0.1</c>, so the two are different origins, as in
/// production. Knobs inject failures; every request is recorded.
/// </summary>
internal sealed class FakeHub : IAsyncDisposable
{
    private readonly WebApplication _app;
    private int _apiFailuresLeft;
    private int _cdnFailuresLeft;
    private int _cutsLeft;
    private int _apiHangsLeft;
    private int _stallsLeft;

    private FakeHub(WebApplication app, int port)
    {
        _app = app;
        Endpoint = new Uri($"http://127.0.0.1:{port}");
        CdnBase = new Uri($"http://localhost:{port}/cdn/");
    }

    public Uri Endpoint { get; }

    public Uri CdnBase { get; }

    public Dictionary<string, FakeHubRepo> Repos { get; } = new(StringComparer.Ordinal);

    public ConcurrentQueue<RecordedRequest> Requests { get; } = new();

    /// <summary>When set, resolving files needs this Bearer token (a gated repository: its API info stays public).</summary>
    public string? RequiredToken { get; set; }

    /// <summary>HTTP status of the injected API failures.</summary>
    public int ApiFailureStatus { get; set; } = 503;

    /// <summary>HTTP status and Retry-After of the injected CDN failures.</summary>
    public int CdnFailureStatus { get; set; } = 503;

    public string? CdnRetryAfter { get; set; }

    /// <summary>The CDN answers 200 with the whole file even when asked for a range.</summary>
    public bool IgnoreRange { get; set; }

    /// <summary>The CDN serves LFS files with one byte flipped (same size, wrong sha256).</summary>
    public bool CorruptLfs { get; set; }

    /// <summary>The next N API requests fail with <see cref="ApiFailureStatus"/>.</summary>
    public int ApiFailures { set => _apiFailuresLeft = value; }

    /// <summary>The next N CDN requests fail with <see cref="CdnFailureStatus"/>.</summary>
    public int CdnFailures { set => _cdnFailuresLeft = value; }

    /// <summary>The next N CDN downloads send half of what they owe, then the connection is aborted.</summary>
    public int CutDownloads { set => _cutsLeft = value; }

    /// <summary>The next N API requests never answer (until the client gives up on them).</summary>
    public int HangingApiRequests { set => _apiHangsLeft = value; }

    /// <summary>The next N CDN downloads send half of what they owe, then go silent without closing.</summary>
    public int StallDownloads { set => _stallsLeft = value; }

    public static async Task<FakeHub> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        FakeHub? hub = null;
        app.Run(context => hub!.HandleAsync(context));
        await app.StartAsync();
        var port = new Uri(app.Urls.Single()).Port;
        hub = new FakeHub(app, port);
        return hub;
    }

    public FakeHubRepo AddRepo(string repoId)
    {
        var repo = new FakeHubRepo();
        Repos[repoId] = repo;
        return repo;
    }

    public IReadOnlyList<RecordedRequest> Recorded => [.. Requests];

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private async Task HandleAsync(HttpContext context)
    {
        var request = context.Request;
        var path = request.Path.Value ?? "";
        Requests.Enqueue(new RecordedRequest(request.Method, request.Host.Host, path,
            request.Headers.Authorization.FirstOrDefault(), request.Headers.Range.FirstOrDefault()));

        if (path.StartsWith("/api/models/", StringComparison.Ordinal))
            await ServeRevisionAsync(context, path["/api/models/".Length..]);
        else if (path.StartsWith("/cdn/", StringComparison.Ordinal))
            await ServeCdnAsync(context, path["/cdn/".Length..]);
        else if (path.IndexOf("/resolve/", StringComparison.Ordinal) is var at and > 0)
            await ServeResolveAsync(context, path[1..at], path[(at + "/resolve/".Length)..]);
        else
            context.Response.StatusCode = 404;
    }

    private async Task ServeRevisionAsync(HttpContext context, string rest)
    {
        if (Interlocked.Decrement(ref _apiHangsLeft) >= 0)
        {
            await HangAsync(context);
            return;
        }

        if (Interlocked.Decrement(ref _apiFailuresLeft) >= 0)
        {
            context.Response.StatusCode = ApiFailureStatus;
            return;
        }

        var at = rest.IndexOf("/revision/", StringComparison.Ordinal);
        var repoId = rest[..at];
        var revision = Uri.UnescapeDataString(rest[(at + "/revision/".Length)..]);
        if (!Repos.TryGetValue(repoId, out var repo))
        {
            NotFound(context, "RepoNotFound", "Repository not found");
            return;
        }

        if (repo.Resolve(revision) is not { } commit)
        {
            NotFound(context, "RevisionNotFound", "Invalid rev id: " + revision);
            return;
        }

        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(JsonSerializer.Serialize(new
        {
            id = repoId,
            sha = commit,
            siblings = repo.Commits[commit].Select(f => new { rfilename = f.Name }),
        }));
    }

    private async Task ServeResolveAsync(HttpContext context, string repoId, string rest)
    {
        var slash = rest.IndexOf('/', StringComparison.Ordinal);
        var revision = rest[..slash];
        var name = rest[(slash + 1)..];
        if (!Repos.TryGetValue(repoId, out var repo))
        {
            NotFound(context, "RepoNotFound", "Repository not found");
            return;
        }

        if (RequiredToken is { } token && context.Request.Headers.Authorization != $"Bearer {token}")
        {
            context.Response.StatusCode = 401;
            context.Response.Headers["X-Error-Message"] = "Access to model " + repoId + " is restricted. You must be authenticated to access it.";
            return;
        }

        if (repo.Resolve(revision) is not { } commit)
        {
            NotFound(context, "RevisionNotFound", "Invalid rev id: " + revision);
            return;
        }

        var file = repo.Commits[commit].FirstOrDefault(f => f.Name == name);
        if (file is null)
        {
            NotFound(context, "EntryNotFound", "Entry not found");
            context.Response.Headers["X-Repo-Commit"] = commit;
            return;
        }

        var headers = context.Response.Headers;
        headers["X-Repo-Commit"] = commit;
        if (file.Lfs)
        {
            // What the Hub does for LFS files: the ETag is the pointer file's, the X-Linked-* headers describe the content.
            headers.ETag = $"\"{FakeHubFile.Text("pointer", $"oid sha256:{file.Sha256}").GitSha1}\"";
            headers["X-Linked-Etag"] = $"\"{file.Sha256}\"";
            headers["X-Linked-Size"] = file.Content.Length.ToString(System.Globalization.CultureInfo.InvariantCulture);
            context.Response.StatusCode = 302;
            headers.Location = new Uri(CdnBase, file.Sha256 + "?X-Amz-Signature=secret").ToString();
            return;
        }

        headers.ETag = $"\"{file.GitSha1}\"";
        await ServeContentAsync(context, file.Content, honourRange: true, cut: false);
    }

    private async Task ServeCdnAsync(HttpContext context, string sha)
    {
        if (Interlocked.Decrement(ref _cdnFailuresLeft) >= 0)
        {
            context.Response.StatusCode = CdnFailureStatus;
            if (CdnRetryAfter is { } wait)
                context.Response.Headers.RetryAfter = wait;
            return;
        }

        var file = Repos.Values.SelectMany(r => r.Commits.Values).SelectMany(f => f).FirstOrDefault(f => f.Lfs && f.Sha256 == sha);
        if (file is null)
        {
            context.Response.StatusCode = 404;
            return;
        }

        var content = file.Content;
        if (CorruptLfs)
        {
            content = [.. content];
            content[content.Length / 3] ^= 0xFF;
        }

        var cut = Interlocked.Decrement(ref _cutsLeft) >= 0;
        var stall = Interlocked.Decrement(ref _stallsLeft) >= 0;
        await ServeContentAsync(context, content, honourRange: !IgnoreRange, cut, stall);
    }

    private static async Task ServeContentAsync(HttpContext context, byte[] content, bool honourRange, bool cut, bool stall = false)
    {
        long start = 0;
        var range = context.Request.Headers.Range.FirstOrDefault();
        if (honourRange && range is not null && range.StartsWith("bytes=", StringComparison.Ordinal) && range.EndsWith('-'))
        {
            start = long.Parse(range["bytes=".Length..^1], System.Globalization.CultureInfo.InvariantCulture);
            if (start >= content.Length)
            {
                context.Response.StatusCode = 416;
                return;
            }

            context.Response.StatusCode = 206;
            context.Response.Headers.ContentRange = $"bytes {start}-{content.Length - 1}/{content.Length}";
        }

        context.Response.ContentLength = content.Length - start;
        if (HttpMethods.IsHead(context.Request.Method))
            return;

        if (cut || stall)
        {
            var half = (int)(content.Length - start) / 2;
            await context.Response.Body.WriteAsync(content.AsMemory((int)start, half));
            await context.Response.Body.FlushAsync();
            if (stall)
                await HangAsync(context);
            context.Abort();
            return;
        }

        await context.Response.Body.WriteAsync(content.AsMemory((int)start));
    }

    // Waits until the client drops the request (or the server stops), like a peer that went silent.
    private static async Task HangAsync(HttpContext context)
    {
        try
        {
            await Task.Delay(Timeout.Infinite, context.RequestAborted);
        }
        catch (OperationCanceledException)
        {
            // The client gave up, which is what the test waits for.
        }
    }

    private static void NotFound(HttpContext context, string errorCode, string message)
    {
        context.Response.StatusCode = 404;
        context.Response.Headers["X-Error-Code"] = errorCode;
        context.Response.Headers["X-Error-Message"] = message;
    }
}

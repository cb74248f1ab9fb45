using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text.RegularExpressions;

namespace ParaphraseService.Model.Checkpoints.Hub;

/// <summary>
/// Talks HTTP to the Hub: builds its URLs, follows redirects itself so the token goes only where it belongs, and turns
/// status codes into <see cref="HubException"/> (final) or <see cref="HubTransientException"/> (worth retrying).
/// </summary>
internal sealed partial class HubHttp(HttpClient http, HubOptions options)
{
    private const int MaxRedirects = 10;
    private static readonly ProductInfoHeaderValue UserAgent = new("ParaphraseService", "1.0");

    private readonly string _base = options.Endpoint.AbsoluteUri.TrimEnd('/');

    public string EndpointText => _base;

    public Uri RevisionUri(HubModelId model) =>
        new($"{_base}/api/models/{model.RepoId}/revision/{Uri.EscapeDataString(model.Revision)}");

    public Uri ResolveUri(HubModelId model, string commit, string file) =>
        new($"{_base}/{model.RepoId}/resolve/{commit}/{string.Join('/', file.Split('/').Select(Uri.EscapeDataString))}");

    /// <summary>
    /// Sends a request, following redirects here rather than in the handler: the Bearer token goes to the endpoint's
    /// own origin only (so a renamed repository's relative redirect keeps it, a CDN never sees it), and https is never
    /// downgraded to http. With <paramref name="stopAtForeignRedirect"/> a redirect to another origin is returned
    /// instead of followed; that is how a HEAD reads an LFS file's X-Linked-* headers and its CDN location.
    /// </summary>
    /// <exception cref="InvalidOperationException">The HttpClient follows redirects itself (see HubClient.CreateHttpClient).</exception>
    public async Task<HttpResponseMessage> SendAsync(HttpMethod method, Uri uri, Action<HttpRequestMessage>? configure,
        bool stopAtForeignRedirect, CancellationToken ct)
    {
        for (var hop = 0; ; hop++)
        {
            var request = new HttpRequestMessage(method, uri);
            if (options.Token is { } token && SameOrigin(uri, options.Endpoint))
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            // Sizes and hashes describe the stored bytes, so nothing may be content-encoded on the way.
            request.Headers.AcceptEncoding.Add(new StringWithQualityHeaderValue("identity"));
            if (http.DefaultRequestHeaders.UserAgent.Count == 0)
                request.Headers.UserAgent.Add(UserAgent);
            configure?.Invoke(request);

            HttpResponseMessage response;
            try
            {
                response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
            }
            catch (HttpRequestException e) when (e.HttpRequestError is HttpRequestError.SecureConnectionError)
            {
                // A certificate or TLS proxy problem does not go away by retrying.
                throw new HubException(HubErrorKind.Unavailable, $"The TLS connection for {method} {Describe(uri)} failed: {e.Message}", e);
            }
            catch (HttpRequestException e)
            {
                throw new HubTransientException($"{method} {Describe(uri)} failed: {e.Message}", inner: e);
            }
            catch (OperationCanceledException e) when (!ct.IsCancellationRequested)
            {
                // HttpClient.Timeout, not the caller: a timeout like any other.
                throw new HubTransientException($"{method} {Describe(uri)} timed out: {e.Message}", inner: e);
            }

            if (response.RequestMessage?.RequestUri is { } sent && sent != uri)
            {
                response.Dispose();
                throw new InvalidOperationException(
                    "The HttpClient given to HubClient followed a redirect by itself, which hides the Hub's X-Linked-Etag/X-Linked-Size "
                    + "headers of LFS files. Create it with HubClient.CreateHttpClient() or a SocketsHttpHandler with AllowAutoRedirect = false.");
            }

            if (!IsRedirect(response.StatusCode) || response.Headers.Location is not { } location)
                return response;

            var target = location.IsAbsoluteUri ? location : new Uri(uri, location);
            if (stopAtForeignRedirect && !SameOrigin(target, options.Endpoint))
                return response;

            response.Dispose();
            if (uri.Scheme == Uri.UriSchemeHttps && target.Scheme != Uri.UriSchemeHttps)
                throw new HubException(HubErrorKind.InvalidResponse, $"{Describe(uri)} redirected to insecure {Describe(target)}; refusing to follow.");
            if (hop == MaxRedirects)
                throw new HubException(HubErrorKind.InvalidResponse, $"{Describe(uri)} redirected more than {MaxRedirects} times.");
            uri = target;
        }
    }

    /// <summary>Throws unless the status is 2xx. <paramref name="file"/> null means the revision lookup.</summary>
    public void EnsureSuccess(HttpResponseMessage response, HubModelId model, string? file, string? commit)
    {
        var status = (int)response.StatusCode;
        if (status is >= 200 and < 300)
            return;

        var what = file is null ? $"the lookup of {model} on {_base}" : $"{file} of {model.RepoId} at commit {commit}";
        var errorCode = Header(response, "X-Error-Code");
        var said = Header(response, "X-Error-Message") is { } text ? $" The Hub said: {text}" : "";

        switch (status)
        {
            case 401 or 403:
                var why = status == 401
                    ? $"{model.RepoId} is private or gated, or does not exist"
                    : errorCode == "GatedRepo"
                        ? $"{model.RepoId} is a gated model"
                        : $"access to {model.RepoId} is restricted (gated or private)";
                var fix = options.Token is null
                    ? "Set HF_TOKEN to an access token (https://huggingface.co/settings/tokens) of an account allowed to read it; "
                      + "for a gated model, accept its terms on the model's Hub page with that account first."
                    : "A token (HF_TOKEN) was sent but does not grant access: check that it is valid and can read this repository, "
                      + "and for a gated model accept its terms on the model's Hub page with the same account.";
                throw new HubException(HubErrorKind.Unauthorized, $"The Hub refused {what} (HTTP {status}): {why}. {fix}{said}")
                {
                    StatusCode = status,
                };

            case 404:
                var privateHint = options.Token is null ? " If it is private, set HF_TOKEN." : "";
                var message = errorCode switch
                {
                    "RepoNotFound" => $"Repository {model.RepoId} was not found on {_base}.{privateHint}",
                    "RevisionNotFound" => $"Revision '{model.Revision}' of {model.RepoId} was not found on {_base}.",
                    _ when file is not null => $"{file} was not found in {model.RepoId} at commit {commit} on {_base}.",
                    _ => $"{model.RepoId} or its revision '{model.Revision}' was not found on {_base}.{privateHint}",
                };
                throw new HubException(HubErrorKind.NotFound, message + said) { StatusCode = status };

            case 408 or 429 or >= 500:
                throw new HubTransientException($"{what}: HTTP {status} {response.ReasonPhrase}.{said}", status, RetryAfter(response));

            default:
                throw new HubException(HubErrorKind.HttpError, $"{what} failed: HTTP {status} {response.ReasonPhrase}.{said}")
                {
                    StatusCode = status,
                };
        }
    }

    /// <summary>
    /// Reads a file's metadata from the HEAD of its resolve URL the way huggingface_hub does: X-Linked-Etag and
    /// X-Linked-Size describe an LFS file behind a CDN redirect, ETag and Content-Length a regular one.
    /// </summary>
    public HubFileMetadata ReadMetadata(HttpResponseMessage response, Uri requested, string file, string commit)
    {
        var repoCommit = Header(response, "X-Repo-Commit");
        if (repoCommit is not null && !string.Equals(repoCommit, commit, StringComparison.OrdinalIgnoreCase))
            throw Invalid($"answered for commit {repoCommit} instead of {commit}");

        var rawEtag = Header(response, "X-Linked-Etag") ?? Header(response, "ETag")
                      ?? throw Invalid("sent no ETag, so the file cannot be named in the cache or checked");
        var etag = NormalizeEtag(rawEtag);
        if (!SafeEtag().IsMatch(etag))
            throw Invalid($"sent the ETag '{rawEtag}', which is not a hash");

        long? size = long.TryParse(Header(response, "X-Linked-Size"), NumberStyles.None, CultureInfo.InvariantCulture, out var linked)
            ? linked
            : response.Content.Headers.ContentLength;
        if (size is not { } known)
            throw Invalid("sent neither X-Linked-Size nor Content-Length, so the download cannot be checked");

        var location = IsRedirect(response.StatusCode) && response.Headers.Location is { } redirect
            ? redirect.IsAbsoluteUri ? redirect : new Uri(requested, redirect)
            : response.RequestMessage?.RequestUri ?? requested;
        return new HubFileMetadata(etag, known, location);

        HubException Invalid(string why) =>
            new(HubErrorKind.InvalidResponse, $"The server at {_base} {why} for {file} (commit {commit}); is it a Hugging Face Hub?");
    }

    /// <summary>Scheme, host and port only: CDN URLs carry signatures in their query that must stay out of logs and errors.</summary>
    public static string Describe(Uri uri) => uri.GetLeftPart(UriPartial.Authority) + uri.AbsolutePath;

    private static bool SameOrigin(Uri a, Uri b) =>
        string.Equals(a.Scheme, b.Scheme, StringComparison.OrdinalIgnoreCase)
        && string.Equals(a.IdnHost, b.IdnHost, StringComparison.OrdinalIgnoreCase)
        && a.Port == b.Port;

    private static bool IsRedirect(HttpStatusCode status) =>
        status is HttpStatusCode.MovedPermanently or HttpStatusCode.Found or HttpStatusCode.SeeOther
            or HttpStatusCode.TemporaryRedirect or HttpStatusCode.PermanentRedirect;

    private static TimeSpan? RetryAfter(HttpResponseMessage response) => response.Headers.RetryAfter switch
    {
        { Delta: { } delta } => delta,
        { Date: { } date } => date - DateTimeOffset.UtcNow is var wait && wait > TimeSpan.Zero ? wait : TimeSpan.Zero,
        _ => null,
    };

    private static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) || response.Content.Headers.TryGetValues(name, out values)
            ? values.FirstOrDefault()
            : null;

    // The Hub sends ETag: "<hash>"; a weak W/ prefix (some proxies add it) and the quotes are not part of the name.
    private static string NormalizeEtag(string etag)
    {
        etag = etag.Trim();
        if (etag.StartsWith("W/", StringComparison.Ordinal))
            etag = etag[2..];
        return etag.Trim('"');
    }

    // The etag becomes a file name under blobs/, so it must be a plain token.
    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")]
    private static partial Regex SafeEtag();
}

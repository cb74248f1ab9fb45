using System.Buffers;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Polly;

namespace ParaphraseService.Model.Checkpoints.Hub;

/// <summary>
/// Downloads what a GPT-J checkpoint needs from the Hugging Face Hub into the standard Hugging Face cache and returns
/// the snapshot folder, like <c>snapshot_download</c> restricted to config, tokenizer and weights.
/// </summary>
/// <remarks>
/// <para>A revision is resolved to a commit with <c>GET /api/models/{repo}/revision/{revision}</c>; each needed file
/// then gets a HEAD on <c>/{repo}/resolve/{commit}/{file}</c> (ETag or X-Linked-Etag, size, CDN redirect) unless the
/// snapshot already has it, and a GET of its bytes into <c>blobs/{etag}.incomplete</c>, resumed with a Range request
/// after a cut. The size, and the sha256 of LFS files, are checked before the blob is renamed into place and linked
/// from the snapshot, so a snapshot never shows a partial or corrupt file. The ref (<c>refs/{revision}</c>) is written
/// last, once every file is there.</para>
/// <para>Redirects are followed by this class, not by the handler: the token goes to the endpoint's origin only.</para>
/// <para>When the Hub cannot be reached (after all retries) and the cache holds a complete snapshot for the revision,
/// that snapshot is returned with a warning, as huggingface_hub does.</para>
/// </remarks>
public sealed class HubClient
{
    // A report per MiB is plenty for a progress bar and cheap for a 10 GB shard.
    private const long ProgressStep = 1 << 20;
    private const int BufferSize = 1 << 16;

    private readonly HubOptions _options;
    private readonly HubHttp _http;
    private readonly ILogger _logger;
    private readonly ResiliencePipeline _requestPipeline;
    private readonly ResiliencePipeline _downloadPipeline;

    /// <param name="http">
    /// Must not follow redirects itself (AllowAutoRedirect = false) nor decompress; <see cref="CreateHttpClient"/> makes
    /// a suitable one. Its Timeout should be infinite: attempts are timed by <see cref="HubOptions.AttemptTimeout"/>.
    /// </param>
    public HubClient(HttpClient http, HubOptions options, ILogger<HubClient>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(http);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _http = new HubHttp(http, options);
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        _requestPipeline = HubResilience.Create(options, _logger, perAttemptTimeout: true);
        _downloadPipeline = HubResilience.Create(options, _logger, perAttemptTimeout: false);
    }

    public HubOptions Options => _options;

    /// <summary>An HttpClient fit for <see cref="HubClient"/>: no automatic redirects, no decompression, no overall timeout.</summary>
    public static HttpClient CreateHttpClient() =>
        new(new SocketsHttpHandler
        {
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            ConnectTimeout = TimeSpan.FromSeconds(30),
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
        })
        {
            Timeout = Timeout.InfiniteTimeSpan,
        };

    /// <summary>Downloads (or finds in the cache) <paramref name="modelId"/>, e.g. <c>EleutherAI/gpt-j-6b@float16</c>.</summary>
    /// <returns>The snapshot folder holding config.json, the tokenizer files present and the weights.</returns>
    /// <exception cref="HubException">Malformed id, not found, unauthorized, not cached while offline, corrupt download, Hub unavailable.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="ct"/> was cancelled; a partial download is kept and resumed next time.</exception>
    public async Task<string> DownloadModelAsync(string modelId, IProgress<HubDownloadProgress>? progress = null, CancellationToken ct = default) =>
        await DownloadModelAsync(HubModelId.Parse(modelId), progress, ct).ConfigureAwait(false);

    /// <inheritdoc cref="DownloadModelAsync(string, IProgress{HubDownloadProgress}?, CancellationToken)"/>
    public async Task<string> DownloadModelAsync(HubModelId model, IProgress<HubDownloadProgress>? progress = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        var cache = new HubCache(_options.CacheDirectory, model);

        if (_options.Offline)
        {
            if (!cache.TryFindComplete(model, out var cached, out var missing))
                throw new HubException(HubErrorKind.NotInCache,
                    $"{model} is not in the Hugging Face cache at {_options.CacheDirectory} and offline mode is on (HF_HUB_OFFLINE), "
                    + $"so nothing can be downloaded: {missing}. Download it once with network access, or unset HF_HUB_OFFLINE.");
            HubLog.ServingCachedOffline(_logger, model, cached);
            return cached;
        }

        string commit;
        HashSet<string> files;
        try
        {
            (commit, files) = await ResolveRevisionAsync(model, ct).ConfigureAwait(false);
        }
        catch (HubException e) when (e.Kind == HubErrorKind.Unavailable && cache.TryFindComplete(model, out var cached, out _))
        {
            HubLog.ServingCachedBecauseUnreachable(_logger, e.Message, model, cached);
            return cached;
        }

        HubLog.Resolved(_logger, model, commit);
        var where = $"{model.RepoId} at commit {commit}";
        var selection = HubFileSelector.Select(files, where);
        foreach (var file in selection.Files)
            await EnsureFileAsync(cache, model, commit, file, progress, ct).ConfigureAwait(false);

        if (selection.WeightIndex is { } index)
        {
            var shards = HubFileSelector.ReadShards(cache.PointerPath(commit, index), index, where);
            var absent = shards.Where(s => !files.Contains(s)).ToList();
            if (absent.Count > 0)
                throw new HubException(HubErrorKind.UnsupportedRepository,
                    $"{index} of {where} names shards the repository does not have: {string.Join(", ", absent)}.");
            foreach (var shard in shards)
                await EnsureFileAsync(cache, model, commit, shard, progress, ct).ConfigureAwait(false);
        }

        cache.WriteRef(model.Revision, commit);
        return cache.SnapshotFolder(commit);
    }

    private async Task<(string Commit, HashSet<string> Files)> ResolveRevisionAsync(HubModelId model, CancellationToken ct)
    {
        var uri = _http.RevisionUri(model);
        return await WithRetriesAsync(_requestPipeline, async token =>
        {
            using var response = await _http.SendAsync(HttpMethod.Get, uri, null, stopAtForeignRedirect: false, token).ConfigureAwait(false);
            _http.EnsureSuccess(response, model, file: null, commit: null);
            string body;
            try
            {
                body = await response.Content.ReadAsStringAsync(token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or HttpRequestException)
            {
                throw new HubTransientException($"reading the answer of {HubHttp.Describe(uri)} failed: {e.Message}", inner: e);
            }

            return ParseRevision(body, model);
        }, $"Looking up {model} on {_http.EndpointText}", ct).ConfigureAwait(false);
    }

    private (string Commit, HashSet<string> Files) ParseRevision(string body, HubModelId model)
    {
        HubException Invalid(string why, Exception? inner = null) =>
            new(HubErrorKind.InvalidResponse, $"The answer of {_http.EndpointText} about {model} {why}; is it a Hugging Face Hub?", inner);

        try
        {
            using var json = JsonDocument.Parse(body);
            var root = json.RootElement;
            if (root.ValueKind != JsonValueKind.Object
                || !root.TryGetProperty("sha", out var sha) || sha.ValueKind != JsonValueKind.String
                || sha.GetString() is not { } commit || !HubModelId.IsCommitHash(commit))
                throw Invalid("has no 40-hex \"sha\" commit");

            if (!root.TryGetProperty("siblings", out var siblings) || siblings.ValueKind != JsonValueKind.Array)
                throw Invalid("has no \"siblings\" file list");

            // Names that could leave the snapshot folder are not ours to download; dropping them keeps them out of paths.
            var files = siblings.EnumerateArray()
                .Select(s => s.ValueKind == JsonValueKind.Object && s.TryGetProperty("rfilename", out var name) && name.ValueKind == JsonValueKind.String ? name.GetString() : null)
                .OfType<string>()
                .Where(HubFileSelector.IsSafeRelativePath)
                .ToHashSet(StringComparer.Ordinal);
            return (commit, files);
        }
        catch (JsonException e)
        {
            throw Invalid("is not valid JSON", e);
        }
    }

    private async Task EnsureFileAsync(HubCache cache, HubModelId model, string commit, string file,
        IProgress<HubDownloadProgress>? progress, CancellationToken ct)
    {
        // A commit's files never change, so a snapshot entry is final (huggingface_hub makes the same shortcut).
        if (File.Exists(cache.PointerPath(commit, file)))
            return;

        var metadata = await GetMetadataAsync(model, commit, file, ct).ConfigureAwait(false);
        var blob = cache.BlobPath(metadata.Etag);
        if (!HasBlob(blob, metadata.Size))
        {
            Directory.CreateDirectory(Path.GetDirectoryName(blob)!);
            using (await cache.LockBlobAsync(metadata.Etag, () => HubLog.WaitingForLock(_logger, file), ct).ConfigureAwait(false))
            {
                // Another download may have stored it while this one waited for the lock.
                if (!HasBlob(blob, metadata.Size))
                    await DownloadBlobAsync(cache, model, commit, file, metadata, progress, ct).ConfigureAwait(false);
            }
        }

        cache.Publish(commit, file, metadata.Etag);
    }

    private bool HasBlob(string blob, long size)
    {
        var info = new FileInfo(blob);
        if (!info.Exists)
            return false;
        if (info.Length == size)
            return true;
        HubLog.ReplacingBadBlob(_logger, blob, info.Length, size);
        return false;
    }

    private async Task<HubFileMetadata> GetMetadataAsync(HubModelId model, string commit, string file, CancellationToken ct)
    {
        var uri = _http.ResolveUri(model, commit, file);
        return await WithRetriesAsync(_requestPipeline, async token =>
        {
            using var response = await _http.SendAsync(HttpMethod.Head, uri, null, stopAtForeignRedirect: true, token).ConfigureAwait(false);
            if ((int)response.StatusCode is < 300 or >= 400)
                _http.EnsureSuccess(response, model, file, commit);
            return _http.ReadMetadata(response, uri, file, commit);
        }, $"Looking up {file} of {model.RepoId} at commit {commit}", ct).ConfigureAwait(false);
    }

    private async Task DownloadBlobAsync(HubCache cache, HubModelId model, string commit, string file, HubFileMetadata metadata,
        IProgress<HubDownloadProgress>? progress, CancellationToken ct)
    {
        var incomplete = cache.IncompletePath(metadata.Etag);
        try
        {
            // The attempt budget bounds attempts without progress: a run of attempts that got further than the last
            // one earns a fresh budget, so a flaky link can still finish a huge file. Every run must add bytes, so
            // this ends.
            while (true)
            {
                var before = LengthOf(incomplete);
                try
                {
                    await _downloadPipeline.ExecuteAsync(
                        token => DownloadAttemptAsync(incomplete, model, commit, file, metadata, progress, token), ct).ConfigureAwait(false);
                    break;
                }
                catch (Exception e) when (HubResilience.IsRetryable(e) && LengthOf(incomplete) > before)
                {
                    HubLog.ResumingAfterProgress(_logger, file, LengthOf(incomplete));
                }
                catch (Exception e) when (HubResilience.IsRetryable(e))
                {
                    throw HubResilience.GiveUp(e, $"Downloading {file} of {model.RepoId}", _options);
                }
            }

            await VerifyAsync(incomplete, model, file, metadata, ct).ConfigureAwait(false);
        }
        catch (HubException e) when (e.Kind == HubErrorKind.IntegrityCheckFailed)
        {
            // Resuming onto bad bytes would only fail again: the next call starts this file from scratch.
            File.Delete(incomplete);
            throw;
        }

        File.Move(incomplete, cache.BlobPath(metadata.Etag), overwrite: true);
        HubLog.Stored(_logger, file, metadata.Etag);
    }

    private async ValueTask DownloadAttemptAsync(string incomplete, HubModelId model, string commit, string file, HubFileMetadata metadata,
        IProgress<HubDownloadProgress>? progress, CancellationToken ct)
    {
        var offset = LengthOf(incomplete);
        if (offset > metadata.Size)
        {
            File.Delete(incomplete);
            offset = 0;
        }

        if (offset == metadata.Size)
        {
            // Complete from an earlier attempt or run; an empty file needs no request at all.
            File.Open(incomplete, FileMode.OpenOrCreate).Dispose();
            return;
        }

        HubLog.Downloading(_logger, file, metadata.Size, metadata.Location.Host, offset);
        var timeout = _options.AttemptTimeout;
        using var stall = CancellationTokenSource.CreateLinkedTokenSource(ct);
        stall.CancelAfter(timeout);

        HttpResponseMessage response;
        try
        {
            var resumeAt = offset;
            response = await _http.SendAsync(HttpMethod.Get, metadata.Location,
                request => request.Headers.Range = resumeAt > 0 ? new RangeHeaderValue(resumeAt, null) : null,
                stopAtForeignRedirect: false, stall.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException e) when (!ct.IsCancellationRequested)
        {
            throw new HubTransientException($"{file}: no response within {timeout}", inner: e);
        }

        using (response)
        {
            if (response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
            {
                File.Delete(incomplete);
                throw new HubTransientException($"{file}: the server refused to resume at byte {offset}; starting over", 416);
            }

            _http.EnsureSuccess(response, model, file, commit);
            var append = offset > 0 && response.StatusCode == HttpStatusCode.PartialContent;
            if (append && response.Content.Headers.ContentRange?.From != offset)
            {
                File.Delete(incomplete);
                throw new HubTransientException($"{file}: asked to resume at byte {offset} but the server sent another range; starting over");
            }

            if (!append && response.StatusCode != HttpStatusCode.OK)
                throw new HubException(HubErrorKind.InvalidResponse,
                    $"{file}: the server answered HTTP {(int)response.StatusCode} to a plain GET of {HubHttp.Describe(metadata.Location)}.");

            if (offset > 0 && !append)
            {
                // A server that ignores Range sends the whole file with 200: take it from the start.
                HubLog.RangeIgnored(_logger, file);
                offset = 0;
            }

            await using var target = new FileStream(incomplete, append ? FileMode.Append : FileMode.Create, FileAccess.Write,
                FileShare.None, BufferSize, FileOptions.Asynchronous);
            var buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
            try
            {
                Stream body;
                try
                {
                    body = await response.Content.ReadAsStreamAsync(stall.Token).ConfigureAwait(false);
                }
                catch (Exception e) when (e is IOException or HttpRequestException || (e is OperationCanceledException && !ct.IsCancellationRequested))
                {
                    throw new HubTransientException($"{file}: the response body could not be opened: {e.Message}", inner: e);
                }

                await using (body.ConfigureAwait(false))
                {
                    progress?.Report(new HubDownloadProgress(file, offset, metadata.Size));
                    var reported = offset;
                    while (true)
                    {
                        stall.CancelAfter(timeout);
                        int read;
                        try
                        {
                            read = await body.ReadAsync(buffer.AsMemory(0, BufferSize), stall.Token).ConfigureAwait(false);
                        }
                        catch (OperationCanceledException e) when (!ct.IsCancellationRequested)
                        {
                            throw new HubTransientException($"{file}: no data for {timeout} at byte {offset} of {metadata.Size}", inner: e);
                        }
                        catch (Exception e) when (e is IOException or HttpRequestException)
                        {
                            throw new HubTransientException($"{file}: connection lost at byte {offset} of {metadata.Size}: {e.Message}", inner: e);
                        }

                        if (read == 0)
                            break;
                        if (offset + read > metadata.Size)
                            throw new HubException(HubErrorKind.IntegrityCheckFailed,
                                $"{file} of {model.RepoId} is corrupt: the server sent more than the {metadata.Size} bytes the Hub announced. "
                                + "The partial download was deleted.");

                        await target.WriteAsync(buffer.AsMemory(0, read), ct).ConfigureAwait(false);
                        offset += read;
                        if (offset - reported >= ProgressStep || offset == metadata.Size)
                        {
                            progress?.Report(new HubDownloadProgress(file, offset, metadata.Size));
                            reported = offset;
                        }
                    }
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }

        if (offset < metadata.Size)
            throw new HubTransientException($"{file}: the response ended at byte {offset} of {metadata.Size}");
    }

    // The hash is computed from disk, not while streaming, because a resumed file's first part came from another
    // attempt (or another process run).
    private async Task VerifyAsync(string incomplete, HubModelId model, string file, HubFileMetadata metadata, CancellationToken ct)
    {
        var length = LengthOf(incomplete);
        if (length != metadata.Size)
            throw new HubException(HubErrorKind.IntegrityCheckFailed,
                $"{file} of {model.RepoId} is corrupt: {length} bytes arrived but the Hub announced {metadata.Size}. The partial download was deleted.");

        if (metadata.Sha256 is not { } expected)
            return;

        string actual;
        await using (var stream = new FileStream(incomplete, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20,
                         FileOptions.Asynchronous | FileOptions.SequentialScan))
            actual = Convert.ToHexStringLower(await SHA256.HashDataAsync(stream, ct).ConfigureAwait(false));

        if (actual != expected)
            throw new HubException(HubErrorKind.IntegrityCheckFailed,
                $"{file} of {model.RepoId} is corrupt: its sha256 is {actual} but the Hub announced {expected}. The partial download was "
                + $"deleted; try again, and if it keeps failing, something between here and {_http.EndpointText} alters the file.");
    }

    private async Task<T> WithRetriesAsync<T>(ResiliencePipeline pipeline, Func<CancellationToken, ValueTask<T>> action, string what, CancellationToken ct)
    {
        try
        {
            return await pipeline.ExecuteAsync(action, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (HubResilience.IsRetryable(e))
        {
            throw HubResilience.GiveUp(e, what, _options);
        }
    }

    private static long LengthOf(string path)
    {
        var info = new FileInfo(path);
        return info.Exists ? info.Length : 0;
    }
}

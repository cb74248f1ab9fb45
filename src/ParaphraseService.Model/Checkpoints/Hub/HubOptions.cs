using System.Text;

namespace ParaphraseService.Model.Checkpoints.Hub;

/// <summary>
/// Where the Hub is, where its cache lives and how hard to try. <c>new HubOptions()</c> is the plain defaults and reads
/// no environment; <see cref="FromEnvironment()"/> follows the same variables as Python's huggingface_hub, so both
/// share one cache.
/// </summary>
public sealed record HubOptions
{
    public static readonly Uri DefaultEndpoint = new("https://huggingface.co");

    /// <summary>The Hub's base address (HF_ENDPOINT); a mirror works if it speaks the same API.</summary>
    public Uri Endpoint { get; init; } = DefaultEndpoint;

    /// <summary>The cache root holding <c>models--Org--Name</c> folders (HF_HUB_CACHE).</summary>
    public string CacheDirectory { get; init; } = DefaultCacheDirectory(_ => null, UserHome());

    /// <summary>Access token sent as <c>Authorization: Bearer</c> to <see cref="Endpoint"/> only (HF_TOKEN).</summary>
    public string? Token { get; init; }

    /// <summary>Never touch the network; serve only what the cache holds (HF_HUB_OFFLINE).</summary>
    public bool Offline { get; init; }

    /// <summary>Attempts per request, the first one included; 1 disables retries.</summary>
    public int MaxAttempts { get; init; } = 5;

    /// <summary>Median delay before the first retry; later ones grow exponentially with jitter. Zero for tests.</summary>
    public TimeSpan BaseDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Upper bound on one backoff delay, and on a Retry-After the client is willing to honour.</summary>
    public TimeSpan MaxDelay { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Per attempt: the limit for a metadata request, and for a download the longest wait for response headers or for
    /// the next chunk of the body (a whole 10 GB shard is not bound by it).
    /// </summary>
    public TimeSpan AttemptTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Clock of the retry delays; tests swap it to observe delays without waiting them out.</summary>
    internal TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>
    /// Reads HF_ENDPOINT, HF_HUB_CACHE (or legacy HUGGINGFACE_HUB_CACHE), HF_HOME, XDG_CACHE_HOME, HF_TOKEN (else the
    /// token file written by <c>hf auth login</c>: HF_TOKEN_PATH or $HF_HOME/token), HF_HUB_OFFLINE (or
    /// TRANSFORMERS_OFFLINE; 1/ON/YES/TRUE) and HF_HUB_DOWNLOAD_TIMEOUT (seconds).
    /// </summary>
    public static HubOptions FromEnvironment() => FromEnvironment(Environment.GetEnvironmentVariable, UserHome());

    internal static HubOptions FromEnvironment(Func<string, string?> env, string userHome)
    {
        var options = new HubOptions
        {
            CacheDirectory = DefaultCacheDirectory(env, userHome),
            Token = TokenFrom(env, userHome),
            Offline = IsTrue(env("HF_HUB_OFFLINE")) || IsTrue(env("TRANSFORMERS_OFFLINE")),
        };

        if (NonEmpty(env("HF_ENDPOINT")) is { } endpoint)
        {
            if (!Uri.TryCreate(endpoint.TrimEnd('/'), UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttps && uri.Scheme != Uri.UriSchemeHttp))
                throw new ArgumentException($"HF_ENDPOINT='{endpoint}' is not an absolute http(s) URL.");
            options = options with { Endpoint = uri };
        }

        if (NonEmpty(env("HF_HUB_DOWNLOAD_TIMEOUT")) is { } timeout)
        {
            if (!double.TryParse(timeout, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var seconds) || seconds <= 0)
                throw new ArgumentException($"HF_HUB_DOWNLOAD_TIMEOUT='{timeout}' is not a positive number of seconds.");
            options = options with { AttemptTimeout = TimeSpan.FromSeconds(seconds) };
        }

        return options;
    }

    /// <summary>HF_HUB_CACHE, else HUGGINGFACE_HUB_CACHE, else HF_HOME/hub, else XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub.</summary>
    internal static string DefaultCacheDirectory(Func<string, string?> env, string userHome)
    {
        if ((NonEmpty(env("HF_HUB_CACHE")) ?? NonEmpty(env("HUGGINGFACE_HUB_CACHE"))) is { } hubCache)
            return ExpandUser(hubCache, userHome);
        return Path.Combine(HfHome(env, userHome), "hub");
    }

    internal void Validate()
    {
        if (!Endpoint.IsAbsoluteUri || (Endpoint.Scheme != Uri.UriSchemeHttps && Endpoint.Scheme != Uri.UriSchemeHttp))
            throw new ArgumentException($"Endpoint '{Endpoint}' must be an absolute http(s) URL.", nameof(Endpoint));
        if (string.IsNullOrWhiteSpace(CacheDirectory))
            throw new ArgumentException("CacheDirectory is empty.", nameof(CacheDirectory));
        if (MaxAttempts < 1)
            throw new ArgumentOutOfRangeException(nameof(MaxAttempts), MaxAttempts, "At least one attempt is needed.");
        if (BaseDelay < TimeSpan.Zero || BaseDelay > TimeSpan.FromHours(1))
            throw new ArgumentOutOfRangeException(nameof(BaseDelay), BaseDelay, "Must be between 0 and 1 hour.");
        if (MaxDelay < BaseDelay || MaxDelay > TimeSpan.FromHours(1))
            throw new ArgumentOutOfRangeException(nameof(MaxDelay), MaxDelay, "Must be between BaseDelay and 1 hour.");
        // Polly's timeout strategy accepts (10 ms, 24 h).
        if (AttemptTimeout <= TimeSpan.FromMilliseconds(10) || AttemptTimeout >= TimeSpan.FromHours(24))
            throw new ArgumentOutOfRangeException(nameof(AttemptTimeout), AttemptTimeout, "Must be between 10 ms and 24 h.");
    }

    // A record prints every property; the token must never reach a log line.
    private bool PrintMembers(StringBuilder builder)
    {
        builder.Append($"Endpoint = {Endpoint}, CacheDirectory = {CacheDirectory}, Token = {(Token is null ? "(none)" : "***")}, ");
        builder.Append($"Offline = {Offline}, MaxAttempts = {MaxAttempts}, BaseDelay = {BaseDelay}, MaxDelay = {MaxDelay}, AttemptTimeout = {AttemptTimeout}");
        return true;
    }

    private static string HfHome(Func<string, string?> env, string userHome) =>
        NonEmpty(env("HF_HOME")) is { } home
            ? ExpandUser(home, userHome)
            : Path.Combine(NonEmpty(env("XDG_CACHE_HOME")) is { } xdg ? ExpandUser(xdg, userHome) : Path.Combine(userHome, ".cache"), "huggingface");

    private static string? TokenFrom(Func<string, string?> env, string userHome)
    {
        if (NonEmpty(env("HF_TOKEN")?.Trim()) is { } token)
            return token;
        var tokenPath = NonEmpty(env("HF_TOKEN_PATH")) is { } path ? ExpandUser(path, userHome) : Path.Combine(HfHome(env, userHome), "token");
        return File.Exists(tokenPath) ? NonEmpty(File.ReadAllText(tokenPath).Trim()) : null;
    }

    private static bool IsTrue(string? value) =>
        value?.Trim().ToUpperInvariant() is "1" or "ON" or "YES" or "TRUE";

    private static string? NonEmpty(string? value) => string.IsNullOrEmpty(value) ? null : value;

    private static string ExpandUser(string path, string userHome) =>
        path == "~" ? userHome
        : path.StartsWith("~/", StringComparison.Ordinal) ? Path.Combine(userHome, path[2..])
        : path;

    private static string UserHome() => Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
}

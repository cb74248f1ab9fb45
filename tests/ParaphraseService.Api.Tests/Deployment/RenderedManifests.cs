using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.RegularExpressions;
using k8s;
using k8s.Models;
using ParaphraseService.Model.Tests;

namespace ParaphraseService.Api.Tests.Deployment;

/// <summary>
/// The kustomize overlays under <c>deploy/overlays</c>, rendered with <c>kubectl kustomize</c> (or <c>kustomize build</c>)
/// and read back as Kubernetes API objects in strict mode: a field the API does not have, or a value of the wrong type,
/// fails the read. Rendered once per overlay per test run.
/// </summary>
internal static partial class RenderedManifests
{
    public static readonly string RepositoryRoot = Path.GetFullPath(Fixtures.Get("..", ".."));

    private static readonly ConcurrentDictionary<string, Lazy<IReadOnlyList<object>>> s_rendered = new();

    public static IEnumerable<string> OverlayNames() =>
        Directory.GetDirectories(Path.Combine(RepositoryRoot, "deploy", "overlays")).Select(Path.GetFileName).Order(StringComparer.Ordinal)!;

    /// <summary>Overlays of the cluster mode (serving replicas, trainers, PostgreSQL): named cluster or cluster-*.</summary>
    public static bool IsCluster(string overlay) => overlay == "cluster" || overlay.StartsWith("cluster-", StringComparison.Ordinal);

    public static IReadOnlyList<object> Objects(string overlay) =>
        s_rendered.GetOrAdd(overlay, name => new Lazy<IReadOnlyList<object>>(() => Render(name))).Value;

    public static T Single<T>(string overlay) => Assert.Single(Objects(overlay).OfType<T>());

    public static V1Container Container(string overlay) => Assert.Single(Single<V1Deployment>(overlay).Spec.Template.Spec.Containers);

    private static IReadOnlyList<object> Render(string overlay)
    {
        var folder = Path.Combine(RepositoryRoot, "deploy", "overlays", overlay);
        var (tool, args) = FindOnPath("kubectl") is { } kubectl ? (kubectl, new[] { "kustomize", folder })
            : FindOnPath("kustomize") is { } kustomize ? (kustomize, new[] { "build", folder })
            : throw new InvalidOperationException(
                "Neither kubectl nor kustomize is on PATH; the deployment tests render deploy/overlays with it. " +
                "Install it with scripts/install-deploy-tools.sh (as root; Debian 12 and 13) or from your distribution.");
        var start = new ProcessStartInfo(tool) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in args) start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(1)))
        {
            process.Kill();
            throw new TimeoutException($"{tool} {string.Join(' ', args)} did not finish within a minute.");
        }
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"deploy/overlays/{overlay} does not render ({tool} exit {process.ExitCode}): {stderr.Result}");
        return KubernetesYaml.LoadAllFromString(stdout.Result, strict: true);
    }

    private static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, name)).FirstOrDefault(File.Exists);

    /// <summary>What the Dockerfile says about the image the manifests run.</summary>
    public static partial class Dockerfile
    {
        private static readonly string s_text = File.ReadAllText(Path.Combine(RepositoryRoot, "Dockerfile"));

        /// <summary>The port of <c>ASPNETCORE_URLS=http://+:PORT</c>.</summary>
        public static int Port => int.Parse(Match(AspNetCoreUrls()).Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);

        /// <summary>The <c>VOLUME</c> where the image keeps its state.</summary>
        public static string Volume => Match(VolumeLine()).Groups[1].Value;

        /// <summary>The last <c>USER</c>.</summary>
        public static string User => UserLine().Matches(s_text)[^1].Groups[1].Value;

        /// <summary>The HEALTHCHECK's <c>--start-period</c>: how long the image itself allows for loading the model.</summary>
        public static TimeSpan StartPeriod => TimeSpan.FromMinutes(int.Parse(Match(StartPeriodMinutes()).Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));

        /// <summary>Environment variables the image sets (<c>ENV NAME=value</c>, continued lines included).</summary>
        public static IReadOnlyDictionary<string, string> Environment =>
            EnvAssignment().Matches(s_text).ToDictionary(m => m.Groups[1].Value, m => m.Groups[2].Value);

        private static Match Match(Regex regex) =>
            regex.Match(s_text) is { Success: true } match ? match : throw new InvalidOperationException($"The Dockerfile has no match for {regex}.");

        [GeneratedRegex(@"ASPNETCORE_URLS=http://\+:(\d+)")]
        private static partial Regex AspNetCoreUrls();

        [GeneratedRegex(@"^VOLUME\s+(\S+)\s*$", RegexOptions.Multiline)]
        private static partial Regex VolumeLine();

        [GeneratedRegex(@"^USER\s+(\S+)\s*$", RegexOptions.Multiline)]
        private static partial Regex UserLine();

        [GeneratedRegex(@"--start-period=(\d+)m\b")]
        private static partial Regex StartPeriodMinutes();

        [GeneratedRegex(@"(?:^ENV\s+|^\s+)([A-Za-z_][A-Za-z0-9_]*)=(\S+)", RegexOptions.Multiline)]
        private static partial Regex EnvAssignment();
    }
}

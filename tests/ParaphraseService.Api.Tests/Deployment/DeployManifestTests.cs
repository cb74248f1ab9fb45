using System.ComponentModel.DataAnnotations;
using System.Globalization;
using System.Net;
using System.Reflection;
using k8s;
using k8s.Models;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using ParaphraseService.Api.Adapters;
using ParaphraseService.Api.Admin;
using ParaphraseService.Api.Hosting;
using ParaphraseService.Api.Scheduling;
using Dockerfile = ParaphraseService.Api.Tests.Deployment.RenderedManifests.Dockerfile;

namespace ParaphraseService.Api.Tests.Deployment;

/// <summary>
/// Every overlay under deploy/overlays, rendered and read strictly as Kubernetes objects, checked against what the
/// service and its image actually do: the port it listens on, its health endpoints, where it keeps state, its user,
/// and the configuration options it binds and validates at start.
/// </summary>
public class DeployManifestTests
{
    /// <summary>Configuration sections the service binds (Section__Key environment variables).</summary>
    internal static readonly Dictionary<string, Type> s_sections = new(StringComparer.OrdinalIgnoreCase)
    {
        [ModelOptions.Section] = typeof(ModelOptions),
        [SchedulerOptions.Section] = typeof(SchedulerOptions),
        [AdaptersOptions.Section] = typeof(AdaptersOptions),
        [AdminOptions.Section] = typeof(AdminOptions),
        [ParaphraseService.Api.FineTuning.FineTuneOptions.Section] = typeof(ParaphraseService.Api.FineTuning.FineTuneOptions),
        [ParaphraseService.Api.Storage.StorageOptions.Section] = typeof(ParaphraseService.Api.Storage.StorageOptions),
        [ParaphraseService.Api.Storage.NodeOptions.Section] = typeof(ParaphraseService.Api.Storage.NodeOptions),
    };

    /// <summary>Plain environment variables the service (or its hub client) reads.</summary>
    internal static readonly HashSet<string> s_plainVariables =
        ["HF_HOME", "HF_HUB_CACHE", "HF_ENDPOINT", "HF_HUB_OFFLINE", "HF_HUB_DOWNLOAD_TIMEOUT", "HF_TOKEN", "ASPNETCORE_URLS"];

    /// <summary>The single-process overlays (cluster mode's are checked by <see cref="ClusterManifestTests"/>).</summary>
    public static TheoryData<string> Overlays() => new(RenderedManifests.OverlayNames().Where(o => !RenderedManifests.IsCluster(o)));

    [Theory]
    [MemberData(nameof(Overlays))]
    public void RendersOneDeploymentServiceVolumeClaimAndSettingsWhoseReferencesResolve(string overlay)
    {
        var objects = RenderedManifests.Objects(overlay);
        Assert.Equal(["ConfigMap", "Deployment", "PersistentVolumeClaim", "Service"],
            objects.Select(o => ((IKubernetesObject)o).Kind).Order(StringComparer.Ordinal));

        var deployment = RenderedManifests.Single<V1Deployment>(overlay);
        var pod = deployment.Spec.Template.Spec;
        var settings = RenderedManifests.Single<V1ConfigMap>(overlay);
        var claim = RenderedManifests.Single<V1PersistentVolumeClaim>(overlay);
        var service = RenderedManifests.Single<V1Service>(overlay);
        Assert.Contains(RenderedManifests.Container(overlay).EnvFrom, e => e.ConfigMapRef?.Name == settings.Metadata.Name);
        Assert.Contains(pod.Volumes, v => v.PersistentVolumeClaim?.ClaimName == claim.Metadata.Name);
        Assert.Equal(deployment.Spec.Selector.MatchLabels, service.Spec.Selector);
        Assert.All(deployment.Spec.Selector.MatchLabels, label => Assert.Equal(label.Value, deployment.Spec.Template.Metadata.Labels[label.Key]));
        // One replica owns the ReadWriteOnce volume; a rolling update would wait forever for it.
        Assert.Equal(1, deployment.Spec.Replicas);
        Assert.Equal("Recreate", deployment.Spec.Strategy.Type);
        Assert.Equal(["ReadWriteOnce"], claim.Spec.AccessModes);
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void ListensOnTheImagesPortWithProbesOnTheHealthEndpoints(string overlay)
    {
        var container = RenderedManifests.Container(overlay);
        var port = Assert.Single(container.Ports);
        Assert.Equal(Dockerfile.Port, port.ContainerPort);
        Assert.Equal(Dockerfile.Port, RenderedManifests.Single<V1Service>(overlay).Spec.Ports.Single().TargetPort.Value switch
        {
            var name when name == port.Name => port.ContainerPort,
            var number => int.Parse(number, CultureInfo.InvariantCulture),
        });

        AssertProbe(container.LivenessProbe, "/health/live", port);
        AssertProbe(container.ReadinessProbe, "/health/ready", port);
        AssertProbe(container.StartupProbe, "/health/ready", port);
        // The startup probe holds liveness off while the model downloads and loads: at least as long as the image's own
        // HEALTHCHECK start period allows.
        var startup = container.StartupProbe;
        var budget = TimeSpan.FromSeconds((startup.InitialDelaySeconds ?? 0) + (startup.PeriodSeconds ?? 10) * (startup.FailureThreshold ?? 3));
        Assert.True(budget >= Dockerfile.StartPeriod, $"startup probe allows {budget}, less than the Dockerfile's start period {Dockerfile.StartPeriod}");
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void KeepsStateOnTheVolumeWhereTheImageKeepsIt(string overlay)
    {
        var container = RenderedManifests.Container(overlay);
        var pod = RenderedManifests.Single<V1Deployment>(overlay).Spec.Template.Spec;
        var claimVolume = Assert.Single(pod.Volumes, v => v.PersistentVolumeClaim is not null);
        var mount = Assert.Single(container.VolumeMounts, m => m.Name == claimVolume.Name);
        Assert.Equal(Dockerfile.Volume, mount.MountPath);

        // The Hugging Face cache and the adapters, wherever the image or the settings put them, are on that volume.
        var environment = new Dictionary<string, string>(Dockerfile.Environment);
        foreach (var (key, value) in RenderedManifests.Single<V1ConfigMap>(overlay).Data)
            environment[key] = value;
        foreach (var key in new[] { "HF_HOME", "Adapters__Directory" })
            Assert.StartsWith(mount.MountPath.TrimEnd('/') + "/", environment[key], StringComparison.Ordinal);

        // With a read-only root, temporary files need a writable volume of their own.
        if (container.SecurityContext?.ReadOnlyRootFilesystem == true)
            Assert.Contains(container.VolumeMounts, m => m.MountPath == "/tmp");
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void RunsAsTheImagesNonRootUser(string overlay)
    {
        // USER app: the .NET images' non-root user, UID and GID 1654 (their APP_UID).
        Assert.Equal("app", Dockerfile.User);
        var pod = RenderedManifests.Single<V1Deployment>(overlay).Spec.Template.Spec;
        var container = RenderedManifests.Container(overlay);
        Assert.True(pod.SecurityContext.RunAsNonRoot);
        Assert.Equal(1654, container.SecurityContext?.RunAsUser ?? pod.SecurityContext.RunAsUser);
        Assert.Equal(1654, pod.SecurityContext.FsGroup); // the volume is writable by that user
        Assert.False(container.SecurityContext?.AllowPrivilegeEscalation);
        Assert.Equal(["ALL"], container.SecurityContext?.Capabilities?.Drop);
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void RequestsResourcesForTheDevice(string overlay)
    {
        var resources = RenderedManifests.Container(overlay).Resources;
        Assert.True(resources.Requests.ContainsKey("cpu"));
        // GPT-J-6B in int8 peaks at 6.4 GiB resident while loading (README, measured).
        Assert.True(resources.Requests["memory"].ToDecimal() >= 8m * (1L << 30), $"memory request {resources.Requests["memory"]}");
        Assert.True(resources.Limits["memory"].ToDecimal() >= resources.Requests["memory"].ToDecimal());

        var device = RenderedManifests.Single<V1ConfigMap>(overlay).Data["Model__Device"];
        var image = RenderedManifests.Container(overlay).Image;
        if (device.StartsWith("cuda", StringComparison.Ordinal))
        {
            Assert.Equal(1m, resources.Limits["nvidia.com/gpu"].ToDecimal());
            Assert.EndsWith(":cuda", image, StringComparison.Ordinal); // docker build --build-arg TORCH_BACKEND=cuda -t ...:cuda
        }
        else
        {
            Assert.Equal("cpu", device);
            Assert.False(resources.Limits.ContainsKey("nvidia.com/gpu"));
            Assert.DoesNotContain(":cuda", image, StringComparison.Ordinal);
        }
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void SettingsAreOptionsTheServiceReadsWithValuesItAccepts(string overlay)
    {
        var data = RenderedManifests.Single<V1ConfigMap>(overlay).Data;
        foreach (var key in data.Keys)
        {
            var parts = key.Split("__");
            if (parts.Length == 1)
            {
                Assert.True(s_plainVariables.Contains(key), $"{key} is not a variable the service reads");
                continue;
            }
            Type? type = null;
            Assert.True(parts.Length == 2 && s_sections.TryGetValue(parts[0], out type), $"{key}: no configuration section {parts[0]}");
            Assert.True(type!.GetProperty(parts[1], BindingFlags.Public | BindingFlags.Instance | BindingFlags.IgnoreCase) is { CanWrite: true },
                $"{key}: {type.Name} has no option {parts[1]}");
        }

        // Bound and validated as the service does at start (ValidateDataAnnotations).
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(data.Select(kv => KeyValuePair.Create(kv.Key.Replace("__", ":", StringComparison.Ordinal), (string?)kv.Value)))
            .Build();
        foreach (var (section, type) in s_sections)
        {
            var options = configuration.GetSection(section).Get(type) ?? Activator.CreateInstance(type)!;
            var errors = new List<ValidationResult>();
            Assert.True(Validator.TryValidateObject(options, new ValidationContext(options), errors, validateAllProperties: true),
                $"{overlay}: {string.Join("; ", errors.Select(e => e.ErrorMessage))}");
        }

        // The admin key comes from a Secret, never from the ConfigMap.
        Assert.DoesNotContain(data.Keys, k => k.Equals("Admin__ApiKey", StringComparison.OrdinalIgnoreCase));
        var adminKey = Assert.Single(RenderedManifests.Container(overlay).Env, e => e.Name == "Admin__ApiKey");
        Assert.NotNull(adminKey.ValueFrom?.SecretKeyRef);
    }

    /// <summary>The probes' paths, asked of the real service: live at once, ready once the model is loaded.</summary>
    [Fact]
    public async Task ProbePathsAnswerOnTheRunningService()
    {
        var container = RenderedManifests.Container(RenderedManifests.OverlayNames().First(o => !RenderedManifests.IsCluster(o)));
        await using var app = new ServiceApplication();
        using var client = app.CreateClient();
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync(container.LivenessProbe.HttpGet.Path)).StatusCode);
        await app.ModelLoaded();
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync(container.ReadinessProbe.HttpGet.Path)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync(container.StartupProbe.HttpGet.Path)).StatusCode);
    }

    internal static void AssertProbe(V1Probe? probe, string path, V1ContainerPort port)
    {
        Assert.NotNull(probe);
        Assert.Equal(path, probe.HttpGet.Path);
        Assert.Contains(probe.HttpGet.Port.Value, new[] { port.Name, port.ContainerPort.ToString(CultureInfo.InvariantCulture) });
        Assert.True(probe.TimeoutSeconds is >= 2, "a probe needs a timeout above the default 1 s: a busy CPU answers slowly");
    }
}

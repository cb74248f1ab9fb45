using System.ComponentModel.DataAnnotations;
using System.Globalization;
using System.Reflection;
using k8s;
using k8s.Models;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;
using ParaphraseService.Api.Storage;
using Dockerfile = ParaphraseService.Api.Tests.Deployment.RenderedManifests.Dockerfile;

namespace ParaphraseService.Api.Tests.Deployment;

/// <summary>
/// The cluster-mode overlays (deploy/overlays/cluster and its GPU variant), rendered and read strictly: serving replicas
/// that roll and scale (no ReadWriteOnce volume) behind the Service and a disruption budget, a trainer, PostgreSQL as a
/// StatefulSet, every node pointed at it through one Secret, and every setting an option the service accepts.
/// </summary>
public class ClusterManifestTests
{
    public static TheoryData<string> Overlays() => new(RenderedManifests.OverlayNames().Where(RenderedManifests.IsCluster));

    [Fact]
    public void ThereIsAClusterOverlayAndAGpuVariant() => Assert.Equal(["cluster", "cluster-gpu"], RenderedManifests.OverlayNames().Where(RenderedManifests.IsCluster));

    [Theory]
    [MemberData(nameof(Overlays))]
    public void ServingReplicasRollBehindTheServiceAndABudgetWhileOneTrainerTrains(string overlay)
    {
        var objects = RenderedManifests.Objects(overlay);
        Assert.Equal(["ConfigMap", "Deployment", "Deployment", "PodDisruptionBudget", "Service", "Service", "StatefulSet"],
            objects.Select(o => ((IKubernetesObject)o).Kind).Order(StringComparer.Ordinal));
        var (serve, trainer) = (Deployment(overlay, "paraphrase-serve"), Deployment(overlay, "paraphrase-trainer"));

        Assert.Equal(3, serve.Spec.Replicas);
        Assert.Equal("RollingUpdate", serve.Spec.Strategy.Type);
        Assert.Equal(1, trainer.Spec.Replicas);
        Assert.Equal("serve", Env(serve, "Node__Roles").Value);
        Assert.Equal("train", Env(trainer, "Node__Roles").Value);
        foreach (var deployment in new[] { serve, trainer })
        {
            // No ReadWriteOnce volume to wait for: a pod's /data is its own.
            Assert.DoesNotContain(deployment.Spec.Template.Spec.Volumes, v => v.PersistentVolumeClaim is not null);
            Assert.All(deployment.Spec.Selector.MatchLabels, label => Assert.Equal(label.Value, deployment.Spec.Template.Metadata.Labels[label.Key]));
        }

        // The Service and the budget select the serving pods, never the trainer.
        var service = objects.OfType<V1Service>().Single(s => s.Metadata.Name == "paraphrase");
        Assert.True(Selects(service.Spec.Selector, serve));
        Assert.False(Selects(service.Spec.Selector, trainer));
        var budget = RenderedManifests.Single<V1PodDisruptionBudget>(overlay);
        Assert.True(Selects(budget.Spec.Selector.MatchLabels, serve));
        Assert.False(Selects(budget.Spec.Selector.MatchLabels, trainer));
        Assert.True(budget.Spec.MaxUnavailable?.Value == "1" || int.Parse(budget.Spec.MinAvailable?.Value ?? "0", CultureInfo.InvariantCulture) >= 1);
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void EveryNodeReachesTheStatefulSetsPostgresThroughOneSecret(string overlay)
    {
        var objects = RenderedManifests.Objects(overlay);
        var postgres = RenderedManifests.Single<V1StatefulSet>(overlay);
        var database = Assert.Single(postgres.Spec.Template.Spec.Containers);
        var password = Assert.Single(database.Env, e => e.Name == "POSTGRES_PASSWORD").ValueFrom.SecretKeyRef;
        Assert.NotEmpty(postgres.Spec.VolumeClaimTemplates); // its data outlives the pod
        Assert.Contains(database.VolumeMounts, m => postgres.Spec.VolumeClaimTemplates.Any(t => t.Metadata.Name == m.Name));
        var postgresService = objects.OfType<V1Service>().Single(s => s.Metadata.Name == postgres.Spec.ServiceName);
        Assert.True(Selects(postgresService.Spec.Selector, postgres.Spec.Template.Metadata.Labels));
        Assert.Equal(5432, postgresService.Spec.Ports.Single().Port);

        foreach (var name in new[] { "paraphrase-serve", "paraphrase-trainer" })
        {
            var connection = Env(Deployment(overlay, name), "Storage__PostgreSql").ValueFrom.SecretKeyRef;
            Assert.Equal(password.Name, connection.Name); // the password and the connection string live together
            Assert.NotEqual(password.Key, connection.Key);
            Assert.NotEqual(true, connection.Optional); // a node without its database does not start half-configured
        }
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void NodesListenProbeRunAsTheImagesUserAndKeepStateWhereTheImageDoes(string overlay)
    {
        foreach (var deployment in RenderedManifests.Objects(overlay).OfType<V1Deployment>())
        {
            var container = Assert.Single(deployment.Spec.Template.Spec.Containers);
            var port = Assert.Single(container.Ports);
            Assert.Equal(Dockerfile.Port, port.ContainerPort);
            DeployManifestTests.AssertProbe(container.LivenessProbe, "/health/live", port);
            DeployManifestTests.AssertProbe(container.ReadinessProbe, "/health/ready", port); // waits for the database too
            DeployManifestTests.AssertProbe(container.StartupProbe, "/health/ready", port);
            var pod = deployment.Spec.Template.Spec;
            Assert.True(pod.SecurityContext.RunAsNonRoot);
            Assert.Equal(1654, pod.SecurityContext.RunAsUser);
            Assert.Equal(["ALL"], container.SecurityContext?.Capabilities?.Drop);
            var data = Assert.Single(container.VolumeMounts, m => m.MountPath == Dockerfile.Volume);
            Assert.NotNull(Assert.Single(pod.Volumes, v => v.Name == data.Name).EmptyDir);
            var settings = Settings(overlay);
            foreach (var key in new[] { "HF_HOME", "Adapters__Directory", "FineTunes__Directory" })
                Assert.StartsWith(Dockerfile.Volume + "/", settings[key], StringComparison.Ordinal);
            Assert.NotNull(Assert.Single(container.Env, e => e.Name == "Admin__ApiKey").ValueFrom?.SecretKeyRef);
        }
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void SettingsAreOptionsTheServiceReadsWithValuesItAccepts(string overlay)
    {
        foreach (var deployment in RenderedManifests.Objects(overlay).OfType<V1Deployment>())
        {
            var container = Assert.Single(deployment.Spec.Template.Spec.Containers);
            var settings = new Dictionary<string, string>(Settings(overlay));
            foreach (var variable in container.Env.Where(e => e.Value is not null))
                settings[variable.Name] = variable.Value;
            settings["Storage__PostgreSql"] = "Host=paraphrase-postgres;Database=paraphrase;Username=paraphrase;Password=from-the-secret";
            foreach (var key in settings.Keys.Concat(container.Env.Select(e => e.Name)).Distinct())
            {
                var parts = key.Split("__");
                if (parts.Length == 1)
                {
                    Assert.True(DeployManifestTests.s_plainVariables.Contains(key), $"{key} is not a variable the service reads");
                    continue;
                }
                Type? type = null;
                Assert.True(parts.Length == 2 && DeployManifestTests.s_sections.TryGetValue(parts[0], out type), $"{key}: no configuration section {parts[0]}");
                Assert.True(type!.GetProperty(parts[1], BindingFlags.Public | BindingFlags.Instance | BindingFlags.IgnoreCase) is { CanWrite: true },
                    $"{key}: {type.Name} has no option {parts[1]}");
            }
            var configuration = new ConfigurationBuilder()
                .AddInMemoryCollection(settings.Select(kv => KeyValuePair.Create(kv.Key.Replace("__", ":", StringComparison.Ordinal), (string?)kv.Value)))
                .Build();
            foreach (var (section, type) in DeployManifestTests.s_sections)
            {
                var options = configuration.GetSection(section).Get(type) ?? Activator.CreateInstance(type)!;
                var errors = new List<ValidationResult>();
                Assert.True(Validator.TryValidateObject(options, new ValidationContext(options), errors, validateAllProperties: true),
                    $"{overlay}/{deployment.Metadata.Name}: {string.Join("; ", errors.Select(e => e.ErrorMessage))}");
            }
            var storage = configuration.GetSection(StorageOptions.Section).Get<StorageOptions>()!;
            Assert.True(storage.IsCluster);
            Assert.True(new StorageOptionsValidation().Validate(null, storage).Succeeded);
            var node = configuration.GetSection(NodeOptions.Section).Get<NodeOptions>()!;
            var nodeCheck = new NodeOptionsValidation(Options.Create(storage)).Validate(null, node);
            Assert.True(nodeCheck.Succeeded, nodeCheck.FailureMessage);
            Assert.DoesNotContain(settings.Keys, k => k.Equals("Admin__ApiKey", StringComparison.OrdinalIgnoreCase) && settings[k].Length > 0);
        }
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void TheGpuVariantGivesEveryNodeAGpuAndTheCudaImage(string overlay)
    {
        var device = Settings(overlay)["Model__Device"];
        foreach (var deployment in RenderedManifests.Objects(overlay).OfType<V1Deployment>())
        {
            var container = Assert.Single(deployment.Spec.Template.Spec.Containers);
            Assert.True(container.Resources.Requests["memory"].ToDecimal() >= 8m * (1L << 30));
            if (device.StartsWith("cuda", StringComparison.Ordinal))
            {
                Assert.Equal(1m, container.Resources.Limits["nvidia.com/gpu"].ToDecimal());
                Assert.EndsWith(":cuda", container.Image, StringComparison.Ordinal);
            }
            else
            {
                Assert.Equal("cpu", device);
                Assert.False(container.Resources.Limits.ContainsKey("nvidia.com/gpu"));
            }
        }
        Assert.Equal(overlay.EndsWith("-gpu", StringComparison.Ordinal), device.StartsWith("cuda", StringComparison.Ordinal));
    }

    private static V1Deployment Deployment(string overlay, string name) =>
        Assert.Single(RenderedManifests.Objects(overlay).OfType<V1Deployment>(), d => d.Metadata.Name == name);

    private static V1EnvVar Env(V1Deployment deployment, string name) =>
        Assert.Single(Assert.Single(deployment.Spec.Template.Spec.Containers).Env, e => e.Name == name);

    private static IDictionary<string, string> Settings(string overlay) => RenderedManifests.Single<V1ConfigMap>(overlay).Data;

    private static bool Selects(IDictionary<string, string> selector, V1Deployment deployment) => Selects(selector, deployment.Spec.Template.Metadata.Labels);

    private static bool Selects(IDictionary<string, string> selector, IDictionary<string, string> labels) =>
        selector.All(s => labels.TryGetValue(s.Key, out var value) && value == s.Value);
}

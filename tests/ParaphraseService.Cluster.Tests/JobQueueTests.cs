using System.Net;
using System.Net.Http.Json;
using ParaphraseService.Api.FineTuning;
using Xunit.Abstractions;

namespace ParaphraseService.Cluster.Tests;

/// <summary>Jobs as a work queue in PostgreSQL: accepted by a serving replica, claimed by exactly one of two trainers.</summary>
[Collection(ClusterCollection.Name)]
public sealed class JobQueueTests(PostgresServer server, ITestOutputHelper output)
{
    [Fact]
    public async Task TwelveJobsOnTwoTrainersRunOnceEachSucceedAndPublishOnceAndTheServingReplicaNeverTrains()
    {
        await using var cluster = await Cluster.StartAsync(server, Cluster.TrainableModel, [("serve", "serve"), ("t1", "train"), ("t2", "train")]);
        var serve = cluster["serve"];
        var data = Jobs.ReverseWords(24, 1);
        var ids = new List<string>();
        for (var i = 1; i <= 12; i++)
            ids.Add((await Jobs.SubmitAsync(serve.Admin, Jobs.Options($"job-{i:D2}", maxSteps: 3), data)).Id);
        // A second job for an adapter that a job already produces is refused, whichever replica is asked.
        using (var twice = await Jobs.PostAsync(serve.Admin, Jobs.Options("job-01", maxSteps: 3), data))
            Assert.Equal(HttpStatusCode.Conflict, twice.StatusCode);

        var jobs = await Jobs.FinishedAsync(serve.Admin, ids, TimeSpan.FromMinutes(4));
        Assert.All(jobs, j => Assert.True(j.State == FineTuneState.Succeeded, $"{j.Id}: {j.State} {j.Error}"));
        Assert.All(jobs, j => Assert.Equal(3, j.Step));
        var byTrainer = jobs.GroupBy(j => j.Trainer).ToDictionary(g => g.Key ?? "(none)", g => g.Count());
        output.WriteLine("jobs per trainer: " + string.Join(", ", byTrainer.Select(p => $"{p.Key}: {p.Value}")));
        Assert.Equal(["t1", "t2"], byTrainer.Keys.Order()); // both trainers took jobs; the serving replica none

        // Each job was claimed once, and each adapter published once, by the job that made it.
        Assert.Equal(12L, cluster.Scalar<long>("SELECT count(*) FROM jobs WHERE claims = 1 AND state = 'succeeded'"));
        Assert.Equal(12L, cluster.Scalar<long>("SELECT count(*) FROM adapters WHERE publications = 1 AND info->>'origin' = 'fine-tune'"));
        Assert.Equal(0L, cluster.Scalar<long>("SELECT count(*) FROM files WHERE owner LIKE 'job:%:checkpoint'")); // checkpoints go with the job
        Assert.DoesNotContain(serve.LogLines, line => line.Contains("claimed by this node", StringComparison.Ordinal));

        // Published adapters are served by the serving replica; a trainer answers only health and metrics.
        using (var paraphrase = await serve.Client.PostAsJsonAsync("/paraphrase", new { text = "red cat sun", adapter = "job-07", temperature = 0, candidates = 1, maxNewTokens = 4 }))
            await paraphrase.JsonAsync(HttpStatusCode.OK);
        var trainer = cluster["t1"];
        var refused = await (await trainer.Client.PostAsJsonAsync("/paraphrase", new { text = "red cat sun" })).JsonAsync(HttpStatusCode.ServiceUnavailable);
        Assert.Contains("Node:Roles=train", refused.GetProperty("detail").GetString());
        Assert.Equal(HttpStatusCode.OK, (await trainer.Client.GetAsync("/health/ready")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await trainer.Client.GetAsync("/metrics")).StatusCode);

        // Two publishers of one name: a job whose adapter name was taken while it trained fails, naming the reason.
        var taken = Jobs.AdapterFiles(cluster, "job-01");
        var late = await Jobs.SubmitAsync(serve.Admin, Jobs.Options("late", maxSteps: 40), data);
        await Jobs.FollowAsync(serve.Admin, late.Id, (type, _) => type == "step", TimeSpan.FromMinutes(2));
        await (await serve.Admin.PostAsJsonAsync("/admin/adapters", new { name = "late", path = taken })).JsonAsync(HttpStatusCode.Created);
        var failed = (await Jobs.FinishedAsync(serve.Admin, [late.Id], TimeSpan.FromMinutes(2))).Single();
        Assert.Equal(FineTuneState.Failed, failed.State);
        Assert.Contains("an adapter named 'late' already exists", failed.Error);
        Assert.Equal(1, cluster.Scalar<int>("SELECT publications FROM adapters WHERE name = 'late'"));
        Directory.Delete(taken, recursive: true);
    }
}

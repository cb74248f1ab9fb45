using ParaphraseService.Api.FineTuning;
using Xunit.Abstractions;

namespace ParaphraseService.Cluster.Tests;

/// <summary>A trainer killed mid-job (kill -9): its lease runs out, another trainer claims the job and resumes it.</summary>
[Collection(ClusterCollection.Name)]
public sealed class FailoverTests(PostgresServer server, ITestOutputHelper output)
{
    [Fact]
    public async Task ATrainerKilledAfterItsFirstCheckpointIsReplacedByAnotherThatResumesFromItAndMatchesAnUninterruptedRun()
    {
        await using var cluster = await Cluster.StartAsync(server, Cluster.TrainableModel, [("serve", "serve"), ("t1", "train"), ("t2", "train")]);
        var serve = cluster["serve"];
        var data = Jobs.ReverseWords(40, 2);
        var job = await Jobs.SubmitAsync(serve.Admin, Jobs.Options("resumed", maxSteps: 60, checkpointEvery: 3), data);

        // Followed on the serving replica: the trainer's events reach it through the database.
        var events = await Jobs.FollowAsync(serve.Admin, job.Id, (type, _) => type == "checkpoint", TimeSpan.FromMinutes(2));
        var holder = (await Jobs.GetAsync(serve.Admin, job.Id)).Trainer!;
        cluster[holder].KillHard();
        var checkpointAtKill = cluster.Scalar<int>("SELECT checkpoint_step FROM jobs WHERE id = $1", job.Id);
        Assert.True(checkpointAtKill >= 3);
        Assert.Contains(events, e => e.Type == "step");

        var resumed = (await Jobs.FinishedAsync(serve.Admin, [job.Id], TimeSpan.FromMinutes(3))).Single();
        Assert.True(resumed.State == FineTuneState.Succeeded, $"{resumed.State}: {resumed.Error}");
        var survivor = holder == "t1" ? "t2" : "t1";
        Assert.Equal(survivor, resumed.Trainer);
        Assert.Equal(checkpointAtKill, resumed.ResumedFromStep); // from the killed trainer's last checkpoint, not from 0
        Assert.Equal(60, resumed.Step);
        Assert.Equal(2, cluster.Scalar<int>("SELECT claims FROM jobs WHERE id = $1", job.Id));
        output.WriteLine($"{holder} killed after the checkpoint at step {checkpointAtKill}; {survivor} resumed from step {resumed.ResumedFromStep}");

        // The same job straight through, on the surviving trainer: the same adapter.
        var straight = await Jobs.SubmitAsync(serve.Admin, Jobs.Options("straight", maxSteps: 60, checkpointEvery: 3), data);
        var done = (await Jobs.FinishedAsync(serve.Admin, [straight.Id], TimeSpan.FromMinutes(3))).Single();
        Assert.Equal(FineTuneState.Succeeded, done.State);
        Assert.Null(done.ResumedFromStep);
        var a = Jobs.AdapterFiles(cluster, "resumed");
        var b = Jobs.AdapterFiles(cluster, "straight");
        var largest = Jobs.LargestDifference(a, b);
        output.WriteLine($"largest difference to the uninterrupted adapter: {largest:E2}");
        Assert.True(largest < 1e-5, $"the resumed adapter differs by {largest}");
        Directory.Delete(a, recursive: true);
        Directory.Delete(b, recursive: true);
    }
}

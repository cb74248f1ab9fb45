using System.Text.RegularExpressions;
using ParaphraseService.Api.FineTuning;
using Xunit.Abstractions;

namespace ParaphraseService.Cluster.Tests;

/// <summary>A trainer that loses its lease mid-job (taken over in the database, as after a pause longer than the lease).</summary>
[Collection(ClusterCollection.Name)]
public sealed partial class LeaseLossTests(PostgresServer server, ITestOutputHelper output)
{
    [Fact]
    public async Task ATrainerWhoseLeaseIsTakenMidJobDiscardsItsPassPublishesNothingAndTheJobEndsOnceWhenClaimedAgain()
    {
        await using var cluster = await Cluster.StartAsync(server, Cluster.TrainableModel, [("serve", "serve"), ("t1", "train")]);
        var (serve, t1) = (cluster["serve"], cluster["t1"]);
        var job = await Jobs.SubmitAsync(serve.Admin, Jobs.Options("taken", maxSteps: 40, checkpointEvery: 3), Jobs.ReverseWords(40, 4));
        await Jobs.FollowAsync(serve.Admin, job.Id, (type, _) => type == "checkpoint", TimeSpan.FromMinutes(2));

        // Another node holds the job now, for an hour: t1's next write finds it gone.
        using (var connection = cluster.Open())
        using (var take = new Npgsql.NpgsqlCommand("UPDATE jobs SET trainer = 'ghost', lease_until = now() + interval '1 hour' WHERE id = $1 AND state = 'running'", connection)
        { Parameters = { new() { Value = job.Id } } })
            Assert.Equal(1, take.ExecuteNonQuery());
        await Cluster.EventuallyAsync(() => Task.FromResult(t1.LogLines.Any(l => l.Contains("dropped at step", StringComparison.Ordinal))),
            TimeSpan.FromMinutes(1), "t1 dropping the job");
        var metrics = await t1.Client.GetStringAsync("/metrics");
        Assert.True(long.Parse(LeasesLost().Match(metrics).Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) >= 1, metrics);
        Assert.Equal(0L, cluster.Scalar<long>("SELECT count(*) FROM adapters"));
        Assert.Equal("ghost", cluster.Scalar<string>("SELECT trainer FROM jobs WHERE id = $1", job.Id));
        var checkpoint = cluster.Scalar<int>("SELECT checkpoint_step FROM jobs WHERE id = $1", job.Id);

        // The lease runs out: t1 claims the job again, resumes from the last checkpoint, and publishes the adapter once.
        using (var connection = cluster.Open())
        using (var expire = new Npgsql.NpgsqlCommand("UPDATE jobs SET lease_until = now() - interval '1 second' WHERE id = $1", connection) { Parameters = { new() { Value = job.Id } } })
            Assert.Equal(1, expire.ExecuteNonQuery());
        var done = (await Jobs.FinishedAsync(serve.Admin, [job.Id], TimeSpan.FromMinutes(3))).Single();
        Assert.True(done.State == FineTuneState.Succeeded, $"{done.State}: {done.Error}");
        Assert.Equal("t1", done.Trainer);
        Assert.Equal(checkpoint, done.ResumedFromStep);
        Assert.Equal(2, cluster.Scalar<int>("SELECT claims FROM jobs WHERE id = $1", job.Id));
        Assert.Equal(1, cluster.Scalar<int>("SELECT publications FROM adapters WHERE name = 'taken'"));
        output.WriteLine($"lease taken after the checkpoint at step {checkpoint}; reclaimed and resumed from step {done.ResumedFromStep}");
    }

    [GeneratedRegex(@"paraphrase_fine_tune_leases_lost(?:_total)?(?:\{[^}]*\})? (\d+)")]
    private static partial Regex LeasesLost();
}

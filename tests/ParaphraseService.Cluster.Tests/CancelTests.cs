using System.Diagnostics;
using System.Net;
using ParaphraseService.Api.FineTuning;
using Xunit.Abstractions;

namespace ParaphraseService.Cluster.Tests;

/// <summary>A cancel sent to a replica that does not train the job reaches its trainer within seconds.</summary>
[Collection(ClusterCollection.Name)]
public sealed class CancelTests(PostgresServer server, ITestOutputHelper output)
{
    [Fact]
    public async Task ACancelOnAServingReplicaStopsTheJobOnItsTrainerWithinSeconds()
    {
        await using var cluster = await Cluster.StartAsync(server, Cluster.TrainableModel, [("serve", "serve"), ("t1", "train")]);
        var serve = cluster["serve"];
        var job = await Jobs.SubmitAsync(serve.Admin, Jobs.Options("endless", maxSteps: 100_000), Jobs.ReverseWords(40, 3));
        await Jobs.FollowAsync(serve.Admin, job.Id, (type, _) => type == "step", TimeSpan.FromMinutes(2));
        Assert.Equal("t1", (await Jobs.GetAsync(serve.Admin, job.Id)).Trainer);

        var following = Jobs.FollowAsync(serve.Admin, job.Id, (type, data) => type == "state" && data.AsJob().IsFinished, TimeSpan.FromMinutes(1));
        var clock = Stopwatch.StartNew();
        using (var cancel = await serve.Admin.PostAsync($"/admin/fine-tunes/{job.Id}/cancel", null))
            Assert.Equal(HttpStatusCode.Accepted, cancel.StatusCode);
        var last = (await following).Last();
        var ended = last.Data.AsJob();
        output.WriteLine($"cancel on the serving replica -> job cancelled on its trainer after {clock.Elapsed.TotalMilliseconds:F0} ms (lease 3 s, renewed every 1 s)");
        Assert.Equal(FineTuneState.Cancelled, ended.State);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"the cancel took {clock.Elapsed}");
        Assert.True(ended.Step < 100_000);
        using (var again = await serve.Admin.PostAsync($"/admin/fine-tunes/{job.Id}/cancel", null))
            Assert.Equal(HttpStatusCode.Conflict, again.StatusCode);
    }
}

using System.Text.Json;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using ParaphraseService.Api.FineTuning;

namespace ParaphraseService.Api.Tests.FineTuning;

/// <summary>The job store on a real SQLite file: conditional state changes, order, losses, reopening.</summary>
public sealed class FineTuneJobStoreTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("job-store-").FullName;
    private static readonly DateTimeOffset Now = new(2026, 11, 30, 12, 0, 0, TimeSpan.Zero);

    private FineTuneJobStore Open() => new(Options.Create(new FineTuneOptions { Directory = _folder }), new Environment(_folder));

    private static JsonElement Summary => JsonDocument.Parse("""{"trainCount": 9}""").RootElement;

    [Fact]
    public void StateChangesAreConditionalSoACancelAndAStartCannotBothWin()
    {
        var store = Open();
        store.Create("ft-a", new FineTuneRequest(Adapter: "a"), "/x/a.jsonl", Summary, Now);
        Assert.True(store.TryFinish("ft-a", FineTuneState.Cancelled, null, Now, onlyIfQueued: true)); // cancelled while queued...
        Assert.False(store.TryStart("ft-a", 10, 0, null, Summary, Now)); // ...so the runner cannot start it
        Assert.Equal(FineTuneState.Cancelled, store.Get("ft-a")!.State);

        store.Create("ft-b", new FineTuneRequest(Adapter: "b"), "/x/b.jsonl", Summary, Now);
        Assert.True(store.TryStart("ft-b", 10, 0, null, Summary, Now));
        Assert.False(store.TryFinish("ft-b", FineTuneState.Cancelled, null, Now, onlyIfQueued: true)); // running: not at once
        Assert.True(store.RequestCancel("ft-b"));
        Assert.True(store.Get("ft-b")!.CancelRequested);
        Assert.True(store.TryFinish("ft-b", FineTuneState.Cancelled, null, Now));
        Assert.False(store.TryFinish("ft-b", FineTuneState.Failed, "late", Now)); // an ended job stays ended
        Assert.False(store.RequestCancel("ft-b"));
    }

    [Fact]
    public void JobsSurviveReopeningAndRunningOnesGoBackToTheQueueInOrder()
    {
        var store = Open();
        foreach (var id in new[] { "ft-1", "ft-2", "ft-3" })
            store.Create(id, new FineTuneRequest(Adapter: id[3..]), $"/x/{id}.jsonl", Summary, Now);
        Assert.True(store.TryStart("ft-2", 5, 0, null, Summary, Now));
        store.RecordStep("ft-2", 1, 1, 2.5, 100, 40);
        store.RecordStep("ft-2", 2, 1, 2.25, 100, 30);
        store.RecordEval("ft-2", 2, 2.4);
        store.RecordStep("ft-2", 3, 1, double.NaN, 100, 20); // a diverged step is not recorded
        store.RecordMetrics("ft-2", new Dictionary<string, double> { ["train_loss"] = 2.25, ["bad"] = double.PositiveInfinity });

        var reopened = Open(); // the process restarted
        Assert.Equal(1, reopened.RequeueInterrupted());
        Assert.Equal(["ft-1", "ft-2", "ft-3"], reopened.Queued().Select(j => j.Id)); // the interrupted job keeps its place
        var job = reopened.Get("ft-2")!;
        Assert.Equal([1, 2], job.TrainLoss.Select(p => p.Step));
        Assert.Equal(2.4, job.EvalLoss.Single().Loss);
        Assert.Equal(3, job.Step);
        Assert.Equal(["train_loss"], job.Metrics.Keys);
        Assert.Equal(1, job.QueuePosition);
        Assert.Equal("2", job.Options.Adapter);
        Assert.Equal(3, reopened.Count());
        Assert.Equal(["ft-3", "ft-2"], reopened.List(2).Select(j => j.Id)); // newest first
        Assert.True(File.Exists(Path.Combine(_folder, "jobs.db")));
    }

    [Fact]
    public void ADirectoryThatCannotHoldTheDatabaseIsNamedInTheError()
    {
        var file = Path.Combine(_folder, "not-a-folder");
        File.WriteAllText(file, "x");
        var error = Assert.Throws<InvalidOperationException>(() =>
            new FineTuneJobStore(Options.Create(new FineTuneOptions { Directory = file }), new Environment(_folder)));
        Assert.Contains("FineTunes:Directory", error.Message);
    }

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools(); // release the file before deleting it
        Directory.Delete(_folder, recursive: true);
    }

    private sealed class Environment(string root) : IHostEnvironment
    {
        public string EnvironmentName { get; set; } = "Test";
        public string ApplicationName { get; set; } = "test";
        public string ContentRootPath { get; set; } = root;
        public Microsoft.Extensions.FileProviders.IFileProvider ContentRootFileProvider { get; set; } = new Microsoft.Extensions.FileProviders.NullFileProvider();
    }
}

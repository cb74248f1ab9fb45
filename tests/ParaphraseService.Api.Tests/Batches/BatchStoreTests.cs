using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using ParaphraseService.Api.Batches;
using ParaphraseService.Api.FineTuning;
using ParaphraseService.Api.Storage;

namespace ParaphraseService.Api.Tests.Batches;

/// <summary>The embedded batch store on a real SQLite file, seen by two nodes (the shared store's contract, run here too).</summary>
public sealed class BatchStoreTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("batch-store-").FullName;

    private BatchStore Open(string node) => new(Options.Create(new FineTuneOptions { Directory = _folder }), new Environment(_folder),
        Options.Create(new NodeOptions { Id = node }), TimeProvider.System);

    [Fact]
    public Task LeasesKeepTwoNodesOffEachOthersLinesAndCountsStayExact() => BatchStoreContract.LeasesKeepTwoNodesOffEachOthersLinesAndCountsStayExact(Open("a"), Open("b"));

    [Fact]
    public void ABatchGivenBackIsClaimedAtOnceAndCompletes() => BatchStoreContract.ABatchGivenBackIsClaimedAtOnceAndCompletes(Open("a"), Open("b"));

    [Fact]
    public void ARestartedProcessTakesBackWhatItHeldAndTheTablesSitBesideTheJobs()
    {
        var jobs = new FineTuneJobStore(Options.Create(new FineTuneOptions { Directory = _folder }), new Environment(_folder));
        var before = Open("old-process");
        before.Create("batch_1", [new BatchLineInput(1, "x", "{}", null)], DateTimeOffset.UtcNow);
        Assert.Equal("batch_1", before.ClaimNext(TimeSpan.FromHours(1)));
        var after = Open("new-process");
        Assert.Null(after.ClaimNext(TimeSpan.FromHours(1))); // another process's lease...
        after.Recover(); // ...but the file is this process's now: what the last one held comes back at once
        Assert.Equal("batch_1", after.ClaimNext(TimeSpan.FromHours(1)));
        Assert.Equal(1, after.TakePending("batch_1", 0, 1).Single().Attempts); // never taken before: the old process only claimed it
        Assert.Equal(0, jobs.Count()); // one database file, the jobs' tables untouched
        Assert.True(File.Exists(Path.Combine(_folder, "jobs.db")));
    }

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
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

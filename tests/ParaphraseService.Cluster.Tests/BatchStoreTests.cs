using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using ParaphraseService.Api.Storage;
using ParaphraseService.Api.Storage.PostgreSql;
using ParaphraseService.Api.Tests.Batches;

namespace ParaphraseService.Cluster.Tests;

/// <summary>The shared batch store on a real PostgreSQL server, seen by two nodes: the contract the embedded store meets too.</summary>
[Collection(ClusterCollection.Name)]
public sealed class BatchStoreTests(PostgresServer server) : IDisposable
{
    private readonly List<IDisposable> _databases = [];

    private async Task<(PostgreSqlBatchStore A, PostgreSqlBatchStore B)> OpenAsync()
    {
        var connectionString = server.CreateDatabase("b" + Guid.NewGuid().ToString("N")[..12]);
        var meters = new ServiceCollection().AddMetrics().BuildServiceProvider().GetRequiredService<IMeterFactory>();
        async Task<PostgreSqlBatchStore> Node(string name)
        {
            var db = new PostgreSqlDatabase(Options.Create(new StorageOptions { PostgreSql = connectionString }), Options.Create(new NodeOptions { Id = name }),
                new StorageMetrics(meters), NullLogger<PostgreSqlDatabase>.Instance);
            _databases.Add(db);
            await db.StartAsync(CancellationToken.None); // migrates (both nodes: the second finds it done)
            return new PostgreSqlBatchStore(db);
        }
        return (await Node("a"), await Node("b"));
    }

    [Fact]
    public async Task LeasesKeepTwoNodesOffEachOthersLinesAndCountsStayExact()
    {
        var (a, b) = await OpenAsync();
        await BatchStoreContract.LeasesKeepTwoNodesOffEachOthersLinesAndCountsStayExact(a, b);
    }

    [Fact]
    public async Task ABatchGivenBackIsClaimedAtOnceAndCompletes()
    {
        var (a, b) = await OpenAsync();
        BatchStoreContract.ABatchGivenBackIsClaimedAtOnceAndCompletes(a, b);
    }

    public void Dispose()
    {
        foreach (var db in _databases) db.Dispose();
    }
}

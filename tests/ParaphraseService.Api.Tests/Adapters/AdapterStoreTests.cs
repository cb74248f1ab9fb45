using ParaphraseService.Api.Adapters;
using ParaphraseService.Model.Lora.Peft;

namespace ParaphraseService.Api.Tests.Adapters;

/// <summary>The store as the fine-tuning job and the scheduler use it, without HTTP.</summary>
public class AdapterStoreTests
{
    [Fact]
    public async Task ATrainedAdapterIsPublishedFromAStagingFolderWithOriginFineTune()
    {
        await using var service = await AdapterServiceHost.StartAsync();
        var store = service.Store;
        var staging = store.CreateStagingFolder();
        foreach (var (name, content) in AdapterFixtures.Files("q-v"))
            File.WriteAllBytes(Path.Combine(staging, name), content);

        var published = store.Publish("trained", staging, origin: AdapterOrigin.FineTune);

        Assert.False(published.Replaced);
        Assert.Equal("fine-tune", published.Adapter.Origin);
        Assert.False(Directory.Exists(staging));
        Assert.Equal(Path.Combine(store.Directory, "trained"), store.GetFolder("trained"));
        Assert.Equal(["trained"], store.List().Select(a => a.Name));
    }

    [Fact]
    public async Task AFailedPublishDeletesItsStagingFolderAndOnlyStagingFoldersArePublished()
    {
        await using var service = await AdapterServiceHost.StartAsync();
        var store = service.Store;
        var staging = store.CreateStagingFolder();
        File.WriteAllText(Path.Combine(staging, "adapter_config.json"), "{}");

        Assert.Throws<AdapterValidationException>(() => store.Publish("broken", staging));
        Assert.False(Directory.Exists(staging));

        Assert.Throws<ArgumentException>(() => store.Publish("elsewhere", AdapterFixtures.Peft("q-v")));
        Assert.True(File.Exists(Path.Combine(AdapterFixtures.Peft("q-v"), "adapter_config.json")));
        Assert.Empty(service.StoreEntries());
    }

    [Fact]
    public async Task LeftoversOfAnInterruptedRunAreSweptAtStartAndHandEditedFoldersAreListedWithTheirProblem()
    {
        var root = Directory.CreateTempSubdirectory("adapters-store-").FullName;
        try
        {
            Directory.CreateDirectory(Path.Combine(root, ".staging-0123"));
            Directory.CreateDirectory(Path.Combine(root, ".deleted-x-0123"));
            File.WriteAllText(Path.Combine(root, ".upload-0123"), "zip");
            Directory.CreateDirectory(Path.Combine(root, "Not-A-Name"));
            Directory.CreateDirectory(Path.Combine(root, "hand-made"));
            File.WriteAllText(Path.Combine(root, "hand-made", "adapter_config.json"), "not json");

            await using var service = await AdapterServiceHost.StartAsync(new() { ["Adapters:Directory"] = root });

            Assert.Equal(["Not-A-Name", "hand-made"], service.StoreEntries());
            var adapter = Assert.Single(service.Store.List());
            Assert.Equal("hand-made", adapter.Name);
            Assert.Null(adapter.Rank);
            Assert.Contains("adapter_config.json", adapter.Problem);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }
}

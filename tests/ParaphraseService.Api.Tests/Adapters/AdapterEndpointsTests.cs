using System.Net;
using System.Text.Json;
using ParaphraseService.Model.Lora.Peft;
using ParaphraseService.Model.Tests;

namespace ParaphraseService.Api.Tests.Adapters;

/// <summary>Upload, register, list, get, replace and delete, over HTTP against the tiny GPT-J.</summary>
public class AdapterEndpointsTests
{
    [Fact]
    public async Task AnUploadedZipIsListedWithItsRankTargetsAndOrigin()
    {
        await using var service = await AdapterServiceHost.StartAsync();
        var before = DateTimeOffset.UtcNow;

        var response = await service.Admin.PostAsync("/admin/adapters", AdapterFixtures.Form("q-v", AdapterFixtures.ZipFixture("q-v")));
        var created = await response.JsonAsync(HttpStatusCode.Created);
        Assert.Equal("/adapters/q-v", response.Headers.Location?.OriginalString);
        Assert.Equal("q-v", created.GetProperty("name").GetString());

        var list = await (await service.Client.GetAsync("/adapters")).JsonAsync();
        var listed = Assert.Single(list.EnumerateArray());
        var adapter = await (await service.Client.GetAsync("/adapters/q-v")).JsonAsync();
        foreach (var info in (JsonElement[])[created, listed, adapter])
        {
            Assert.Equal("q-v", info.GetProperty("name").GetString());
            Assert.Equal(4, info.GetProperty("rank").GetInt32());
            Assert.Equal(8, info.GetProperty("alpha").GetDouble());
            Assert.False(info.GetProperty("useRslora").GetBoolean());
            Assert.Equal(["v_proj", "q_proj"], info.GetProperty("targetModules").EnumerateArray().Select(e => e.GetString()));
            Assert.Equal(JsonValueKind.Null, info.GetProperty("targetModulesPattern").ValueKind);
            Assert.Equal("tests/fixtures/gptj-tiny/safetensors", info.GetProperty("baseModel").GetString());
            Assert.Equal("upload", info.GetProperty("origin").GetString());
            Assert.InRange(info.GetProperty("created").GetDateTimeOffset(), before.AddSeconds(-1), DateTimeOffset.UtcNow.AddSeconds(1));
            Assert.Equal(0, info.GetProperty("requestsServed").GetInt64());
        }

        // On disk: the PEFT files plus the metadata written for the upload; its size is what the listing says.
        var folder = Path.Combine(service.Store.Directory, "q-v");
        Assert.Equal(["adapter_config.json", "adapter_model.safetensors", "paraphrase_adapter.json"],
            Directory.EnumerateFiles(folder).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.Equal(Directory.EnumerateFiles(folder).Sum(f => new FileInfo(f).Length), adapter.GetProperty("sizeBytes").GetInt64());
        Assert.Equal(AdapterOrigin.Upload, AdapterMetadata.Load(Path.Combine(folder, AdapterMetadata.FileName)).Origin);
        Assert.Equal(["q-v"], service.StoreEntries()); // no staging folder left behind

        // The scheduler counts served requests; the listing shows them.
        service.Store.RecordRequestServed("q-v");
        service.Store.RecordRequestServed("q-v");
        Assert.Equal(2, (await (await service.Client.GetAsync("/adapters/q-v")).JsonAsync()).GetProperty("requestsServed").GetInt64());
    }

    [Fact]
    public async Task AZipWithOneTopLevelFolderIsAcceptedAndKeepsItsOwnMetadata()
    {
        await using var service = await AdapterServiceHost.StartAsync();
        var zip = AdapterFixtures.ZipFixture("all-linear-rslora", folder: "my-run");

        var created = await (await service.Admin.PostAsync("/admin/adapters", AdapterFixtures.Form("rslora", zip))).JsonAsync(HttpStatusCode.Created);

        Assert.Equal("fine-tune", created.GetProperty("origin").GetString());
        Assert.Equal(DateTimeOffset.Parse("2026-11-30T12:34:56Z", System.Globalization.CultureInfo.InvariantCulture), created.GetProperty("created").GetDateTimeOffset());
        Assert.Equal("Paraphrase: {text}\nParaphrase:", created.GetProperty("promptTemplate").GetString());
        Assert.True(created.GetProperty("useRslora").GetBoolean());
        Assert.Equal(12, created.GetProperty("targetModules").GetArrayLength());
        // The metadata file is stored as uploaded, its unknown field included.
        Assert.Equal(File.ReadAllBytes(Path.Combine(AdapterFixtures.Peft("all-linear-rslora"), AdapterMetadata.FileName)),
            File.ReadAllBytes(Path.Combine(service.Store.Directory, "rslora", AdapterMetadata.FileName)));
    }

    [Fact]
    public async Task AServerFolderIsRegisteredByCopyingItAndLeftAsItWas()
    {
        await using var service = await AdapterServiceHost.StartAsync();
        var source = Path.Combine(service.Root, "trainer-output");
        Directory.CreateDirectory(Path.Combine(source, "checkpoint-100"));
        foreach (var (name, content) in AdapterFixtures.Files("regex-mlp"))
            File.WriteAllBytes(Path.Combine(source, name), content);
        File.WriteAllText(Path.Combine(source, "trainer_log.txt"), "not an adapter file");
        var sourceFiles = Directory.EnumerateFileSystemEntries(source).Order(StringComparer.Ordinal).ToList();

        var created = await (await service.Admin.PostJsonAsync("/admin/adapters", new { name = "mlp", path = source })).JsonAsync(HttpStatusCode.Created);

        Assert.Equal(2, created.GetProperty("rank").GetInt32());
        Assert.Equal(@".*\.mlp\.fc_(in|out)", created.GetProperty("targetModulesPattern").GetString());
        Assert.Equal(JsonValueKind.Null, created.GetProperty("targetModules").ValueKind);
        Assert.Equal("upload", created.GetProperty("origin").GetString());
        Assert.Equal(sourceFiles, Directory.EnumerateFileSystemEntries(source).Order(StringComparer.Ordinal));
        Assert.Equal(["adapter_config.json", "adapter_model.safetensors", "paraphrase_adapter.json"],
            Directory.EnumerateFileSystemEntries(Path.Combine(service.Store.Directory, "mlp")).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task RegisteringAPathThatIsNotAnAbsoluteFolderIs400()
    {
        await using var service = await AdapterServiceHost.StartAsync();

        var relative = await (await service.Admin.PostJsonAsync("/admin/adapters", new { name = "x", path = "tests/fixtures/peft/q-v" })).AssertProblemAsync(HttpStatusCode.BadRequest);
        Assert.Contains("not an absolute path", relative.Detail());
        var missing = await (await service.Admin.PostJsonAsync("/admin/adapters", new { name = "x", path = Path.Combine(service.Root, "nope") })).AssertProblemAsync(HttpStatusCode.BadRequest);
        Assert.Contains("no folder", missing.Detail());
        var noPath = await (await service.Admin.PostJsonAsync("/admin/adapters", new { name = "x" })).AssertProblemAsync(HttpStatusCode.BadRequest);
        Assert.Contains("path: is required", noPath.Detail());
        Assert.Empty(service.StoreEntries());
    }

    [Theory]
    [InlineData("""{"name":"x","path":"/tmp","replace":"x"}""", "replace", "must be true or false")]
    [InlineData("""{"name":"x","path":"/tmp","replace":"yes"}""", "replace", "must be true or false")]
    [InlineData("""{"name":"x","path":7}""", "path", "must be a string")]
    [InlineData("""{"name":"x","path":"/tmp","force":true}""", "force", "is not a field of a registration")]
    [InlineData("""{"name":"x","path":"\ud800"}""", "path", "unpaired UTF-16 surrogate")]
    [InlineData("""["x"]""", "body", "send a JSON object")]
    [InlineData("""{"name":"x",""", "body", "not valid JSON")]
    public async Task ARegistrationIsReadStrictlyAndItsProblemNamesTheField(string json, string field, string problem)
    {
        await using var service = await AdapterServiceHost.StartAsync();
        using var content = new StringContent(json, System.Text.Encoding.UTF8, "application/json");
        var refused = await (await service.Admin.PostAsync("/admin/adapters", content)).AssertProblemAsync(HttpStatusCode.BadRequest);
        Assert.Contains(problem, refused.GetProperty("errors").GetProperty(field)[0].GetString(), StringComparison.Ordinal);
        Assert.StartsWith(field + ": ", refused.Detail(), StringComparison.Ordinal);
        Assert.DoesNotContain("ParaphraseService", refused.Detail(), StringComparison.Ordinal);
        Assert.Empty(service.StoreEntries());
    }

    [Fact]
    public async Task DeleteRemovesTheAdapterAtomicallyAndThenAnswers404()
    {
        await using var service = await AdapterServiceHost.StartAsync();
        await (await service.Admin.PostAsync("/admin/adapters", AdapterFixtures.Form("gone", AdapterFixtures.ZipFixture("q-v")))).JsonAsync(HttpStatusCode.Created);
        var changed = new List<string>();
        service.Store.Changed += changed.Add;

        Assert.Equal(HttpStatusCode.NoContent, (await service.Admin.DeleteAsync("/admin/adapters/gone")).StatusCode);

        Assert.Equal(["gone"], changed);
        Assert.Empty(service.StoreEntries()); // neither the folder nor its tombstone is left
        Assert.Empty((await (await service.Client.GetAsync("/adapters")).JsonAsync()).EnumerateArray());
        var get = await (await service.Client.GetAsync("/adapters/gone")).AssertProblemAsync(HttpStatusCode.NotFound);
        Assert.Contains("no adapter named 'gone'", get.Detail());
        await (await service.Admin.DeleteAsync("/admin/adapters/gone")).AssertProblemAsync(HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task ADuplicateNameIs409UnlessReplaceIsAsked()
    {
        await using var service = await AdapterServiceHost.StartAsync();
        await (await service.Admin.PostAsync("/admin/adapters", AdapterFixtures.Form("mine", AdapterFixtures.ZipFixture("q-v")))).JsonAsync(HttpStatusCode.Created);

        var conflict = await (await service.Admin.PostAsync("/admin/adapters", AdapterFixtures.Form("mine", AdapterFixtures.ZipFixture("regex-mlp")))).AssertProblemAsync(HttpStatusCode.Conflict);
        Assert.Contains("already exists", conflict.Detail());
        var conflictByPath = await (await service.Admin.PostJsonAsync("/admin/adapters", new { name = "mine", path = AdapterFixtures.Peft("regex-mlp") })).AssertProblemAsync(HttpStatusCode.Conflict);
        Assert.Contains("replace", conflictByPath.Detail());
        Assert.Equal(4, (await (await service.Client.GetAsync("/adapters/mine")).JsonAsync()).GetProperty("rank").GetInt32());

        var replaced = await (await service.Admin.PostAsync("/admin/adapters", AdapterFixtures.Form("mine", AdapterFixtures.ZipFixture("regex-mlp"), replace: true))).JsonAsync(HttpStatusCode.OK);
        Assert.Equal(2, replaced.GetProperty("rank").GetInt32());
        Assert.Equal(2, (await (await service.Client.GetAsync("/adapters/mine")).JsonAsync()).GetProperty("rank").GetInt32());
        Assert.Equal(["mine"], service.StoreEntries());

        var replacedByPath = await (await service.Admin.PostJsonAsync("/admin/adapters", new { name = "mine", path = AdapterFixtures.Peft("q-v"), replace = true })).JsonAsync(HttpStatusCode.OK);
        Assert.Equal(4, replacedByPath.GetProperty("rank").GetInt32());
    }

    [Fact]
    public async Task UploadsBeforeTheModelIsLoadedAre503AndListingStillWorks()
    {
        var missing = Path.Combine(Path.GetTempPath(), "no-such-model-" + Guid.NewGuid());
        await using var service = await AdapterServiceHost.StartAsync(new() { ["Model:Source"] = missing });

        var upload = await (await service.Admin.PostAsync("/admin/adapters", AdapterFixtures.Form("q-v", AdapterFixtures.ZipFixture("q-v")))).AssertProblemAsync(HttpStatusCode.ServiceUnavailable);
        Assert.Contains("failed to load", upload.Detail());
        await (await service.Admin.PostJsonAsync("/admin/adapters", new { name = "q-v", path = AdapterFixtures.Peft("q-v") })).AssertProblemAsync(HttpStatusCode.ServiceUnavailable);
        Assert.Empty((await (await service.Client.GetAsync("/adapters")).JsonAsync()).EnumerateArray());
        Assert.Empty(service.StoreEntries());
    }

    [LinuxFact]
    public async Task ANamedPipeInAFolderRegisteredByPathIsRefusedNotCopied()
    {
        // Copying a named pipe waits for a writer: the registration (and its request) would never end.
        await using var service = await AdapterServiceHost.StartAsync();
        var folder = Directory.CreateTempSubdirectory("adapter-with-pipe-").FullName;
        foreach (var (name, bytes) in AdapterFixtures.Files("q-v"))
            File.WriteAllBytes(Path.Combine(folder, name), bytes);
        NamedPipes.Create(Path.Combine(folder, "adapter_model.safetensors"));

        var response = await service.Admin.PostJsonAsync("/admin/adapters", new { name = "piped", path = folder }).WaitAsync(TimeSpan.FromSeconds(30));

        var problem = await response.AssertProblemAsync(HttpStatusCode.BadRequest);
        Assert.Contains("adapter_model.safetensors' is not a regular file but a named pipe (FIFO)", problem.Detail());
        Assert.Empty(service.StoreEntries());
        Directory.Delete(folder, recursive: true);
    }

    [Fact]
    public async Task AnUnsupportedContentTypeIs415()
    {
        await using var service = await AdapterServiceHost.StartAsync();
        var response = await service.Admin.PostAsync("/admin/adapters", new StringContent("q-v", System.Text.Encoding.UTF8, "text/plain"));
        var problem = await response.AssertProblemAsync(HttpStatusCode.UnsupportedMediaType);
        // titled as every 415 of the service, saying what was sent
        Assert.Equal("Unsupported Media Type", problem.GetProperty("title").GetString());
        Assert.EndsWith("(got 'text/plain; charset=utf-8').", problem.Detail());
    }

    [Fact]
    public async Task TheEndpointsAreInTheOpenApiDocument()
    {
        await using var service = await AdapterServiceHost.StartAsync(waitForModel: false);
        var paths = (await (await service.Client.GetAsync("/swagger/v1/swagger.json")).JsonAsync()).GetProperty("paths");
        Assert.True(paths.GetProperty("/adapters").TryGetProperty("get", out _));
        Assert.True(paths.GetProperty("/adapters/{name}").TryGetProperty("get", out _));
        Assert.True(paths.GetProperty("/admin/adapters").TryGetProperty("post", out _));
        Assert.True(paths.GetProperty("/admin/adapters/{name}").TryGetProperty("delete", out _));
        await service.WaitForModelAsync();
    }

    [Fact]
    public void InvalidOptionsStopTheServiceAtStart()
    {
        // StartError: the start's own error, not the test host's disposal race
        Assert.Contains("Adapters:MaxFiles", ServiceApplication.StartError(new() { ["Adapters:MaxFiles"] = "0" }).Message);
        Assert.Contains("Admin:ApiKey", ServiceApplication.StartError(new() { ["Admin:ApiKey"] = "short" }).Message);
    }
}

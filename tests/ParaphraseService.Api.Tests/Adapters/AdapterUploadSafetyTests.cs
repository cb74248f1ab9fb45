using System.Text.Json;
using System.Net.Http.Json;
using System.Net;
using System.Text;
using Microsoft.AspNetCore.Http;

namespace ParaphraseService.Api.Tests.Adapters;

/// <summary>Names, zip-slip, zip bombs, unexpected files, sizes: refused with a ProblemDetails, nothing left behind.</summary>
public class AdapterUploadSafetyTests
{
    public static TheoryData<string> BadNames => new()
    {
        "../x", "a/b", "a\\b", "..", "a..b", "Upper", "UPPER-case", new string('a', 65), ".hidden", "-dash", "_under", "a b", "abc\n", "é",
    };

    [Theory]
    [MemberData(nameof(BadNames))]
    public async Task BadNamesAre400AndNothingIsStored(string name)
    {
        await using var service = await AdapterServiceHost.StartAsync();

        var upload = await (await service.Admin.PostAsync("/admin/adapters", AdapterFixtures.Form(name, AdapterFixtures.ZipFixture("q-v")))).AssertProblemAsync(HttpStatusCode.BadRequest);
        var byPath = await (await service.Admin.PostJsonAsync("/admin/adapters", new { name, path = AdapterFixtures.Peft("q-v") })).AssertProblemAsync(HttpStatusCode.BadRequest);

        foreach (var problem in (System.Text.Json.JsonElement[])[upload, byPath])
        {
            Assert.Equal("Invalid adapter name", problem.GetProperty("title").GetString());
            Assert.Single(problem.Errors("name"));
        }
        Assert.Empty(service.StoreEntries());
        Assert.Equal(["adapters"], Directory.EnumerateFileSystemEntries(service.Root).Select(Path.GetFileName));
    }

    [Fact]
    public async Task BadNameMessagesSayWhatIsWrong()
    {
        await using var service = await AdapterServiceHost.StartAsync();
        async Task<string> Problem(string name) =>
            (await (await service.Admin.PostAsync("/admin/adapters", AdapterFixtures.Form(name, AdapterFixtures.ZipFixture("q-v")))).AssertProblemAsync(HttpStatusCode.BadRequest)).Detail();

        Assert.Contains("'..'", await Problem("../x"));
        Assert.Contains("'/'", await Problem("a/b"));
        Assert.Contains("uppercase", await Problem("Upper"));
        Assert.Contains("65 characters", await Problem(new string('a', 65)));
        Assert.Contains("required", (await (await service.Admin.PostAsync("/admin/adapters", AdapterFixtures.Form(null, AdapterFixtures.ZipFixture("q-v")))).AssertProblemAsync(HttpStatusCode.BadRequest)).Detail());
    }

    [Fact]
    public async Task BadNamesInTheUrlAre400()
    {
        await using var service = await AdapterServiceHost.StartAsync();
        await (await service.Client.GetAsync("/adapters/Upper")).AssertProblemAsync(HttpStatusCode.BadRequest);
        await (await service.Client.GetAsync("/adapters/..%2Fx")).AssertProblemAsync(HttpStatusCode.BadRequest);
        await (await service.Client.GetAsync("/adapters/" + new string('a', 65))).AssertProblemAsync(HttpStatusCode.BadRequest);
        await (await service.Admin.DeleteAsync("/admin/adapters/a..b")).AssertProblemAsync(HttpStatusCode.BadRequest);
        await (await service.Admin.DeleteAsync("/admin/adapters/..%2F..%2Fetc")).AssertProblemAsync(HttpStatusCode.BadRequest);
    }

    [Theory]
    [InlineData("../adapter_config.json")]
    [InlineData("x/../../adapter_config.json")]
    [InlineData("/tmp/adapter_config.json")]
    [InlineData("..\\adapter_config.json")]
    [InlineData("C:/adapter_config.json")]
    public async Task ZipSlipEntriesAre400AndNothingIsWritten(string entry)
    {
        await using var service = await AdapterServiceHost.StartAsync();
        var files = AdapterFixtures.Files("q-v");
        files[entry] = Encoding.UTF8.GetBytes("{}");
        files.Remove("adapter_config.json");

        var problem = await (await service.Admin.PostAsync("/admin/adapters", AdapterFixtures.Form("slip", AdapterFixtures.ZipFiles(files)))).AssertProblemAsync(HttpStatusCode.BadRequest);

        Assert.Contains("unsafe paths", problem.Detail());
        Assert.Contains(entry, problem.Detail());
        Assert.Empty(service.StoreEntries());
        Assert.False(File.Exists(Path.Combine(service.Root, "adapter_config.json")));
    }

    [Fact]
    public async Task AZipBombOverTheUnpackedLimitIs400()
    {
        // 8 MiB of zeros deflate to a few KiB; the limit is 4 MiB.
        await using var service = await AdapterServiceHost.StartAsync(new() { ["Adapters:MaxUnpackedBytes"] = (4 << 20).ToString(System.Globalization.CultureInfo.InvariantCulture) });
        var files = AdapterFixtures.Files("q-v");
        files["adapter_model.safetensors"] = new byte[8 << 20];
        var zip = AdapterFixtures.ZipFiles(files);
        Assert.True(zip.Length < 64 << 10);

        var problem = await (await service.Admin.PostAsync("/admin/adapters", AdapterFixtures.Form("bomb", zip))).AssertProblemAsync(HttpStatusCode.BadRequest);

        Assert.Contains("Adapters:MaxUnpackedBytes", problem.Detail());
        Assert.Empty(service.StoreEntries());
    }

    [Fact]
    public async Task AnEntryCompressedMoreThanAnyAdapterIs400EvenUnderTheSizeLimit()
    {
        await using var service = await AdapterServiceHost.StartAsync();
        var files = AdapterFixtures.Files("q-v");
        files["adapter_model.safetensors"] = new byte[8 << 20];

        var problem = await (await service.Admin.PostAsync("/admin/adapters", AdapterFixtures.Form("bomb", AdapterFixtures.ZipFiles(files)))).AssertProblemAsync(HttpStatusCode.BadRequest);

        Assert.Contains("Adapters:MaxCompressionRatio", problem.Detail());
        Assert.Contains("adapter_model.safetensors", problem.Detail());
        Assert.Empty(service.StoreEntries());
    }

    [Fact]
    public async Task AnEntryThatUnpacksToMoreThanItDeclaresIsStopped()
    {
        await using var service = await AdapterServiceHost.StartAsync();
        var files = AdapterFixtures.Files("q-v");
        files["adapter_model.safetensors"] = new byte[3 << 20];
        var zip = AdapterFixtures.ZipFiles(files);
        // Lie in the headers: the 3 MiB entry declares 1000 bytes (so no declared-size or ratio check sees it).
        SetUncompressedSize(zip, "adapter_model.safetensors", 1000);

        var problem = await (await service.Admin.PostAsync("/admin/adapters", AdapterFixtures.Form("liar", zip))).AssertProblemAsync(HttpStatusCode.BadRequest);

        Assert.Contains("'adapter_model.safetensors' is corrupt", problem.Detail());
        Assert.Contains("CRC-32", problem.Detail());
        Assert.Empty(service.StoreEntries());
    }

    [Fact]
    public async Task ACorruptedEntryIs400()
    {
        await using var service = await AdapterServiceHost.StartAsync();
        var zip = AdapterFixtures.Zip(AdapterFixtures.Files("q-v"), System.IO.Compression.CompressionLevel.NoCompression);
        // Flip one byte inside the stored safetensors data (its tensor bytes: the header is still valid).
        var name = "adapter_model.safetensors"u8;
        var header = zip.AsSpan().IndexOf(name);
        zip[header + name.Length + 5000] ^= 0xFF;

        var problem = await (await service.Admin.PostAsync("/admin/adapters", AdapterFixtures.Form("flipped", zip))).AssertProblemAsync(HttpStatusCode.BadRequest);

        Assert.Contains("CRC-32", problem.Detail());
        Assert.Empty(service.StoreEntries());
    }

    [Fact]
    public async Task TooManyFilesIs400()
    {
        await using var service = await AdapterServiceHost.StartAsync();
        var entries = AdapterFixtures.Files("q-v").ToList();
        for (var i = 0; i < 20; i++)
            entries.Add(KeyValuePair.Create($"extra-{i}.txt", new byte[] { 1 }));

        var problem = await (await service.Admin.PostAsync("/admin/adapters", AdapterFixtures.Form("many", AdapterFixtures.Zip(entries)))).AssertProblemAsync(HttpStatusCode.BadRequest);

        Assert.Contains("22 files; at most 16", problem.Detail());
        Assert.Empty(service.StoreEntries());
    }

    [Fact]
    public async Task UnexpectedFilesNestedFoldersAndDuplicatesAre400()
    {
        await using var service = await AdapterServiceHost.StartAsync();
        async Task<string> Problem(IEnumerable<KeyValuePair<string, byte[]>> entries) =>
            (await (await service.Admin.PostAsync("/admin/adapters", AdapterFixtures.Form("odd", AdapterFixtures.Zip(entries)))).AssertProblemAsync(HttpStatusCode.BadRequest)).Detail();
        var files = AdapterFixtures.Files("q-v");

        Assert.Contains("unexpected files 'run.sh'", await Problem(files.Append(KeyValuePair.Create("run.sh", "#!/bin/sh"u8.ToArray()))));
        Assert.Contains("inside one folder", await Problem(files.Select(f => KeyValuePair.Create("a/b/" + f.Key, f.Value))));
        Assert.Contains("inside one folder", await Problem(files.Select((f, i) => KeyValuePair.Create((i == 0 ? "a/" : "b/") + f.Key, f.Value))));
        Assert.Contains("more than once: 'adapter_config.json'", await Problem(files.Append(KeyValuePair.Create("x/adapter_config.json", files["adapter_config.json"]))));
        Assert.Contains("no files", await Problem([]));
        Assert.Empty(service.StoreEntries());
    }

    [Fact]
    public async Task AFileThatIsNotAZipOrAFormWithoutAFileIs400()
    {
        await using var service = await AdapterServiceHost.StartAsync();

        var notZip = await (await service.Admin.PostAsync("/admin/adapters", AdapterFixtures.Form("x", "not a zip"u8.ToArray()))).AssertProblemAsync(HttpStatusCode.BadRequest);
        Assert.Contains("not a readable zip", notZip.Detail());

        using var noFile = new MultipartFormDataContent { { new StringContent("x"), "name" } };
        var missing = await (await service.Admin.PostAsync("/admin/adapters", noFile)).AssertProblemAsync(HttpStatusCode.BadRequest);
        Assert.Contains("'file'", missing.Detail());
        Assert.Empty(service.StoreEntries());
    }

    [Fact]
    public async Task AnOversizedBodyIs413()
    {
        await using var service = await AdapterServiceHost.StartAsync(new() { ["Adapters:MaxUploadBytes"] = "65536" });
        var files = AdapterFixtures.Files("q-v");
        var noise = new byte[200_000];
        new Random(1).NextBytes(noise);
        files["README.md"] = noise;
        var zip = AdapterFixtures.ZipFiles(files);

        var problem = await (await service.Admin.PostAsync("/admin/adapters", AdapterFixtures.Form("big", zip))).AssertProblemAsync(HttpStatusCode.RequestEntityTooLarge);
        Assert.Contains("Adapters:MaxUploadBytes", problem.Detail());

        // Without a Content-Length (chunked), the limit is enforced while the body is read.
        using var form = AdapterFixtures.Form("big", zip);
        var body = new MemoryStream();
        await form.CopyToAsync(body);
        body.Position = 0;
        using var chunked = new StreamContent(body);
        chunked.Headers.ContentType = form.Headers.ContentType;
        using var request = new HttpRequestMessage(HttpMethod.Post, "/admin/adapters") { Content = chunked };
        request.Headers.TransferEncodingChunked = true;
        await (await service.Admin.SendAsync(request)).AssertProblemAsync(HttpStatusCode.RequestEntityTooLarge);

        Assert.Empty(service.StoreEntries());
    }

    [Fact]
    public async Task ABodyThatEndsEarlyIsNeverA500()
    {
        await using var service = await AdapterServiceHost.StartAsync();
        using var tcp = new System.Net.Sockets.TcpClient();
        await tcp.ConnectAsync(service.Client.BaseAddress!.Host, service.Client.BaseAddress.Port);
        var stream = tcp.GetStream();
        var request = "POST /admin/adapters HTTP/1.1\r\nHost: localhost\r\n" +
            $"X-Api-Key: {AdapterServiceHost.AdminKey}\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n" +
            "--b\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\ncut\r\n--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.zip\"\r\n\r\nPK";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(request));
        tcp.Client.Shutdown(System.Net.Sockets.SocketShutdown.Send);

        // Kestrel resets the half-closed connection, so the client may never read the answer: ask the service. It
        // is 400 (body ended early) or, when Kestrel sees the closed connection first, 499 (client closed request).
        Assert.Contains(await service.NextStatusAsync(), (int[])[StatusCodes.Status400BadRequest, 499]);
        Assert.Empty(service.StoreEntries());
    }

    [Theory]
    [InlineData("/admin/adapters")]
    [InlineData("/admin/fine-tunes")]
    public async Task ABodyThatSaysMultipartButIsNotIsA400(string path)
    {
        // ASP.NET Core reads these with an IOException ("Unexpected end of Stream"), not the InvalidDataException of a
        // malformed part: both are the client's body, never a 500.
        await using var service = await AdapterServiceHost.StartAsync();
        string[] bodies =
        [
            "garbage",
            "--b\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\ncut\r\n--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.zip\"\r\n\r\nPK",
        ];
        foreach (var body in bodies)
        {
            using var content = new StringContent(body);
            content.Headers.ContentType = System.Net.Http.Headers.MediaTypeHeaderValue.Parse("multipart/form-data; boundary=b");
            var problem = await (await service.Admin.PostAsync(path, content)).AssertProblemAsync(HttpStatusCode.BadRequest);
            Assert.Contains("multipart form cannot be read", problem.GetProperty("detail").GetString(), StringComparison.OrdinalIgnoreCase);
        }
        Assert.Empty(service.StoreEntries());
        using var ready = await service.Client.GetAsync("/health/ready");
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
    }

    [Fact]
    public async Task AnAdapterWhoseNumbersOverflowFailsItsOwnRequestsNotTheReplica()
    {
        await using var service = await AdapterServiceHost.StartAsync();
        // Refused at upload: an update that overflows float32 on any input.
        var refused = AdapterFixtures.ZipFiles(AdapterFixtures.WithConfig("q-v", c => c["lora_alpha"] = 1e308));
        var problem = await (await service.Admin.PostAsync("/admin/adapters", AdapterFixtures.Form("overflow", refused))).AssertProblemAsync(HttpStatusCode.BadRequest);
        Assert.Contains("overflows float32", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);

        // Below that bound but still far too large for this model: accepted, and its requests fail alone, with 422 (its
        // logits are NaN), however many of them come in a row; the replica stays ready and serves the others.
        var large = AdapterFixtures.ZipFiles(AdapterFixtures.WithConfig("regex-mlp", c => c["lora_alpha"] = 1e30));
        (await service.Admin.PostAsync("/admin/adapters", AdapterFixtures.Form("huge", large))).EnsureSuccessStatusCode();
        for (var i = 0; i < 8; i++)
        {
            // the tiny model's vocabulary has the first 128 ids only: a raw prompt of those
            using var completion = await service.Client.PostAsJsonAsync("/v1/completions", new { model = "huge", prompt = "!#", max_tokens = 4, seed = i });
            Assert.Equal(HttpStatusCode.UnprocessableEntity, completion.StatusCode);
            var error = (await completion.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error");
            Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
            Assert.Contains("adapter 'huge'", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        }
        using var ready = await service.Client.GetAsync("/health/ready");
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        using var plain = await service.Client.PostAsJsonAsync("/v1/completions", new { prompt = "#!", max_tokens = 4 });
        Assert.Equal(HttpStatusCode.OK, plain.StatusCode);
    }

    /// <summary>Rewrites an entry's uncompressed size in its local header and its central directory record.</summary>
    private static void SetUncompressedSize(byte[] zip, string entryName, uint size)
    {
        var name = Encoding.UTF8.GetBytes(entryName);
        var patched = 0;
        for (var i = 0; i + 46 < zip.Length; i++)
        {
            var signature = BitConverter.ToUInt32(zip, i);
            var (nameOffset, sizeOffset) = signature switch
            {
                0x04034b50 => (30, 22), // local file header
                0x02014b50 => (46, 24), // central directory file header
                _ => (-1, -1),
            };
            if (nameOffset < 0 || !zip.AsSpan(i + nameOffset).StartsWith(name))
                continue;
            BitConverter.TryWriteBytes(zip.AsSpan(i + sizeOffset, 4), size);
            patched++;
        }
        Assert.Equal(2, patched);
    }
}

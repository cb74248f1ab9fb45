using System.IO.Compression;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;

using ParaphraseService.Model.Tests;

namespace ParaphraseService.Api.Tests.Adapters;

/// <summary>The committed fixtures (tests/fixtures) and ways to zip and post them.</summary>
internal static class AdapterFixtures
{
    /// <summary>The tiny GPT-J (n_embd 64, 2 layers, MLP 256) the PEFT fixtures were made for.</summary>
    public static string TinyModel => Fixtures.Get("gptj-tiny", "safetensors");

    /// <summary>A PEFT fixture folder: q-v (r 4, alpha 8, q/v), regex-mlp (r 2), all-linear-rslora (with our metadata).</summary>
    public static string Peft(string name) => Fixtures.Get("peft", name);

    /// <summary>The files of a PEFT fixture, by name.</summary>
    public static Dictionary<string, byte[]> Files(string fixture) =>
        Directory.EnumerateFiles(Peft(fixture)).ToDictionary(f => Path.GetFileName(f), File.ReadAllBytes);

    /// <summary>A fixture's files with some adapter_config.json fields changed.</summary>
    public static Dictionary<string, byte[]> WithConfig(string fixture, Action<JsonObject> edit)
    {
        var files = Files(fixture);
        var config = JsonNode.Parse(files["adapter_config.json"])!.AsObject();
        edit(config);
        files["adapter_config.json"] = System.Text.Encoding.UTF8.GetBytes(config.ToJsonString());
        return files;
    }

    /// <summary>A zip of the given entries, in order.</summary>
    public static byte[] Zip(IEnumerable<KeyValuePair<string, byte[]>> entries, CompressionLevel level = CompressionLevel.Optimal)
    {
        using var stream = new MemoryStream();
        using (var zip = new ZipArchive(stream, ZipArchiveMode.Create, leaveOpen: true))
        {
            foreach (var (name, content) in entries)
            {
                using var entry = zip.CreateEntry(name, level).Open();
                entry.Write(content);
            }
        }
        return stream.ToArray();
    }

    /// <summary>A zip of a fixture's files, at the top or inside <paramref name="folder"/>.</summary>
    public static byte[] ZipFixture(string fixture, string? folder = null) => ZipFiles(Files(fixture), folder);

    public static byte[] ZipFiles(Dictionary<string, byte[]> files, string? folder = null) =>
        Zip(files.Select(f => KeyValuePair.Create(folder is null ? f.Key : $"{folder}/{f.Key}", f.Value)));

    /// <summary>The admin upload form: name, file (the zip), and replace when given.</summary>
    public static MultipartFormDataContent Form(string? name, byte[] zip, bool? replace = null)
    {
        var form = new MultipartFormDataContent();
        if (name is not null)
            form.Add(new StringContent(name), "name");
        var file = new ByteArrayContent(zip);
        file.Headers.ContentType = new MediaTypeHeaderValue("application/zip");
        form.Add(file, "file", "adapter.zip");
        if (replace is { } r)
            form.Add(new StringContent(r ? "true" : "false"), "replace");
        return form;
    }
}

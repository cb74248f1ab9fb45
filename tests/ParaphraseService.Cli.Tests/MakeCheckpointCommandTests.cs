using System.Text.Json;

namespace ParaphraseService.Cli.Tests;

public sealed class MakeCheckpointCommandTests : IDisposable
{
    private readonly string _temp = Directory.CreateTempSubdirectory("make-checkpoint-tests-").FullName;

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    [Fact]
    public async Task DemoRandomPresetWritesAFolderThatGeneratesLikeTheRandomDemoModel()
    {
        var folder = Path.Combine(_temp, "demo");
        // float32 and seed 0: the random demo model's own weights; a small shard size so the sharded path is the one tested.
        var make = await CliRunner.RunAsync("make-checkpoint", "--preset", "demo-random", "--out", folder, "--dtype", "float32", "--shard-size-mb", "10");

        Assert.True(make.ExitCode == 0, make.StandardError);
        Assert.Contains("tensor 45/45 (shard 3/3)", make.StandardError);
        var summary = Assert.Single(make.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith($"wrote {folder}: 7 files (3 weight file(s), 45 tensors)", summary);
        Assert.True(File.Exists(Path.Combine(folder, "model.safetensors.index.json")));

        const string prompt = "The service rewrites sentences";
        var fromFolder = await CliRunner.RunAsync("generate", "--model", folder, "--prompt", prompt, "--greedy", "--json", "--max-new-tokens", "12");
        var fromDemo = await CliRunner.RunAsync("generate", "--model", "demo-random", "--prompt", prompt, "--greedy", "--json", "--max-new-tokens", "12");
        Assert.True(fromFolder.ExitCode == 0, fromFolder.StandardError);
        Assert.True(fromDemo.ExitCode == 0, fromDemo.StandardError);

        var folderJson = JsonDocument.Parse(fromFolder.StandardOutput).RootElement;
        var demoJson = JsonDocument.Parse(fromDemo.StandardOutput).RootElement;
        Assert.False(folderJson.GetProperty("demo").GetBoolean());
        Assert.Equal(Ids(demoJson, "prompt_ids"), Ids(folderJson, "prompt_ids"));
        Assert.Equal(12, Ids(demoJson, "generated_ids").Length);
        Assert.Equal(Ids(demoJson, "generated_ids"), Ids(folderJson, "generated_ids"));
        Assert.Equal(demoJson.GetProperty("text").GetString(), folderJson.GetProperty("text").GetString());
    }

    [Fact]
    public async Task DefaultIsOneFloat16FileAndAnExistingFolderNeedsForce()
    {
        var folder = Path.Combine(_temp, "fp16");
        var first = await CliRunner.RunAsync("make-checkpoint", "--preset", "demo-random", "--out", folder);
        Assert.True(first.ExitCode == 0, first.StandardError);
        Assert.Equal(["config.json", "merges.txt", "model.safetensors", "vocab.json"], Directory.GetFiles(folder).Select(Path.GetFileName).Order());
        Assert.Equal("float16", JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "config.json"))).RootElement.GetProperty("torch_dtype").GetString());
        var written = File.GetLastWriteTimeUtc(Path.Combine(folder, "model.safetensors"));

        var refused = await CliRunner.RunAsync("make-checkpoint", "--preset", "demo-random", "--out", folder);
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("already exists and is not empty", ErrorLine(refused));
        Assert.Equal(written, File.GetLastWriteTimeUtc(Path.Combine(folder, "model.safetensors")));

        var forced = await CliRunner.RunAsync("make-checkpoint", "--preset", "demo-random", "--out", folder, "--force", "--dtype", "bfloat16");
        Assert.True(forced.ExitCode == 0, forced.StandardError);
        Assert.Equal("bfloat16", JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "config.json"))).RootElement.GetProperty("torch_dtype").GetString());
        Assert.Equal(["fp16"], Directory.GetFileSystemEntries(_temp).Select(Path.GetFileName)); // no staging or replaced folder left
    }

    [Theory]
    [InlineData("Unknown preset 'gpt-neo'", "--preset", "gpt-neo")]
    [InlineData("Unknown dtype", "--preset", "demo-random", "--dtype", "int8")]
    [InlineData("--shard-size-mb must be a positive", "--preset", "demo-random", "--shard-size-mb", "0")]
    public async Task BadOptionsExitNonZeroWithOneLineReason(string reason, params string[] args)
    {
        var run = await CliRunner.RunAsync(["make-checkpoint", "--out", Path.Combine(_temp, "bad"), .. args]);
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains(reason, ErrorLine(run));
        Assert.DoesNotContain("   at ", run.StandardError);
        Assert.False(Directory.Exists(Path.Combine(_temp, "bad")));
    }

    private static int[] Ids(JsonElement json, string property) => json.GetProperty(property).EnumerateArray().Select(e => e.GetInt32()).ToArray();

    private static string ErrorLine(CliRunner.Result run) =>
        Assert.Single(run.StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.StartsWith("error:"));
}

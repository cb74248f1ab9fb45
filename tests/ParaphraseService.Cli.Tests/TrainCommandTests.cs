using System.Text.Json;
using ParaphraseService.Model.Tests;

namespace ParaphraseService.Cli.Tests;

public sealed class TrainCommandTests : IDisposable
{
    private readonly string _temp = Directory.CreateTempSubdirectory("train-cli-").FullName;

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    [Fact]
    public async Task TrainWritesAPeftAdapterThatGenerateCanUse()
    {
        var output = Path.Combine(_temp, "adapter");
        var train = await CliRunner.RunAsync("train", "--model", "demo", "--data", Fixtures.Get("datasets", "pairs.jsonl"), "--out", output,
            "--max-steps", "2", "--epochs", "3", "--batch-size", "2", "--rank", "4", "--eval-fraction", "0.34", "--bleu-samples", "2", "--checkpoint-every", "1");
        Assert.True(train.ExitCode == 0, train.StandardError);
        Assert.Contains("train: 2/2 steps (100%)", train.StandardError);
        foreach (var file in new[] { "adapter_config.json", "adapter_model.safetensors", "paraphrase_adapter.json" })
            Assert.True(File.Exists(Path.Combine(output, file)), file);
        var metadata = JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "paraphrase_adapter.json"))).RootElement;
        Assert.Equal("fine-tune", metadata.GetProperty("origin").GetString());
        Assert.Equal("Original: {text}\nParaphrase:", metadata.GetProperty("prompt_template").GetString());
        Assert.True(metadata.GetProperty("metrics").TryGetProperty("eval_loss", out _));
        Assert.True(metadata.GetProperty("metrics").TryGetProperty("ibleu", out _)); // generated paraphrases were scored
        Assert.Contains("step 1: checkpoint saved", train.StandardError);
        Assert.False(Directory.Exists(output + ".checkpoints")); // deleted once the adapter is written
        Assert.Equal(4, metadata.GetProperty("training").GetProperty("hyperparameters").GetProperty("rank").GetInt32());

        var generate = await CliRunner.RunAsync("generate", "--model", "demo", "--adapter", output, "--prompt", "Hello", "--greedy", "--max-new-tokens", "3", "--json");
        Assert.True(generate.ExitCode == 0, generate.StandardError);
        Assert.Equal("adapter", JsonDocument.Parse(generate.StandardOutput).RootElement.GetProperty("adapter").GetString());
    }

    [Fact]
    public async Task AMalformedDatasetIsOneErrorLineWithItsLineNumber()
    {
        var data = Path.Combine(_temp, "bad.jsonl");
        File.WriteAllText(data, "{\"source\": \"a\", \"target\": \"b\"}\nnot json\n");
        var run = await CliRunner.RunAsync("train", "--data", data, "--out", Path.Combine(_temp, "out"));
        Assert.NotEqual(0, run.ExitCode);
        var line = Assert.Single(run.StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.StartsWith("error:"));
        Assert.Contains("line 2", line);
        Assert.False(Directory.Exists(Path.Combine(_temp, "out")));
    }
}

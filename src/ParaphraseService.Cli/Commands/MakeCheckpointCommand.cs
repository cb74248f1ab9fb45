using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using ParaphraseService.Model.Diagnostics;
using ParaphraseService.Model.Loading;

namespace ParaphraseService.Cli.Commands;

/// <summary>
/// <c>make-checkpoint</c>: write a Hugging Face model folder with deterministic random GPT-J weights (demo, a 250M
/// benchmark shape, or GPT-J-6B), streamed one tensor at a time. Progress goes to stderr; the last line, on stdout,
/// names the folder with its size and the time taken.
/// </summary>
internal static class MakeCheckpointCommand
{
    public static Command Create()
    {
        var preset = new Option<string>("--preset")
        {
            Description = $"Model shape: {string.Join(", ", CheckpointPresets.All.Keys)}.",
            Required = true,
        };
        var output = new Option<string>("--out", "-o") { Description = "The model folder to create.", Required = true };
        var dtype = new Option<string>("--dtype")
        {
            Description = "Stored precision: float16, bfloat16 or float32.",
            DefaultValueFactory = _ => "float16",
        };
        var seed = new Option<long>("--seed")
        {
            Description = "Weights seed: same seed, same files (seed 0 with --preset demo gives the demo model's weights).",
            DefaultValueFactory = _ => 0,
        };
        var shardSize = new Option<long>("--shard-size-mb")
        {
            Description = "Most tensor MiB per shard file; a checkpoint that fits in one is a single model.safetensors.",
            DefaultValueFactory = _ => SyntheticCheckpoint.DefaultMaxShardBytes >> 20,
        };
        var force = new Option<bool>("--force") { Description = "Replace the folder if it exists and is not empty." };

        var command = new Command("make-checkpoint",
            "Write a GPT-J model folder with deterministic random weights (config.json, safetensors shards and index, " +
            "GPT-2 tokenizer files) without holding the model in memory.")
        {
            preset, output, dtype, seed, shardSize, force,
        };
        command.SetAction((parse, ct) => CliFailure.Run(async () =>
        {
            var config = CheckpointPresets.Get(parse.GetValue(preset)!);
            var scalarType = new ModelLoadOptions { Dtype = parse.GetValue(dtype)! }.ResolveDtype();
            var shardMb = parse.GetValue(shardSize);
            if (shardMb <= 0 || shardMb > long.MaxValue >> 20)
                throw new ArgumentException($"--shard-size-mb must be a positive number of MiB, not {shardMb}.");

            var progress = new Reporter();
            var result = await Task.Run(() => SyntheticCheckpoint.Write(
                config, parse.GetValue(seed), scalarType, parse.GetValue(output)!, shardMb << 20,
                parse.GetValue(force), progress, ct), ct);

            var memory = ProcessMemory.Read();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"wrote {result.Folder}: {result.Files.Count} files ({result.ShardFiles.Count} weight file(s), {result.TensorCount} tensors), " +
                $"{Size(result.FolderBytes)} ({result.FolderBytes} bytes) in {result.Elapsed.TotalSeconds:F1} s; " +
                $"peak resident memory {Size(memory.PeakResidentBytes)}"));
            return 0;
        }));
        return command;
    }

    internal static string Size(long bytes) => bytes switch
    {
        >= 1_000_000_000 => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1e9:F2} GB"),
        >= 1_000_000 => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1e6:F1} MB"),
        >= 1_000 => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1e3:F1} kB"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{bytes} B"),
    };

    /// <summary>One stderr line at most every second, and one for every completed shard.</summary>
    private sealed class Reporter : IProgress<SyntheticCheckpointProgress>
    {
        private readonly Stopwatch _sinceLastLine = new();

        public void Report(SyntheticCheckpointProgress value)
        {
            if (_sinceLastLine.IsRunning && _sinceLastLine.Elapsed < TimeSpan.FromSeconds(1) && !value.ShardComplete)
                return;
            _sinceLastLine.Restart();
            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"tensor {value.TensorsWritten}/{value.TensorCount} (shard {value.Shard}/{value.ShardCount}) " +
                $"{Size(value.BytesWritten)} of {Size(value.TotalBytes)}, {value.BytesPerSecond / 1e6:F0} MB/s: {value.LastTensor}{(value.ShardComplete ? " (shard complete)" : "")}"));
        }
    }
}

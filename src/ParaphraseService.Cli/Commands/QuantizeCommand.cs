using System.CommandLine;
using System.Diagnostics;
using ParaphraseService.Model.Loading;

namespace ParaphraseService.Cli.Commands;

/// <summary><c>quantize</c>: write an int8 copy of a model folder that later loads without quantizing again.</summary>
internal static class QuantizeCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model", "-m") { Description = "A model folder or a hub id (Org/Name[@revision]).", Required = true };
        var output = new Option<string>("--out", "-o") { Description = "Folder to create; must not exist or be empty.", Required = true };
        var command = new Command("quantize", "Write an int8 (row-wise) copy of a model: int8 weights + fp32 row scales in safetensors, config and tokenizer beside them.")
        {
            model, output,
        };
        command.SetAction((parse, ct) => CliFailure.Run(async () =>
        {
            var source = await ModelSource.ResolveFolderAsync(parse.GetValue(model)!, ProgressReporter.ForDownloads(), ct);
            var clock = Stopwatch.StartNew();
            var bar = new ProgressBar("quantize", 0, "tensors");
            QuantizedCheckpoint.Write(source, parse.GetValue(output)!, (done, total) =>
            {
                bar.Total = total;
                if (done == total)
                    bar.Complete(done);
                else
                    bar.Report(done);
            });
            var bytes = Directory.EnumerateFiles(parse.GetValue(output)!).Sum(f => new FileInfo(f).Length);
            Console.WriteLine($"{parse.GetValue(output)}: {bytes / 1e9:F2} GB in {clock.Elapsed.TotalSeconds:F1} s");
            return 0;
        }));
        return command;
    }
}

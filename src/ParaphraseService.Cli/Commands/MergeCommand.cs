using System.CommandLine;
using ParaphraseService.Model.Families;
using ParaphraseService.Model.Loading;
using ParaphraseService.Model.Lora;
using ParaphraseService.Model.Lora.Peft;

namespace ParaphraseService.Cli.Commands;

/// <summary><c>merge</c>: bake a LoRA adapter into a full-precision copy of its base and write a Hugging Face folder.</summary>
internal static class MergeCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model", "-m") { Description = "The full-precision base model: a folder or a hub id.", Required = true };
        var adapter = new Option<string>("--adapter", "-a") { Description = "A LoRA adapter folder in PEFT format.", Required = true };
        var output = new Option<string>("--out", "-o") { Description = "Folder to create; must not exist or be empty.", Required = true };
        var command = new Command("merge", "Merge a LoRA adapter into its base (W + scaling * B A) and write the result as a Hugging Face model folder.")
        {
            model, adapter, output,
        };
        command.SetAction((parse, ct) => CliFailure.Run(async () =>
        {
            var folder = await ModelSource.ResolveFolderAsync(parse.GetValue(model)!, ProgressReporter.ForDownloads(), ct);
            // Checked against the base's config only: merging streams the weights and never loads the model.
            var (family, config) = ModelFamilies.LoadConfig(Path.Combine(folder, "config.json"));
            using var peft = PeftAdapterFiles.Load(parse.GetValue(adapter)!, family.AdapterTarget(config));
            foreach (var warning in peft.Warnings)
                await Console.Error.WriteLineAsync($"warning: {warning}");
            using var lora = LoraAdapter.FromPeft(peft, TorchSharp.torch.CPU);
            AdapterMerge.Export(folder, lora, parse.GetValue(output)!);
            Console.WriteLine($"{parse.GetValue(output)}: {lora.Name} (rank {lora.Rank}, {lora.Modules.Count} modules) merged into {parse.GetValue(model)}");
            return 0;
        }));
        return command;
    }
}

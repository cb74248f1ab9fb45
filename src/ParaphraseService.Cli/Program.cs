using System.CommandLine;
using ParaphraseService.Cli.Commands;

var root = new RootCommand("ParaphraseService command line: generate text and manage models offline.")
{
    GenerateCommand.Create(),
    DownloadCommand.Create(),
    QuantizeCommand.Create(),
    MakeCheckpointCommand.Create(),
    MergeCommand.Create(),
    TrainCommand.Create(),
    BenchCommand.Create(),
};
return await root.Parse(args).InvokeAsync();

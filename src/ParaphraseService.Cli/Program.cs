using System.CommandLine;
using ParaphraseService.Cli.Commands;

var root = new RootCommand("ParaphraseService command line: generate text and manage models offline.")
{
    GenerateCommand.Create(),
    FileCommand.Create(),
    DownloadCommand.Create(),
    QuantizeCommand.Create(),
    MakeCheckpointCommand.Create(),
    MergeCommand.Create(),
    TrainCommand.Create(),
    EvalCommand.Create(),
    BenchCommand.Create(),
};
var parse = root.Parse(args);
var exitCode = await parse.InvokeAsync();
// A command line that does not parse (unknown option, missing required one) is a usage error, as in CliFailure.
return parse.Errors.Count > 0 ? CliFailure.Usage : exitCode;

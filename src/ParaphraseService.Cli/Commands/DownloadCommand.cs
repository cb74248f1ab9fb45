using System.CommandLine;
using ParaphraseService.Model.Checkpoints.Hub;

namespace ParaphraseService.Cli.Commands;

/// <summary><c>download</c>: fetch a hub model into the Hugging Face cache and print its local folder.</summary>
internal static class DownloadCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model", "-m")
        {
            Description = "Hub id, e.g. EleutherAI/gpt-j-6b or EleutherAI/gpt-j-6b@float16.",
            Required = true,
        };
        var command = new Command("download",
            "Download a model from the Hugging Face Hub into the standard cache ($HF_HOME/hub); resumes and verifies. " +
            "Honours HF_TOKEN, HF_ENDPOINT and HF_HUB_OFFLINE=1.") { model };
        command.SetAction((parse, ct) => CliFailure.Run(async () =>
        {
            using var http = HubClient.CreateHttpClient();
            var hub = new HubClient(http, HubOptions.FromEnvironment());
            var folder = await hub.DownloadModelAsync(parse.GetValue(model)!, ProgressReporter.ForDownloads(), ct);
            Console.WriteLine(folder);
            return 0;
        }));
        return command;
    }
}

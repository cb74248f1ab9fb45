using System.Diagnostics;

namespace ParaphraseService.Cli.Tests;

/// <summary>Runs the built <c>paraphrase</c> CLI as a separate process, as a user or a pipeline would.</summary>
internal static class CliRunner
{
    public sealed record Result(int ExitCode, string StandardOutput, string StandardError);

    public static async Task<Result> RunAsync(params string[] args)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "paraphrase.dll"));
        foreach (var arg in args) start.ArgumentList.Add(arg);
        // No hub access from tests: a hub id must fail fast from the (empty) cache, never reach the network.
        start.Environment["HF_HUB_OFFLINE"] = "1";
        start.Environment["HF_HOME"] = Path.Combine(Path.GetTempPath(), "paraphrase-cli-tests-hf");

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(2));
        return new Result(process.ExitCode, await stdout, await stderr);
    }
}

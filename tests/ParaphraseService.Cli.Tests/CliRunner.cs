using System.Diagnostics;
using ParaphraseService.Model.Tests;

namespace ParaphraseService.Cli.Tests;

/// <summary>Runs the built <c>paraphrase</c> CLI as a separate process, as a user or a pipeline would.</summary>
internal static class CliRunner
{
    public sealed record Result(int ExitCode, string StandardOutput, string StandardError);

    /// <summary>
    /// The CLI from its own build folder (same configuration as this test build), not the copy beside the tests: this
    /// project also references the web service, so its folder leaves out what ASP.NET's shared framework provides and
    /// the CLI, a plain console app, would not find it.
    /// </summary>
    private static readonly Lazy<string> s_cli = new(() =>
    {
        var testFolder = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var configuration = testFolder.Parent!.Name; // bin/<configuration>/<framework>
        var cli = Path.Combine(Fixtures.Get("..", ".."), "src", "ParaphraseService.Cli", "bin", configuration, testFolder.Name, "paraphrase.dll");
        return File.Exists(cli) ? Path.GetFullPath(cli) : throw new FileNotFoundException($"The CLI is not built at {cli}.");
    });

    public static Task<Result> RunAsync(params string[] args) => RunWithInputAsync(null, args);

    /// <summary>Runs with <paramref name="standardInput"/> as stdin (closed after it), or no stdin at all when null.</summary>
    public static async Task<Result> RunWithInputAsync(string? standardInput, params string[] args)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardInput = standardInput is not null,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        start.ArgumentList.Add(s_cli.Value);
        foreach (var arg in args) start.ArgumentList.Add(arg);
        // No hub access from tests: a hub id must fail fast from the (empty) cache, never reach the network.
        start.Environment["HF_HUB_OFFLINE"] = "1";
        start.Environment["HF_HOME"] = Path.Combine(Path.GetTempPath(), "paraphrase-cli-tests-hf");

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (standardInput is not null)
        {
            await process.StandardInput.WriteAsync(standardInput);
            process.StandardInput.Close();
        }
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(2));
        return new Result(process.ExitCode, await stdout, await stderr);
    }
}

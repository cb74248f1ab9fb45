namespace ParaphraseService.Cli.Commands;

/// <summary>Turns any failure into one line on stderr and exit code 1, instead of a stack trace.</summary>
internal static class CliFailure
{
    public static async Task<int> Run(Func<Task<int>> action)
    {
        try
        {
            return await action();
        }
        catch (OperationCanceledException)
        {
            await Console.Error.WriteLineAsync("error: cancelled");
            return 130;
        }
        catch (Exception e)
        {
            await Console.Error.WriteLineAsync($"error: {OneLine(e)}");
            return 1;
        }
    }

    private static string OneLine(Exception e) =>
        (e is TypeInitializationException { InnerException: { } inner } ? inner.Message : e.Message).ReplaceLineEndings(" ");
}

namespace ParaphraseService.Cli.Commands;

/// <summary>
/// Turns any failure into one line on stderr instead of a stack trace. Exit codes: 1 the work failed, 2 the command line
/// or an input it names is wrong (<see cref="UsageException"/>; System.CommandLine's parse errors too, see Program.cs),
/// 130 cancelled.
/// </summary>
internal static class CliFailure
{
    public const int Failed = 1;
    public const int Usage = 2;
    public const int Cancelled = 130;

    public static async Task<int> Run(Func<Task<int>> action)
    {
        try
        {
            return await action();
        }
        catch (OperationCanceledException)
        {
            await Console.Error.WriteLineAsync("error: cancelled");
            return Cancelled;
        }
        catch (UsageException e)
        {
            await Console.Error.WriteLineAsync($"error: {OneLine(e)}");
            return Usage;
        }
        catch (Exception e)
        {
            await Console.Error.WriteLineAsync($"error: {OneLine(e)}");
            return Failed;
        }
    }

    private static string OneLine(Exception e) =>
        (e is TypeInitializationException { InnerException: { } inner } ? inner.Message : e.Message).ReplaceLineEndings(" ");
}

/// <summary>The command line is wrong or names an input that cannot be read: exit code 2, nothing done.</summary>
internal sealed class UsageException(string message) : Exception(message);

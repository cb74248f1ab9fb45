using System.Diagnostics;

namespace ParaphraseService.Model.Tests;

/// <summary>Named pipes (FIFOs) in test folders, and a guard for code that must refuse one instead of opening it.</summary>
internal static class NamedPipes
{
    /// <summary>Longer than any refusal takes; a load that opened the pipe would wait for a writer forever.</summary>
    private static readonly TimeSpan Guard = TimeSpan.FromSeconds(30);

    /// <summary>Puts a FIFO at <paramref name="path"/> in place of any file there, with coreutils' mkfifo (.NET has no call for it).</summary>
    public static void Create(string path)
    {
        File.Delete(path);
        using var mkfifo = Process.Start(new ProcessStartInfo("mkfifo", [path]) { RedirectStandardError = true })!;
        var error = mkfifo.StandardError.ReadToEnd();
        mkfifo.WaitForExit();
        Assert.True(mkfifo.ExitCode == 0, $"mkfifo {path} failed: {error}");
    }

    /// <summary>
    /// The <typeparamref name="T"/> that <paramref name="load"/> throws. Opening a FIFO blocks until a writer comes, so
    /// where the pipe is opened instead of refused the test fails after <see cref="Guard"/> rather than hanging the run
    /// (the blocked thread is left behind).
    /// </summary>
    public static async Task<T> RefusedAsync<T>(Action load) where T : Exception
    {
        var error = await Record.ExceptionAsync(() => Task.Run(load).WaitAsync(Guard));
        Assert.False(error is TimeoutException, $"no answer after {Guard.TotalSeconds} s: the named pipe was opened, not refused");
        return Assert.IsAssignableFrom<T>(error);
    }
}

/// <summary>A fact that needs Linux: only there does the code tell a named pipe from a file (RegularFiles, statx).</summary>
internal sealed class LinuxFactAttribute : FactAttribute
{
    public LinuxFactAttribute()
    {
        if (!OperatingSystem.IsLinux())
            Skip = "named pipes are refused on Linux only";
    }
}

/// <summary>A theory that needs Linux; see <see cref="LinuxFactAttribute"/>.</summary>
internal sealed class LinuxTheoryAttribute : TheoryAttribute
{
    public LinuxTheoryAttribute()
    {
        if (!OperatingSystem.IsLinux())
            Skip = "named pipes are refused on Linux only";
    }
}

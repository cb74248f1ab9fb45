using Microsoft.Win32.SafeHandles;

namespace ParaphraseService.Model.Checkpoints;

/// <summary>Opens checkpoint files for positional reads, turning "cannot open" into a <see cref="CheckpointException"/>.</summary>
internal static class CheckpointFileHandles
{
    public static SafeFileHandle OpenRead(string path)
    {
        // Before opening: opening a named pipe would wait for a writer instead of failing.
        if (RegularFiles.Problem(path) is { } problem)
        {
            throw new CheckpointException($"{path}: {problem}");
        }
        try
        {
            return File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.RandomAccess);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new CheckpointException($"{path}: file not found", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CheckpointException($"{path}: cannot open: {e.Message}", e);
        }
    }
}

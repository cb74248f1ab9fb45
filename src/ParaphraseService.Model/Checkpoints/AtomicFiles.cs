using System.Text;

namespace ParaphraseService.Model.Checkpoints;

/// <summary>Files and folders that appear complete or not at all: written beside their destination, then renamed.</summary>
public static class AtomicFiles
{
    /// <summary>Writes UTF-8 text (no BOM) to <c>path.tmp</c> and renames it over <paramref name="path"/>.</summary>
    public static void WriteAllText(string path, string text)
    {
        var temporary = path + ".tmp";
        try
        {
            File.WriteAllText(temporary, text, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false));
            File.Move(temporary, path, overwrite: true);
        }
        catch
        {
            File.Delete(temporary);
            throw;
        }
    }

    /// <summary>
    /// Builds a folder in a sibling staging folder with <paramref name="fill"/> and renames it to
    /// <paramref name="folder"/> (which must not exist or be empty); on failure the staging folder is deleted.
    /// </summary>
    public static void PublishFolder(string folder, Action<string> fill)
    {
        if (Directory.Exists(folder) && Directory.EnumerateFileSystemEntries(folder).Any())
            throw new IOException($"Output folder '{folder}' exists and is not empty.");
        var staging = folder.TrimEnd(Path.DirectorySeparatorChar) + $".partial-{Guid.NewGuid():N}";
        Directory.CreateDirectory(staging);
        try
        {
            fill(staging);
            if (Directory.Exists(folder))
                Directory.Delete(folder);
            Directory.Move(staging, folder);
        }
        catch
        {
            Directory.Delete(staging, recursive: true);
            throw;
        }
    }
}

using System.Runtime.InteropServices;

namespace ParaphraseService.Model.Checkpoints;

/// <summary>
/// Tells a regular file from a named pipe, device or socket in a model or adapter folder, so that such a file is refused
/// before it is opened: opening a named pipe (FIFO) for reading waits for a writer, and a load would hang forever.
/// </summary>
/// <remarks>
/// .NET cannot tell: FileSystemInfo.Attributes and FileSystemEntry say Normal for a FIFO, UnixFileMode holds only the
/// permission bits, and FileStream cannot open with O_NONBLOCK. libc's stat can, but its struct differs between x64 and
/// arm64 (and older glibc exports no stat symbol at all). Linux's statx has one struct layout on every architecture,
/// fixed by the kernel's ABI, and glibc (2.28+) and musl (1.2.5+) export it, so it is asked here. Elsewhere (Windows
/// has no FIFOs in folders; macOS), or where statx is missing or refused (an old seccomp profile), nothing is checked
/// and loading behaves as before.
/// </remarks>
public static partial class RegularFiles
{
    private const int CurrentDirectory = -100;  // AT_FDCWD: a relative path is relative to the working directory
    private const uint TypeWanted = 0x1;        // STATX_TYPE
    private const ushort TypeBits = 0xF000;     // S_IFMT

    private static bool s_statxMissing;

    /// <summary>
    /// Why <paramref name="path"/> must not be opened as a file ("not a regular file but a named pipe (FIFO)"), or null:
    /// a regular file (a symbolic link counts as what it points to, as opening follows it), a path that is missing or a
    /// directory (left to the caller's own checks), or a system where the type cannot be told.
    /// </summary>
    public static string? Problem(string path)
    {
        if (!OperatingSystem.IsLinux() || s_statxMissing)
            return null;
        Status status;
        try
        {
            // No AT_SYMLINK_NOFOLLOW: the Hugging Face cache links every snapshot file to its blob.
            if (Statx(CurrentDirectory, path, 0, TypeWanted, out status) != 0 || (status.Mask & TypeWanted) == 0)
                return null;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            s_statxMissing = true;
            return null;
        }
        var kind = (status.Mode & TypeBits) switch
        {
            0x1000 => "a named pipe (FIFO)",
            0x2000 => "a character device",
            0x6000 => "a block device",
            0xC000 => "a socket",
            _ => null,  // a regular file or a directory
        };
        return kind is null ? null : $"not a regular file but {kind}";
    }

    /// <summary>The start of struct statx (linux/stat.h), as large as the whole so the kernel writes inside it.</summary>
    [StructLayout(LayoutKind.Explicit, Size = 256)]
    private struct Status
    {
        [FieldOffset(0)] public uint Mask;     // stx_mask: which fields were filled
        [FieldOffset(28)] public ushort Mode;  // stx_mode: after stx_blksize, stx_attributes, stx_nlink, stx_uid, stx_gid
    }

    [LibraryImport("libc", EntryPoint = "statx", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Statx(int directory, string path, int flags, uint mask, out Status status);
}

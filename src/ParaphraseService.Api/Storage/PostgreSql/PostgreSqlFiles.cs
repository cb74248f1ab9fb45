using System.Buffers;
using System.Data;
using System.Security.Cryptography;
using System.Text;
using Npgsql;

namespace ParaphraseService.Api.Storage.PostgreSql;

/// <summary>
/// Folders of files in the <c>files</c> table, under an owner key, in chunks of <see cref="ChunkBytes"/>: written from
/// and read into local files as streams (one chunk in memory at a time). A folder's content hash names every file and
/// its SHA-256, so a copy can be checked against the catalog.
/// </summary>
internal static class PostgreSqlFiles
{
    public const int ChunkBytes = 1 << 20;

    /// <summary>Replaces the owner's files with the files at the top of <paramref name="folder"/>; returns their content hash.</summary>
    public static string Write(NpgsqlConnection connection, NpgsqlTransaction transaction, string owner, string folder)
    {
        Delete(connection, transaction, owner);
        return Add(connection, transaction, owner, folder);
    }

    /// <summary>Adds the files of <paramref name="folder"/> under an owner that has none (content-addressed owners: kept if present).</summary>
    public static string Add(NpgsqlConnection connection, NpgsqlTransaction transaction, string owner, string folder)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(ChunkBytes);
        try
        {
            using var insert = new NpgsqlCommand("INSERT INTO files (owner, path, chunk, data) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING", connection, transaction);
            var ownerParameter = new NpgsqlParameter<string>() { TypedValue = owner };
            var pathParameter = new NpgsqlParameter<string>();
            var chunkParameter = new NpgsqlParameter<int>();
            var dataParameter = new NpgsqlParameter { NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Bytea };
            insert.Parameters.Add(ownerParameter);
            insert.Parameters.Add(pathParameter);
            insert.Parameters.Add(chunkParameter);
            insert.Parameters.Add(dataParameter);
            var hashes = new SortedDictionary<string, string>(StringComparer.Ordinal);
            foreach (var file in Directory.EnumerateFiles(folder).Order(StringComparer.Ordinal))
            {
                var name = Path.GetFileName(file);
                using var stream = File.OpenRead(file);
                using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                var chunk = 0;
                int read;
                do
                {
                    read = stream.ReadAtLeast(buffer.AsSpan(0, ChunkBytes), ChunkBytes, throwOnEndOfStream: false);
                    sha.AppendData(buffer, 0, read);
                    // An empty file is one empty chunk, so it exists in the store.
                    if (read == 0 && chunk > 0) break;
                    pathParameter.TypedValue = name;
                    chunkParameter.TypedValue = chunk++;
                    dataParameter.Value = new ReadOnlyMemory<byte>(buffer, 0, read);
                    insert.ExecuteNonQuery();
                }
                while (read == ChunkBytes);
                hashes[name] = Convert.ToHexStringLower(sha.GetHashAndReset());
            }
            return Combine(hashes);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Whether the owner has any file.</summary>
    public static bool Exists(NpgsqlConnection connection, NpgsqlTransaction? transaction, string owner)
    {
        using var command = new NpgsqlCommand("SELECT EXISTS (SELECT 1 FROM files WHERE owner = $1)", connection, transaction) { Parameters = { new() { Value = owner } } };
        return (bool)command.ExecuteScalar()!;
    }

    /// <summary>Writes the owner's files into <paramref name="destination"/> (created), streaming; returns their content hash.</summary>
    public static string Read(NpgsqlConnection connection, NpgsqlTransaction? transaction, string owner, string destination)
    {
        Directory.CreateDirectory(destination);
        using var command = new NpgsqlCommand("SELECT path, data FROM files WHERE owner = $1 ORDER BY path, chunk", connection, transaction) { Parameters = { new() { Value = owner } } };
        using var reader = command.ExecuteReader(CommandBehavior.SequentialAccess);
        var hashes = new SortedDictionary<string, string>(StringComparer.Ordinal);
        string? current = null;
        FileStream? output = null;
        IncrementalHash? sha = null;
        var buffer = ArrayPool<byte>.Shared.Rent(81920);
        try
        {
            while (reader.Read())
            {
                var path = reader.GetString(0);
                if (path != current)
                {
                    Finish();
                    if (Path.GetFileName(path) != path || path is "." or "..")
                        throw new InvalidDataException($"The stored file name '{path}' of '{owner}' is not a plain file name.");
                    current = path;
                    output = new FileStream(Path.Combine(destination, path), FileMode.CreateNew, FileAccess.Write);
                    sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                }
                using var data = reader.GetStream(1);
                int read;
                while ((read = data.Read(buffer, 0, buffer.Length)) > 0)
                {
                    output!.Write(buffer, 0, read);
                    sha!.AppendData(buffer, 0, read);
                }
            }
            Finish();
        }
        finally
        {
            output?.Dispose();
            sha?.Dispose();
            ArrayPool<byte>.Shared.Return(buffer);
        }
        return Combine(hashes);

        void Finish()
        {
            if (current is null) return;
            output!.Flush(flushToDisk: true);
            output.Dispose();
            hashes[current] = Convert.ToHexStringLower(sha!.GetHashAndReset());
            sha.Dispose();
            (output, sha, current) = (null, null, null);
        }
    }

    public static void Delete(NpgsqlConnection connection, NpgsqlTransaction transaction, string owner)
    {
        using var command = new NpgsqlCommand("DELETE FROM files WHERE owner = $1", connection, transaction) { Parameters = { new() { Value = owner } } };
        command.ExecuteNonQuery();
    }

    /// <summary>The content hash of the files at the top of a local folder (what <see cref="Write"/> returns for it).</summary>
    public static string Hash(string folder)
    {
        var hashes = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var file in Directory.EnumerateFiles(folder))
        {
            using var stream = File.OpenRead(file);
            hashes[Path.GetFileName(file)] = Convert.ToHexStringLower(SHA256.HashData(stream));
        }
        return Combine(hashes);
    }

    // sha256 over "name\0sha256(content)\n" of every file, in ordinal order of names.
    private static string Combine(SortedDictionary<string, string> hashes)
    {
        var text = new StringBuilder();
        foreach (var (name, hash) in hashes) text.Append(name).Append('\0').Append(hash).Append('\n');
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())));
    }
}

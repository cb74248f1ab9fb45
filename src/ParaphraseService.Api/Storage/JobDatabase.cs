using System.Globalization;
using Microsoft.Data.Sqlite;

namespace ParaphraseService.Api.Storage;

/// <summary>
/// The embedded store's SQLite file, <c>jobs.db</c> in FineTunes:Directory, which fine-tune jobs and batches share:
/// how it is created and opened, and the command helpers both stores use (times as ISO 8601 UTC text).
/// </summary>
internal static class JobDatabase
{
    /// <summary>
    /// Creates <paramref name="directory"/> and the file (write-ahead log), runs <paramref name="schema"/>
    /// (<c>CREATE TABLE IF NOT EXISTS</c> statements) and returns the connection string. A folder that cannot hold the
    /// file is refused with a message naming FineTunes:Directory.
    /// </summary>
    public static string Create(string directory, string schema)
    {
        try
        {
            Directory.CreateDirectory(directory);
            var connectionString = new SqliteConnectionStringBuilder
            {
                DataSource = Path.Combine(directory, "jobs.db"),
                Mode = SqliteOpenMode.ReadWriteCreate,
                DefaultTimeout = 30,
            }.ToString();
            using var connection = Open(connectionString);
            Execute(connection, "PRAGMA journal_mode = WAL;\n" + schema);
            return connectionString;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or SqliteException)
        {
            throw new InvalidOperationException($"FineTunes:Directory '{directory}' cannot hold the job database: {e.Message}", e);
        }
    }

    public static SqliteConnection Open(string connectionString)
    {
        var connection = new SqliteConnection(connectionString);
        connection.Open();
        return connection;
    }

    public static SqliteCommand Command(SqliteConnection connection, string sql, params (string Name, object? Value)[] parameters)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        foreach (var (name, value) in parameters)
            command.Parameters.AddWithValue(name, value ?? DBNull.Value);
        return command;
    }

    public static int Execute(SqliteConnection connection, string sql, params (string Name, object? Value)[] parameters)
    {
        using var command = Command(connection, sql, parameters);
        return command.ExecuteNonQuery();
    }

    public static string Time(DateTimeOffset time) => time.UtcDateTime.ToString("O", CultureInfo.InvariantCulture);

    public static DateTimeOffset ParseTime(string text) => DateTimeOffset.Parse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal);
}

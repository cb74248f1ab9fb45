using Npgsql;
using NpgsqlTypes;

namespace ParaphraseService.Api.Storage.PostgreSql;

/// <summary>
/// Positional commands ($1, $2, ...) as the stores write them: times sent as timestamptz in UTC, a null sent with
/// <paramref name="nullType"/> (the job store leaves it to the server; the batch store's nulls all go to text columns).
/// </summary>
internal sealed class PostgreSqlCommands(NpgsqlDbType nullType)
{
    public NpgsqlCommand Command(NpgsqlConnection connection, NpgsqlTransaction? transaction, string sql, params object?[] parameters)
    {
        var command = new NpgsqlCommand(sql, connection, transaction);
        foreach (var value in parameters)
            command.Parameters.Add(value switch
            {
                null => new NpgsqlParameter { Value = DBNull.Value, NpgsqlDbType = nullType },
                DateTimeOffset time => new NpgsqlParameter { Value = time.ToUniversalTime(), NpgsqlDbType = NpgsqlDbType.TimestampTz },
                _ => new NpgsqlParameter { Value = value },
            });
        return command;
    }

    public int Execute(NpgsqlConnection connection, NpgsqlTransaction? transaction, string sql, params object?[] parameters)
    {
        using var command = Command(connection, transaction, sql, parameters);
        return command.ExecuteNonQuery();
    }

    /// <summary>The first column of the first row; null for no row or SQL NULL.</summary>
    public object? Scalar(NpgsqlConnection connection, NpgsqlTransaction? transaction, string sql, params object?[] parameters)
    {
        using var command = Command(connection, transaction, sql, parameters);
        var result = command.ExecuteScalar();
        return result is DBNull ? null : result;
    }
}

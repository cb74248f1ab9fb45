using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;
using Npgsql;

namespace ParaphraseService.Api.Storage;

/// <summary>
/// The <c>Storage</c> configuration section. Without <see cref="PostgreSql"/> the service keeps everything itself
/// (SQLite job database, adapter folders: one process). With it, PostgreSQL holds the job queue, the adapter catalog
/// and their files, shared by every replica (cluster mode).
/// </summary>
public sealed class StorageOptions
{
    public const string Section = "Storage";

    /// <summary>An Npgsql connection string (Host=...;Database=...;Username=...;Password=...); empty: embedded storage.</summary>
    public string? PostgreSql { get; set; }

    /// <summary>How long a trainer holds a job without renewing its lease (renewed every third of it, at most every 2 s).</summary>
    [Range(2, 3600, ErrorMessage = "Storage:LeaseSeconds must be between 2 and 3600.")]
    public int LeaseSeconds { get; set; } = 15;

    /// <summary>The periodic catalog check that catches changes whose notification was lost (a dropped connection).</summary>
    [Range(1, 3600, ErrorMessage = "Storage:CatalogCheckSeconds must be between 1 and 3600.")]
    public int CatalogCheckSeconds { get; set; } = 30;

    /// <summary>How often an idle trainer looks for queued jobs besides being notified of them.</summary>
    [Range(100, 600_000, ErrorMessage = "Storage:JobPollMilliseconds must be between 100 and 600000.")]
    public int JobPollMilliseconds { get; set; } = 2000;

    /// <summary>Whether PostgreSQL is configured (cluster mode).</summary>
    public bool IsCluster => !string.IsNullOrWhiteSpace(PostgreSql);

    /// <summary>How often a trainer renews its leases.</summary>
    public TimeSpan RenewEvery => TimeSpan.FromSeconds(Math.Min(LeaseSeconds / 3.0, 2));
}

/// <summary>Refuses at start a connection string Npgsql cannot read (without connecting: the database may come later).</summary>
internal sealed class StorageOptionsValidation : IValidateOptions<StorageOptions>
{
    public ValidateOptionsResult Validate(string? name, StorageOptions options)
    {
        if (!options.IsCluster) return ValidateOptionsResult.Success;
        try
        {
            var builder = new NpgsqlConnectionStringBuilder(options.PostgreSql);
            if (string.IsNullOrWhiteSpace(builder.Host))
                return ValidateOptionsResult.Fail("Storage:PostgreSql has no Host: give at least Host=...;Database=...;Username=...");
        }
        catch (ArgumentException e)
        {
            // The message names the keyword, never the password.
            return ValidateOptionsResult.Fail($"Storage:PostgreSql is not a valid Npgsql connection string: {e.Message}");
        }
        return ValidateOptionsResult.Success;
    }
}

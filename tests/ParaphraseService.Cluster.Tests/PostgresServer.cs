using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Npgsql;

namespace ParaphraseService.Cluster.Tests;

/// <summary>
/// A real PostgreSQL server of its own: <c>initdb</c> into a temporary folder and <c>pg_ctl start</c> on a free loopback
/// port (Debian's postgresql package, /usr/lib/postgresql/&lt;version&gt;/bin). PostgreSQL refuses to run as root, so
/// when the tests run as root the server runs as the unprivileged user <c>nobody</c>. Stopped and deleted on dispose.
/// </summary>
public sealed class PostgresServer : IDisposable
{
    private static readonly bool s_root = Environment.UserName == "root";
    private readonly string _bin;

    public PostgresServer()
    {
        _bin = FindBin();
        Folder = Directory.CreateTempSubdirectory("cluster-pg-").FullName;
        Port = FreePort();
        if (s_root)
        {
            // The temporary folder is root's (mode 700): the server's user needs it as its own.
            Run("chown", ["-R", "nobody:nogroup", Folder]);
        }
        RunAsServerUser(Path.Combine(_bin, "initdb"), ["-D", DataFolder, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]);
        Start();
    }

    public string Folder { get; }

    public int Port { get; }

    private string DataFolder => Path.Combine(Folder, "data");

    /// <summary>A connection string to <paramref name="database"/> on this server.</summary>
    public string ConnectionString(string database = "postgres") =>
        new NpgsqlConnectionStringBuilder { Host = "127.0.0.1", Port = Port, Username = "postgres", Database = database, Pooling = false }.ToString();

    /// <summary>A new empty database; its connection string.</summary>
    public string CreateDatabase(string name)
    {
        using var connection = new NpgsqlConnection(ConnectionString());
        connection.Open();
        using var command = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", connection);
        command.ExecuteNonQuery();
        return new NpgsqlConnectionStringBuilder(ConnectionString(name)) { Pooling = true }.ToString();
    }

    public void Start() => RunAsServerUser(Path.Combine(_bin, "pg_ctl"),
        ["-D", DataFolder, "-l", Path.Combine(Folder, "server.log"), "-w", "-t", "60", "start",
         // fsync off: the tests kill the server process, never the machine, so what was written survives.
         "-o", $"-p {Port} -k {Folder} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=200"]);

    /// <summary>Stops at once (connections are cut, as when a database host goes away).</summary>
    public void Stop() => RunAsServerUser(Path.Combine(_bin, "pg_ctl"), ["-D", DataFolder, "-w", "-t", "60", "stop", "-m", "immediate"]);

    public void Dispose()
    {
        try
        {
            Stop();
        }
        catch (InvalidOperationException)
        {
            // already stopped
        }
        Directory.Delete(Folder, recursive: true);
    }

    private static string FindBin()
    {
        const string root = "/usr/lib/postgresql";
        var bin = Directory.Exists(root)
            ? Directory.GetDirectories(root).Select(d => Path.Combine(d, "bin")).Where(d => File.Exists(Path.Combine(d, "initdb")))
                .OrderByDescending(d => int.TryParse(Path.GetFileName(Path.GetDirectoryName(d)), out var v) ? v : 0).FirstOrDefault()
            : null;
        return bin ?? throw new InvalidOperationException(
            "No PostgreSQL server binaries under /usr/lib/postgresql/<version>/bin: install Debian's postgresql package " +
            "(scripts/install-postgresql.sh, which scripts/test.sh runs).");
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static void RunAsServerUser(string tool, string[] args)
    {
        if (s_root) Run("runuser", ["-u", "nobody", "--", tool, .. args]);
        else Run(tool, args);
    }

    private static void Run(string tool, string[] args)
    {
        var start = new ProcessStartInfo(tool) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = "/" };
        foreach (var arg in args) start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(2)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{tool} {string.Join(' ', args)} did not finish in 2 minutes.");
        }
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"{tool} {string.Join(' ', args)} failed ({process.ExitCode}): {output.Result}{error.Result}");
    }
}

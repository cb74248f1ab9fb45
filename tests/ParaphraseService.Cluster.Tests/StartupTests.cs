namespace ParaphraseService.Cluster.Tests;

/// <summary>What an operator sees when the service cannot start: the process as a container runs it.</summary>
public class StartupTests
{
    [Theory]
    [InlineData("Scheduler__MaxBatchRows", "-3", "Scheduler:MaxBatchRows is -3")]
    [InlineData("Model__Quantization", "int4", "Model:Quantization must be auto, none or int8")]
    [InlineData("Admin__ApiKey", "short", "Admin:ApiKey must be at least 16 characters")] // read while the endpoints are mapped
    public async Task ASettingRefusedAtStartIsNamedOnceAndTheProcessExitsWithOne(string setting, string value, string named)
    {
        await using var service = ServiceProcess.Launch("refused", new Dictionary<string, string> { [setting] = value });

        var exitCode = await service.WaitForExitAsync(TimeSpan.FromMinutes(2));

        // 1, not the 134 of an exception escaping Main; the setting named in a line of its own, and no stack trace printed
        // beside the host's JSON log line
        Assert.True(exitCode == 1, $"exit code {exitCode}:\n{service.Log}");
        Assert.Single(service.LogLines, line => line.Contains(named, StringComparison.Ordinal) && line.Contains("did not start", StringComparison.Ordinal));
        Assert.DoesNotContain(service.LogLines, line => line.TrimStart().StartsWith("at ", StringComparison.Ordinal) || line.Contains("Unhandled exception", StringComparison.Ordinal));
    }
}

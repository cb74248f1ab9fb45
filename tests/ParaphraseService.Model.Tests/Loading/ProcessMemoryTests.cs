using ParaphraseService.Model.Diagnostics;
using static TorchSharp.torch;

namespace ParaphraseService.Model.Tests.Loading;

/// <summary>Peak memory is process-wide, so these run alone, not alongside tests that allocate.</summary>
[CollectionDefinition(nameof(ProcessMemoryTests), DisableParallelization = true)]
public sealed class ProcessMemoryCollection;

[Collection(nameof(ProcessMemoryTests))]
public class ProcessMemoryTests
{
    private const long Allocation = 512L << 20;

    [Fact]
    public void ResidentAndPeakArePlausible()
    {
        var usage = ProcessMemory.Read();
        Assert.InRange(usage.ResidentBytes, 10L << 20, 1L << 40);
        Assert.InRange(usage.PeakResidentBytes, usage.ResidentBytes, 1L << 40);
        if (OperatingSystem.IsLinux())
            Assert.Equal("/proc/self/status", usage.Source);
    }

    [Fact]
    public void PeakRemembersAnAllocationUntilReset()
    {
        var before = ProcessMemory.Read();
        using (var block = ones(Allocation / 4)) // written, so resident
            Assert.True(ProcessMemory.ResidentBytes >= before.ResidentBytes + Allocation * 9 / 10);
        var after = ProcessMemory.Read();
        Assert.True(after.PeakResidentBytes >= before.ResidentBytes + Allocation * 9 / 10);
        Assert.True(after.ResidentBytes < after.PeakResidentBytes - Allocation / 2, "the freed block is no longer resident");

        if (!OperatingSystem.IsLinux())
        {
            Assert.False(ProcessMemory.TryResetPeak());
            return;
        }
        // Linux with /proc/self/clear_refs (4.0+; present here): the peak drops back to the current resident size.
        Assert.True(ProcessMemory.TryResetPeak());
        var reset = ProcessMemory.Read();
        Assert.True(reset.PeakResidentBytes < after.PeakResidentBytes - Allocation / 2,
            $"peak {reset.PeakResidentBytes} after reset, {after.PeakResidentBytes} before");
        Assert.True(reset.PeakResidentBytes >= reset.ResidentBytes - (64L << 20));
    }

    [Fact]
    public void StatusLinesAreReadInKilobytes()
    {
        string[] status = ["Name:\tdotnet", "VmPeak:\t 3156 kB", "VmHWM:\t    2024 kB", "VmRSS:\t    1000 kB", "Threads:\t1"];
        Assert.True(ProcessMemory.TryParseStatus(status, out var resident, out var peak));
        Assert.Equal(1000 * 1024, resident);
        Assert.Equal(2024 * 1024, peak);
        Assert.False(ProcessMemory.TryParseStatus(["VmRSS:\t 1000 kB"], out _, out _));
    }
}

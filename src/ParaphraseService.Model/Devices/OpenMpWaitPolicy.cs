using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using ParaphraseService.Model.Kernels;

namespace ParaphraseService.Model.Devices;

/// <summary>
/// Makes LibTorch's OpenMP threads sleep as soon as a parallel op ends (<c>OMP_WAIT_POLICY=PASSIVE</c>) unless the
/// environment already says otherwise. By default they spin for a while after each op, and on a CPU they then take the
/// cores from our own kernels (<see cref="Layers.KernelThreads"/>) and from the service's other threads: on 2 cores an
/// int8 decode step of the 250M bench model ran at 32 tokens/s with spinning threads and 50 without. libgomp reads the
/// variable once, when LibTorch is loaded, and .NET's Environment.SetEnvironmentVariable does not reach the C library's
/// copy that libgomp reads: hence setenv, as this assembly loads, before any model code runs a tensor op.
/// </summary>
internal static class OpenMpWaitPolicy
{
    [DllImport("libc", EntryPoint = "setenv", CharSet = CharSet.Ansi)]
    private static extern int SetEnv(string name, string value, int overwrite);

#pragma warning disable CA2255 // a library initializer on purpose: it must run before LibTorch loads
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void Apply()
    {
        if (OperatingSystem.IsLinux() && Environment.GetEnvironmentVariable("OMP_WAIT_POLICY") is null)
            _ = SetEnv("OMP_WAIT_POLICY", "PASSIVE", overwrite: 0);
    }
}

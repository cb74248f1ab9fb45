namespace ParaphraseService.Model.Kernels;

/// <summary>
/// Runs the parts of one CPU kernel call on the calling thread and on a few long-lived workers. A decode step makes
/// dozens of calls of 50-500 µs each; <see cref="Parallel.For(int, int, Action{int})"/> wakes a pool thread for every
/// call, and by the time it runs, the caller has often done most of the work alone (measured: 2 threads streamed an
/// int8 weight at 15 GB/s through it, against 12 GB/s on one). The workers here spin briefly after each call, so the
/// next call of the same step finds them awake, then sleep until one comes.
/// </summary>
internal static class KernelThreads
{
    // How long a worker keeps looking for the next call before it sleeps: longer than the gap between two calls of a
    // decode step (the attention ops between two projections), short enough not to hold a core between steps.
    private static readonly TimeSpan SpinTime = TimeSpan.FromMilliseconds(0.5);

    private static readonly object s_gate = new();
    private static readonly List<Thread> s_workers = [];
    private static readonly ManualResetEventSlim s_wake = new(false);
    private static Job? s_job;
    private static long s_generation;

    /// <summary>Calls <paramref name="body"/>(0 … parts − 1) on up to <paramref name="threads"/> threads, the caller's included.</summary>
    public static void Run(int parts, int threads, Action<int> body)
    {
        if (parts <= 0) return; // an empty batch
        threads = Math.Clamp(threads, 1, Math.Min(parts, Environment.ProcessorCount));
        if (threads == 1)
        {
            for (var part = 0; part < parts; part++) body(part);
            return;
        }
        // One call at a time: a second caller (another model, a test) runs its parts alone rather than waiting.
        if (!Monitor.TryEnter(s_gate))
        {
            for (var part = 0; part < parts; part++) body(part);
            return;
        }
        try
        {
            EnsureWorkers(threads - 1);
            var job = new Job(body, parts);
            Volatile.Write(ref s_job, job);
            Interlocked.Increment(ref s_generation);
            s_wake.Set();
            job.Work();
            job.WaitForAll();
            Volatile.Write(ref s_job, null);
            job.ThrowIfFailed();
        }
        finally
        {
            Monitor.Exit(s_gate);
        }
    }

    private static void EnsureWorkers(int count)
    {
        while (s_workers.Count < count)
        {
            var worker = new Thread(WorkerLoop) { IsBackground = true, Name = $"cpu-kernel-{s_workers.Count + 1}" };
            s_workers.Add(worker);
            worker.Start();
        }
    }

    private static void WorkerLoop()
    {
        var seen = Interlocked.Read(ref s_generation);
        while (true)
        {
            var spin = new SpinWait();
            var deadline = DateTime.UtcNow + SpinTime;
            while (Interlocked.Read(ref s_generation) == seen)
            {
                if (DateTime.UtcNow < deadline)
                {
                    spin.SpinOnce(sleep1Threshold: -1);
                    continue;
                }
                s_wake.Reset();
                // Checked again after the reset: a call published just before it would otherwise wait for the next one.
                if (Interlocked.Read(ref s_generation) == seen) s_wake.Wait();
            }
            seen = Interlocked.Read(ref s_generation);
            Volatile.Read(ref s_job)?.Work();
        }
    }

    private sealed class Job(Action<int> body, int parts)
    {
        private int _next = -1;
        private int _done;
        private Exception? _error;

        /// <summary>Takes parts until none is left; any thread may call it.</summary>
        public void Work()
        {
            int part;
            while ((part = Interlocked.Increment(ref _next)) < parts)
            {
                try
                {
                    body(part);
                }
                catch (Exception e)
                {
                    Interlocked.CompareExchange(ref _error, e, null);
                }
                Interlocked.Increment(ref _done);
            }
        }

        public void WaitForAll()
        {
            var spin = new SpinWait();
            while (Volatile.Read(ref _done) < parts) spin.SpinOnce(sleep1Threshold: -1);
        }

        public void ThrowIfFailed()
        {
            if (_error is not null) throw new AggregateException(_error);
        }
    }
}

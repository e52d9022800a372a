using System;
using System.Numerics;

namespace NetDsl.Runtime.Distributed;

/// <summary>
/// The processes of a data-parallel job and the collectives NetDsl needs from them. <see cref="FromEnvironment"/>
/// gives an MPI communicator when the program was started by <c>mpiexec</c> (or Slurm's <c>srun</c> with PMI), and a
/// single-process one otherwise, so the same program runs unchanged on 1 or N processes.
/// </summary>
public abstract class Communicator : IDisposable
{
    /// <summary>This process's rank, 0 to <see cref="Size"/> − 1.</summary>
    public abstract int Rank { get; }

    /// <summary>The number of processes.</summary>
    public abstract int Size { get; }

    /// <summary>Rank 0, the one that writes checkpoints and logs.</summary>
    public bool IsRoot => Rank == 0;

    /// <summary>
    /// How long a collective may take before the job is declared broken (another rank died or hangs): the waiting
    /// rank then throws <see cref="CommunicationTimeoutException"/> instead of hanging. Default 120 s, or
    /// <c>NETDSL_COLLECTIVE_TIMEOUT</c> (seconds).
    /// </summary>
    public TimeSpan Timeout { get; set; } = DefaultTimeout();

    /// <summary>What carries the messages: "MPI (libmpich.so.12)" or "single process".</summary>
    public abstract string Transport { get; }

    /// <summary>
    /// The communicator of this process: MPI when launched by an MPI launcher (its environment has PMI_RANK,
    /// PMI_SIZE, PMIX_RANK or OMPI_COMM_WORLD_SIZE), else a single process.
    /// </summary>
    public static Communicator FromEnvironment()
    {
        if (!LaunchedByMpi()) return new SingleProcessCommunicator();
        return MpiCommunicator.Initialize();
    }

    /// <summary>Whether an MPI launcher started this process.</summary>
    public static bool LaunchedByMpi()
    {
        foreach (var name in new[] { "PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALRANKID" })
            if (!string.IsNullOrEmpty(Environment.GetEnvironmentVariable(name))) return true;
        return false;
    }

    /// <summary>Starts summing <paramref name="data"/> over all ranks in place; every rank gets the sum.</summary>
    /// <remarks>The buffer must stay alive and untouched until the request completes.</remarks>
    public abstract CollectiveRequest StartAllreduceSum<T>(Memory<T> data) where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>Starts copying rank 0's <paramref name="data"/> to every rank.</summary>
    public abstract CollectiveRequest StartBroadcast<T>(Memory<T> data) where T : unmanaged;

    /// <summary>Polls outstanding requests (drives MPI's progress engine); true when <paramref name="request"/> is done.</summary>
    public abstract bool Test(CollectiveRequest request);

    /// <summary>Waits for <paramref name="request"/>, at most <see cref="Timeout"/>.</summary>
    /// <exception cref="CommunicationTimeoutException">It did not complete in time.</exception>
    public void Wait(CollectiveRequest request)
    {
        if (Test(request)) return;
        // Poll without sleeping: MPI progresses only inside its calls, so a rank that sleeps between polls adds a
        // millisecond to every round of the collective's protocol (a 4 KB allreduce took 0.8 ms that way).
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var spin = new System.Threading.SpinWait();
        while (!Test(request))
        {
            if (clock.Elapsed > Timeout)
                throw new CommunicationTimeoutException(
                    $"Rank {Rank} of {Size}: {request.What} did not complete within {Timeout.TotalSeconds:0.#} s. Another rank has probably crashed or stopped "
                    + "(its own error is in the job's output); the job cannot continue. Raise Communicator.Timeout or NETDSL_COLLECTIVE_TIMEOUT for slow networks.");
            spin.SpinOnce(sleep1Threshold: -1);
        }
    }

    /// <summary>Sums <paramref name="data"/> over all ranks, in place, and waits.</summary>
    public void AllreduceSum<T>(Memory<T> data) where T : unmanaged, IFloatingPointIeee754<T> => Wait(StartAllreduceSum(data));

    /// <summary>Copies rank 0's <paramref name="data"/> to every rank, and waits.</summary>
    public void Broadcast<T>(Memory<T> data) where T : unmanaged => Wait(StartBroadcast(data));

    /// <summary>Ends the whole job now (all ranks) with <paramref name="exitCode"/>; for unrecoverable errors.</summary>
    public abstract void Abort(int exitCode);

    /// <inheritdoc />
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Finalizes the transport.</summary>
    protected virtual void Dispose(bool disposing) { }

    private static TimeSpan DefaultTimeout()
        => double.TryParse(Environment.GetEnvironmentVariable("NETDSL_COLLECTIVE_TIMEOUT"), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double s) && s > 0
            ? TimeSpan.FromSeconds(s) : TimeSpan.FromSeconds(120);
}

/// <summary>An outstanding collective operation.</summary>
public sealed class CollectiveRequest
{
    /// <summary>Creates a request (for communicators outside this library: a completed one when <paramref name="completed"/>).</summary>
    public CollectiveRequest(string what, bool completed = false)
    {
        What = what;
        IsCompleted = completed;
    }

    internal CollectiveRequest(int handle, string what, IDisposable? pin) : this(what)
    {
        Handle = handle;
        Pin = pin;
    }

    internal int Handle { get; set; }

    internal IDisposable? Pin { get; set; }

    /// <summary>What it is, for messages: "allreduce of 1,605,632 bytes".</summary>
    public string What { get; }

    /// <summary>Whether it has completed.</summary>
    public bool IsCompleted { get; internal set; }
}

/// <summary>A collective did not complete in time: another rank has died or stopped.</summary>
public sealed class CommunicationTimeoutException : TimeoutException
{
    /// <summary>Creates the exception.</summary>
    public CommunicationTimeoutException(string message) : base(message) { }
}

/// <summary>One process: every collective is the identity and completes at once.</summary>
public sealed class SingleProcessCommunicator : Communicator
{
    /// <inheritdoc />
    public override int Rank => 0;

    /// <inheritdoc />
    public override int Size => 1;

    /// <inheritdoc />
    public override string Transport => "single process";

    /// <inheritdoc />
    public override CollectiveRequest StartAllreduceSum<T>(Memory<T> data) => new("allreduce", completed: true);

    /// <inheritdoc />
    public override CollectiveRequest StartBroadcast<T>(Memory<T> data) => new("broadcast", completed: true);

    /// <inheritdoc />
    public override bool Test(CollectiveRequest request) => true;

    /// <inheritdoc />
    public override void Abort(int exitCode) => Environment.Exit(exitCode);
}

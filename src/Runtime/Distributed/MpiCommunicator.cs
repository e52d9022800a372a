using System;
using System.Numerics;
using System.Runtime.InteropServices;

namespace NetDsl.Runtime.Distributed;

/// <summary>
/// MPI through a thin binding of the ten calls NetDsl needs, against the MPICH ABI (<c>libmpich.so.12</c>: MPICH,
/// Intel MPI, Cray MPICH, MVAPICH). Entry points are resolved once with <see cref="NativeLibrary"/> and called
/// through function pointers: no reflection and no marshalling stubs, so it works under NativeAOT. Handles
/// (communicators, datatypes, operations, requests) are ints in this ABI, with the constants of MPICH's mpi.h.
/// Errors return codes (MPI_ERRORS_RETURN) that become exceptions with MPI's own message.
/// </summary>
public sealed unsafe class MpiCommunicator : Communicator
{
    private const int CommWorld = 0x44000000;
    private const int TypeFloat = 0x4c00040a;
    private const int TypeDouble = 0x4c00080b;
    private const int TypeByte = 0x4c00010d;
    private const int OpSum = 0x58000003;
    private const int ErrorsReturn = 0x54000001;
    private const int ThreadFunneled = 1;
    private const int RequestNull = 0x2c000000;
    private static readonly string[] Candidates = { "libmpich.so.12", "libmpi.so.12", "libmpich.so" };

    private static MpiCommunicator? s_instance;
    private readonly nint _library;
    private readonly delegate* unmanaged<void*, int, int, int, int, int*, int> _ibcast;
    private readonly delegate* unmanaged<int*, int*, void*, int> _test;
    private readonly delegate* unmanaged<int, int, int> _abort;
    private readonly delegate* unmanaged<int> _finalize;
    private readonly delegate* unmanaged<int, byte*, int*, int> _errorString;
    private bool _finalized;

    private MpiCommunicator(nint library, string path)
    {
        _library = library;
        Library = path;
        nint Get(string name) => NativeLibrary.TryGetExport(library, name, out var f) ? f
            : throw new EntryPointNotFoundException($"{path} has no {name}; NetDsl needs an MPI-3 library with the MPICH ABI (libmpich.so.12).");
        var initialized = (delegate* unmanaged<int*, int>)Get("MPI_Initialized");
        var initThread = (delegate* unmanaged<int*, void*, int, int*, int>)Get("MPI_Init_thread");
        var rank = (delegate* unmanaged<int, int*, int>)Get("MPI_Comm_rank");
        var size = (delegate* unmanaged<int, int*, int>)Get("MPI_Comm_size");
        var setErrhandler = (delegate* unmanaged<int, int, int>)Get("MPI_Comm_set_errhandler");
        _errorString = (delegate* unmanaged<int, byte*, int*, int>)Get("MPI_Error_string");
        var iallreduce = Get("MPI_Iallreduce");
        _ibcast = (delegate* unmanaged<void*, int, int, int, int, int*, int>)Get("MPI_Ibcast");
        _test = (delegate* unmanaged<int*, int*, void*, int>)Get("MPI_Test");
        _abort = (delegate* unmanaged<int, int, int>)Get("MPI_Abort");
        _finalize = (delegate* unmanaged<int>)Get("MPI_Finalize");
        _iallreduceRaw = (delegate* unmanaged<void*, void*, int, int, int, int, int*, int>)iallreduce;

        int flag = 0, provided = 0, r = 0, s = 0;
        Check(initialized(&flag), "MPI_Initialized");
        if (flag == 0) Check(initThread(null, null, ThreadFunneled, &provided), "MPI_Init_thread");
        Check(setErrhandler(CommWorld, ErrorsReturn), "MPI_Comm_set_errhandler");
        Check(rank(CommWorld, &r), "MPI_Comm_rank");
        Check(size(CommWorld, &s), "MPI_Comm_size");
        _rank = r;
        _size = s;
    }

    private readonly delegate* unmanaged<void*, void*, int, int, int, int, int*, int> _iallreduceRaw;
    private readonly int _rank;
    private readonly int _size;

    /// <summary>The MPI library in use.</summary>
    public string Library { get; }

    /// <inheritdoc />
    public override int Rank => _rank;

    /// <inheritdoc />
    public override int Size => _size;

    /// <inheritdoc />
    public override string Transport => "MPI (" + Library + ")";

    /// <summary>
    /// Loads MPI and initializes it (once per process). The library is <c>NETDSL_MPI_LIBRARY</c> when set, else the
    /// first of libmpich.so.12, libmpi.so.12 and libmpich.so that loads.
    /// </summary>
    public static MpiCommunicator Initialize()
    {
        if (s_instance is { _finalized: false }) return s_instance;
        string? forced = Environment.GetEnvironmentVariable("NETDSL_MPI_LIBRARY");
        var tried = new System.Collections.Generic.List<string>();
        foreach (var name in string.IsNullOrEmpty(forced) ? Candidates : new[] { forced })
        {
            if (NativeLibrary.TryLoad(name, out var handle)) return s_instance = new MpiCommunicator(handle, name);
            tried.Add(name);
        }
        throw new DllNotFoundException($"This process was started by an MPI launcher, but no MPI library with the MPICH ABI loads (tried {string.Join(", ", tried)}). "
            + "Install MPICH (Debian: apt-get install mpich) or point NETDSL_MPI_LIBRARY at libmpich.so.12. Open MPI's ABI differs and is not supported.");
    }

    /// <inheritdoc />
    public override CollectiveRequest StartAllreduceSum<T>(Memory<T> data)
    {
        int type = typeof(T) == typeof(float) ? TypeFloat : typeof(T) == typeof(double) ? TypeDouble
            : throw new NotSupportedException($"Allreduce of {typeof(T).Name} is not supported; float and double are.");
        var pin = data.Pin();
        int request = RequestNull;
        var inPlace = (void*)(nint)(-1); // MPI_IN_PLACE
        int code = _iallreduceRaw(inPlace, pin.Pointer, data.Length, type, OpSum, CommWorld, &request);
        if (code != 0)
        {
            pin.Dispose();
            Check(code, "MPI_Iallreduce");
        }
        return new CollectiveRequest(request, $"allreduce of {data.Length * System.Runtime.CompilerServices.Unsafe.SizeOf<T>():N0} bytes", pin);
    }

    /// <inheritdoc />
    public override CollectiveRequest StartBroadcast<T>(Memory<T> data)
    {
        var pin = data.Pin();
        int request = RequestNull;
        int code = _ibcast(pin.Pointer, checked(data.Length * System.Runtime.CompilerServices.Unsafe.SizeOf<T>()), TypeByte, 0, CommWorld, &request);
        if (code != 0)
        {
            pin.Dispose();
            Check(code, "MPI_Ibcast");
        }
        return new CollectiveRequest(request, $"broadcast of {data.Length * System.Runtime.CompilerServices.Unsafe.SizeOf<T>():N0} bytes from rank 0", pin);
    }

    /// <inheritdoc />
    public override bool Test(CollectiveRequest request)
    {
        if (request.IsCompleted) return true;
        int handle = request.Handle, flag = 0;
        Check(_test(&handle, &flag, (void*)1 /* MPI_STATUS_IGNORE */), "MPI_Test");
        request.Handle = handle;
        if (flag == 0) return false;
        request.IsCompleted = true;
        request.Pin?.Dispose();
        request.Pin = null;
        return true;
    }

    /// <inheritdoc />
    public override void Abort(int exitCode) => _abort(CommWorld, exitCode);

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (_finalized) return;
        _finalized = true;
        _finalize();
    }

    private void Check(int code, string call)
    {
        if (code == 0) return;
        var text = new byte[1024];
        int length = 0;
        fixed (byte* p = text)
            if (_errorString is not null && _errorString(code, p, &length) == 0)
                throw new InvalidOperationException($"{call} failed on rank {_rank}: {System.Text.Encoding.ASCII.GetString(text, 0, Math.Clamp(length, 0, text.Length))}");
        throw new InvalidOperationException($"{call} failed on rank {_rank} with MPI error {code}.");
    }
}

using System;
using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace NetDsl.Runtime.Cpu;

/// <summary>
/// A block of memory whose contents its owner promises never to change (an <see cref="InferenceSession{T}"/>'s
/// private copy of the weights). While a thread has it entered (<see cref="Enter()"/>), every packed-path product
/// that thread starts whose op(B) lies inside the block packs that operand once, on first use, and reuses the packed
/// copy from then on; per call, only A is packed. The packed copy is laid out exactly as the product packs op(B)
/// itself, so results are bit-identical. Products started on other threads (a worker's share of a convolution),
/// and operands outside the block, are unaffected.
/// </summary>
public sealed unsafe class ConstantOperands
{
    [ThreadStatic] private static ConstantOperands? t_current;

    private readonly nuint _start, _end;
    private readonly ConcurrentDictionary<Operand, float[]> _packed = new();

    /// <summary>op(B) as a product reads it: where it starts, its shape and its row stride.</summary>
    private readonly record struct Operand(nuint B, bool TransB, int N, int K, int Ldb);

    /// <summary>
    /// Declares <paramref name="length"/> floats from <paramref name="start"/> constant. The memory must stay where it
    /// is (native or pinned) and unchanged for as long as this object is entered on any thread.
    /// </summary>
    public ConstantOperands(float* start, long length)
    {
        if (start == null) throw new ArgumentNullException(nameof(start));
        if (length < 0) throw new ArgumentOutOfRangeException(nameof(length), length, "The length cannot be negative.");
        _start = (nuint)start;
        _end = (nuint)(start + length);
    }

    /// <summary>How many distinct operands have been packed so far (each costs its K × N↑32 floats).</summary>
    public int PackedCount => _packed.Count;

    /// <summary>Makes this block the calling thread's constant memory until the returned scope is disposed.</summary>
    public Scope Enter()
    {
        var previous = t_current;
        t_current = this;
        return new Scope(previous);
    }

    /// <summary>
    /// Makes <paramref name="block"/> the calling thread's constant memory until the returned scope is disposed, as
    /// <see cref="Enter()"/>; null leaves the thread's constant memory as it is.
    /// </summary>
    internal static Scope Enter(ConstantOperands? block) => block is null ? new Scope(t_current) : block.Enter();

    /// <summary>Restores the thread's previous constant memory (none, usually) when disposed.</summary>
    public readonly ref struct Scope
    {
        private readonly ConstantOperands? _previous;

        internal Scope(ConstantOperands? previous) => _previous = previous;

        /// <summary>Leaves the block.</summary>
        public void Dispose() => t_current = _previous;
    }

    /// <summary>
    /// The packed copy of op(B) (<see cref="Sgemm.PackWhole"/>) if the calling thread has entered a block that holds
    /// all of it, packing it on first use; otherwise null.
    /// </summary>
    internal static float* Find(bool transB, int n, int k, float* b, int ldb)
    {
        var block = t_current;
        if (block is null || n <= 0 || k <= 0) return null;
        // The last element op(B) reads: row n − 1 of B stored [N, K], or row k − 1 of B stored [K, N].
        long last = transB ? (long)(n - 1) * ldb + k : (long)(k - 1) * ldb + n;
        if ((nuint)b < block._start || (nuint)(b + last) > block._end) return null;
        // GetOrAdd looks up first, and its static factory allocates nothing once the operand is packed.
        return Aligned(block._packed.GetOrAdd(new Operand((nuint)b, transB, n, k, ldb), static key => Pack(key)));
    }

    private static float[] Pack(Operand operand)
    {
        // A pinned array (it never moves), 64 bytes of slack so the packed panels can start on a cache line.
        var packed = GC.AllocateUninitializedArray<float>(checked((int)Sgemm.PackedSize(operand.N, operand.K) + 16), pinned: true);
        Sgemm.PackWhole(operand.TransB, operand.N, operand.K, (float*)operand.B, operand.Ldb, Aligned(packed));
        return packed;
    }

    private static float* Aligned(float[] array)
    {
        nuint address = (nuint)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(array));
        return (float*)((address + 63) & ~(nuint)63);
    }
}

using System;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using NetDsl.Runtime.Cpu;

namespace NetDsl.Runtime;

/// <summary>
/// A network frozen for inference on the CPU (<see cref="CompiledNetwork{T}.CreateInferenceSession"/>): a private
/// copy of the parameters and state, which nothing can change, so the weights a GEMM reads as its B operand (every
/// Linear layer's) are packed into the kernel's panel layout once and reused by every call. <see cref="Predict"/>
/// gives bit for bit what the network's own <see cref="CompiledNetwork{T}.Predict"/> gives on the same parameters.
/// </summary>
/// <typeparam name="T">The element type: <see cref="float"/> or <see cref="double"/>.</typeparam>
public sealed class InferenceSession<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly CompiledNetwork<T> _network;

    internal unsafe InferenceSession(CompiledNetwork<T> frozen)
    {
        _network = frozen;
        var parameters = frozen.ParameterData;
        // The parameters live in a pinned array (AlignedArray), so their address is fixed for the session's life.
        if (typeof(T) == typeof(float) && !parameters.IsEmpty)
            frozen.Constants = new ConstantOperands((float*)Unsafe.AsPointer(ref MemoryMarshal.GetReference(parameters)), parameters.Length);
    }

    /// <summary>Sizes, parameters and memory plans of the network.</summary>
    public NetworkDescription Description => _network.Description;

    /// <summary>How many weight matrices have been packed so far (they are packed on first use).</summary>
    public int PackedWeights => _network.Constants?.PackedCount ?? 0;

    /// <summary>
    /// Runs inference on a batch, as <see cref="CompiledNetwork{T}.Predict"/> does (the same arguments, errors and
    /// results), with the frozen parameters. Thread-safe; allocates nothing once warm, as <see cref="CompiledNetwork{T}.Predict"/>.
    /// </summary>
    public void Predict(ReadOnlySpan<T> input, Span<T> output) => _network.Predict(input, output);
}

using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Numerics;
using System.Runtime.InteropServices;

namespace NetDsl.Runtime.Checkpoints;

/// <summary>What a loaded checkpoint says about the training it came from.</summary>
/// <param name="Epoch">Epochs completed when it was saved.</param>
/// <param name="Step">Optimizer steps applied when it was saved.</param>
/// <param name="Metadata">All metadata strings of the file.</param>
public sealed record CheckpointInfo(int Epoch, long Step, IReadOnlyDictionary<string, string> Metadata);

/// <summary>
/// Checkpoints in the safetensors format with PyTorch's state_dict names (<c>conv1.weight</c>, ...), so weights
/// move both ways: a PyTorch <c>load_state_dict(safetensors.torch.load_file(path))</c> reads NetDsl's parameters
/// (skip the <c>optimizer.</c> entries), and NetDsl loads a file PyTorch saved. With a trainer, the optimizer's
/// state (<c>optimizer.&lt;parameter&gt;.&lt;buffer&gt;</c>) and the epoch are saved alongside, for resuming. Saving is
/// atomic; loading checks every name, dtype and shape (and NetDsl's data checksum) before changing anything,
/// and says exactly which tensor differs.
/// </summary>
public static class Checkpoint
{
    private const string OptimizerPrefix = "optimizer.";

    /// <summary>Saves the network's parameters and, with <paramref name="trainer"/>, its optimizer state.</summary>
    public static void Save<T>(string path, CompiledNetwork<T> network, Trainer<T>? trainer = null, int epoch = 0, IReadOnlyDictionary<string, string>? metadata = null)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        trainer?.CopyParametersToNetwork();
        var d = network.Description;
        var tensors = new List<SafeTensor>();
        foreach (var p in d.Parameters)
            tensors.Add(Tensor(p.Name, p.Shape, network.Parameter(p.Name)));
        foreach (var st in d.States)
            tensors.Add(StateTensor(st, network.State(st.Name)));
        var meta = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["format"] = "pt",
            ["netdsl.network"] = d.Name,
            ["netdsl.epoch"] = epoch.ToString(CultureInfo.InvariantCulture),
        };
        if (trainer is not null)
        {
            var state = trainer.SaveOptimizerState();
            meta["netdsl.step"] = state.Steps.ToString(CultureInfo.InvariantCulture);
            meta["netdsl.optimizer"] = trainer.Optimizer.GetType().Name;
            foreach (var (buffer, values) in state.Buffers)
                foreach (var p in d.Parameters)
                    tensors.Add(Tensor(OptimizerPrefix + p.Name + "." + buffer, p.Shape, values.AsSpan(p.Offset, p.Length)));
        }
        if (metadata is not null)
            foreach (var (k, v) in metadata) meta[k] = v;
        uint crc = 0;
        foreach (var t in tensors) crc = Crc32C.Append(crc, t.Data);
        meta["netdsl.crc32c"] = crc.ToString("x8", CultureInfo.InvariantCulture);
        SafeTensors.Write(path, tensors, meta);
    }

    /// <summary>
    /// Loads parameters into <paramref name="network"/> and, when the file has it and a trainer is given, the
    /// optimizer state. Nothing changes unless the whole file fits the network.
    /// </summary>
    public static CheckpointInfo Load<T>(string path, CompiledNetwork<T> network, Trainer<T>? trainer = null)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var (tensors, metadata) = SafeTensors.Read(path);
        var d = network.Description;
        string expectedType = typeof(T) == typeof(float) ? "F32" : "F64";
        if (metadata.TryGetValue("netdsl.crc32c", out var crcText))
        {
            uint crc = 0;
            foreach (var t in tensors) crc = Crc32C.Append(crc, t.Data);
            if (crc.ToString("x8", CultureInfo.InvariantCulture) != crcText)
                throw new InvalidDataException($"{path}: the tensor data does not match its checksum (stored {crcText}, computed {crc:x8}); the file is corrupt.");
        }
        var byName = new Dictionary<string, SafeTensor>(StringComparer.Ordinal);
        foreach (var t in tensors) byName[t.Name] = t;

        foreach (var p in d.Parameters)
        {
            if (!byName.TryGetValue(p.Name, out var t))
                throw new InvalidDataException($"{path}: the checkpoint has no tensor '{p.Name}', which {d.Name} needs ({p.ShapeText}). It holds: {string.Join(", ", tensors.Select(x => x.Name).Where(n => !n.StartsWith(OptimizerPrefix, StringComparison.Ordinal)))}.");
            Check(path, t, p.Name, p.Shape, expectedType);
        }
        foreach (var st in d.States)
        {
            if (!byName.TryGetValue(st.Name, out var t))
                throw new InvalidDataException($"{path}: the checkpoint has no tensor '{st.Name}', the running statistic {d.Name} needs ({st.ShapeText}).");
            Check(path, t, st.Name, st.Shape, st.IsCount ? "I64" : expectedType);
        }
        foreach (var t in tensors)
        {
            if (t.Name.StartsWith(OptimizerPrefix, StringComparison.Ordinal)) continue;
            if (d.FindParameter(t.Name) is null && d.FindState(t.Name) is null)
                throw new InvalidDataException($"{path}: the checkpoint has a tensor '{t.Name}' {t.ShapeText} that {d.Name} does not have; is it from another network? {d.Name}'s parameters are {string.Join(", ", d.Parameters.Select(p => p.Name).Concat(d.States.Select(x => x.Name)))}.");
        }

        // Optimizer state: all of it or none.
        OptimizerSnapshot<T>? snapshot = null;
        if (trainer is not null && tensors.Any(t => t.Name.StartsWith(OptimizerPrefix, StringComparison.Ordinal)))
        {
            var current = trainer.SaveOptimizerState();
            var buffers = new List<(string, T[])>();
            foreach (var (buffer, values) in current.Buffers)
            {
                var copy = new T[values.Length];
                foreach (var p in d.Parameters)
                {
                    string name = OptimizerPrefix + p.Name + "." + buffer;
                    if (!byName.TryGetValue(name, out var t))
                        throw new InvalidDataException($"{path}: the checkpoint has no optimizer tensor '{name}' for {trainer.Optimizer.GetType().Name}; it was saved with another optimizer (metadata says {metadata.GetValueOrDefault("netdsl.optimizer", "none")}).");
                    Check(path, t, name, p.Shape, expectedType);
                    Values(t, copy.AsSpan(p.Offset, p.Length));
                }
                buffers.Add((buffer, copy));
            }
            long steps = metadata.TryGetValue("netdsl.step", out var s) && long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out long v) ? v : 0;
            snapshot = new OptimizerSnapshot<T>(steps, buffers);
        }

        // Everything checked: now write.
        foreach (var p in d.Parameters) Values(byName[p.Name], network.Parameter(p.Name));
        foreach (var st in d.States) StateValues(byName[st.Name], st, network.State(st.Name));
        if (trainer is not null)
        {
            trainer.CopyParametersFromNetwork();
            if (snapshot is not null) trainer.LoadOptimizerState(snapshot);
        }
        int epoch = metadata.TryGetValue("netdsl.epoch", out var e) && int.TryParse(e, NumberStyles.Integer, CultureInfo.InvariantCulture, out int ep) ? ep : 0;
        return new CheckpointInfo(epoch, snapshot?.Steps ?? 0, metadata);
    }

    private static void Check(string path, SafeTensor t, string name, int[] shape, string dtype)
    {
        if (t.DType != dtype)
            throw new InvalidDataException($"{path}: tensor '{name}' is {t.DType}; expected {dtype}.");
        if (t.Shape.Length != shape.Length || !t.Shape.Zip(shape, (a, b) => a == b).All(x => x))
            throw new InvalidDataException($"{path}: tensor '{name}' has shape {t.ShapeText}; expected [{string.Join(", ", shape)}].");
    }

    private static SafeTensor Tensor<T>(string name, int[] shape, ReadOnlySpan<T> values) where T : unmanaged
    {
        long[] dims = Array.ConvertAll(shape, x => (long)x);
        return typeof(T) == typeof(float)
            ? SafeTensors.FromFloats(name, dims, MemoryMarshal.Cast<T, float>(values))
            : SafeTensors.FromDoubles(name, dims, MemoryMarshal.Cast<T, double>(values));
    }

    private static SafeTensor StateTensor<T>(StateInfo st, ReadOnlySpan<T> values) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (!st.IsCount) return Tensor(st.Name, st.Shape, values);
        var counts = new long[values.Length];
        for (int i = 0; i < counts.Length; i++) counts[i] = long.CreateSaturating(values[i]);
        return SafeTensors.FromInt64(st.Name, Array.ConvertAll(st.Shape, x => (long)x), counts);
    }

    private static void StateValues<T>(SafeTensor t, StateInfo st, Span<T> into) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (!st.IsCount)
        {
            Values(t, into);
            return;
        }
        var counts = new long[into.Length];
        SafeTensors.ToInt64(t, counts);
        for (int i = 0; i < counts.Length; i++) into[i] = T.CreateSaturating(counts[i]);
    }

    private static void Values<T>(SafeTensor t, Span<T> into) where T : unmanaged
    {
        if (typeof(T) == typeof(float)) SafeTensors.ToFloats(t, MemoryMarshal.Cast<T, float>(into));
        else SafeTensors.ToDoubles(t, MemoryMarshal.Cast<T, double>(into));
    }
}

/// <summary>An optimizer's state as plain arrays: updates applied and each named buffer over all parameters.</summary>
/// <param name="Steps">Updates applied.</param>
/// <param name="Buffers">Named buffers in the parameters' layout (momentum_buffer, exp_avg, exp_avg_sq).</param>
public sealed record OptimizerSnapshot<T>(long Steps, IReadOnlyList<(string Name, T[] Values)> Buffers);

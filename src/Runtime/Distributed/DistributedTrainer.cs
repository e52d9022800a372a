using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Numerics;
using System.Text;

namespace NetDsl.Runtime.Distributed;

/// <summary>
/// Data-parallel training: every rank holds the whole network, runs forward and backward on its own shard of each
/// global batch, and the ranks sum their gradients with MPI allreduce before each applies the same optimizer
/// step, so all keep identical parameters. Communication follows the generator's bucket plan
/// (<see cref="NetworkDescription.GradientBuckets"/>): the generated backward code signals each bucket as soon as
/// its gradients are final and its non-blocking allreduce starts at once, overlapping the rest of backward.
/// With one process (no <c>mpiexec</c>) it is an ordinary trainer.
/// </summary>
/// <remarks>
/// The result is the gradient of the mean loss over the global batch: each rank weights its bucket by its local
/// batch size before the sum and every rank divides by the global batch size after it, so shards of unequal size
/// (the end of an epoch) are weighted correctly. Dropout masks differ between ranks (the seed includes the rank).
/// BatchNorm normalizes with each rank's local batch, as PyTorch's DistributedDataParallel does; call
/// <see cref="SynchronizeState"/> to average the running statistics (done before every checkpoint).
/// </remarks>
public sealed class DistributedTrainer<T> : IDisposable, IGradientBucketListener where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly CpuTrainer<T> _local;
    private readonly Memory<T> _gradients;
    private readonly IReadOnlyList<GradientBucket> _buckets;
    private readonly CollectiveRequest?[] _requests;
    private readonly double[] _scalars = new double[2];
    private readonly Stopwatch _waiting = new();
    private T _localWeight;

    /// <summary>
    /// Creates this rank's trainer and makes every rank start from rank 0's parameters and running statistics.
    /// </summary>
    /// <param name="network">This rank's copy of the network.</param>
    /// <param name="optimizer">The optimizer; every rank applies it to the same averaged gradients.</param>
    /// <param name="loss">The loss.</param>
    /// <param name="batchSize">The most samples one rank processes per step (the global batch is this × ranks).</param>
    /// <param name="communicator">The job, from <see cref="Communicator.FromEnvironment"/>.</param>
    /// <param name="seed">The dropout seed; the rank is mixed in.</param>
    public DistributedTrainer(CompiledNetwork<T> network, Optimizer optimizer, Loss loss, int batchSize, Communicator communicator, int seed = 0)
    {
        ArgumentNullException.ThrowIfNull(network);
        Communicator = communicator ?? throw new ArgumentNullException(nameof(communicator));
        _local = new CpuTrainer<T>(network, optimizer, loss, batchSize, seed + 7919 * communicator.Rank);
        _gradients = _local.Workspace.GradientMemory;
        _buckets = network.Description.GradientBuckets.Count > 0
            ? network.Description.GradientBuckets
            : new[] { new GradientBucket(0, network.Description.ParameterBufferLength, 0, Array.Empty<string>()) };
        _requests = new CollectiveRequest?[_buckets.Count];
        if (communicator.Size > 1)
        {
            var parameters = new T[network.Description.ParameterBufferLength];
            network.ParameterData.CopyTo(parameters);
            communicator.Broadcast<T>(parameters);
            parameters.CopyTo(network.ParameterData);
            if (network.StateData.Length > 0)
            {
                var state = network.StateData.ToArray();
                communicator.Broadcast<T>(state);
                state.CopyTo(network.StateData);
            }
        }
    }

    /// <summary>The job.</summary>
    public Communicator Communicator { get; }

    /// <summary>This rank's trainer (its network, optimizer state and checkpoints).</summary>
    public Trainer<T> Local => _local;

    /// <summary>This rank's network.</summary>
    public CompiledNetwork<T> Network => _local.Network;

    /// <summary>The gradient buckets, as planned at build time.</summary>
    public IReadOnlyList<GradientBucket> Buckets => _buckets;

    /// <summary>Optimizer steps taken.</summary>
    public long StepCount => _local.StepCount;

    /// <summary>Time spent waiting for gradient allreduces after backward (the communication not hidden behind it).</summary>
    public TimeSpan CommunicationWait => _waiting.Elapsed;

    /// <summary>Checks each step's loss and gradients for NaN and infinity (see <see cref="Trainer{T}.CheckFinite"/>).</summary>
    public bool CheckFinite
    {
        get => _local.CheckFinite;
        set => _local.CheckFinite = value;
    }

    /// <summary>One step on this rank's shard (class labels); returns the mean loss over the global batch.</summary>
    public T Step(ReadOnlySpan<T> inputs, ReadOnlySpan<int> labels) => Run(inputs, labels, default, useLabels: true);

    /// <summary>One step on this rank's shard (float targets); returns the mean loss over the global batch.</summary>
    public T Step(ReadOnlySpan<T> inputs, ReadOnlySpan<T> targets) => Run(inputs, default, targets, useLabels: false);

    private T Run(ReadOnlySpan<T> inputs, ReadOnlySpan<int> labels, ReadOnlySpan<T> targets, bool useLabels)
    {
        Begin(inputs);
        T loss;
        try { loss = useLabels ? _local.ComputeGradients(inputs, labels) : _local.ComputeGradients(inputs, targets); }
        catch
        {
            Drain();
            throw;
        }
        finally { _local.Workspace.BucketListener = null; }
        return Finish(loss);
    }

    private void Begin(ReadOnlySpan<T> inputs)
    {
        int batch = Network.BatchOf(inputs, nameof(inputs));
        _localWeight = T.CreateTruncating(batch);
        Array.Clear(_requests);
        _local.Workspace.BucketListener = Communicator.Size > 1 ? this : null;
    }

    /// <summary>Backward finished bucket <paramref name="bucket"/>: weight it by the local batch and start its allreduce.</summary>
    void IGradientBucketListener.BucketReady(int bucket)
    {
        var b = _buckets[bucket];
        var slice = _gradients.Slice(b.Offset, b.Length);
        var span = slice.Span;
        for (int i = 0; i < span.Length; i++) span[i] *= _localWeight;
        _requests[bucket] = Communicator.StartAllreduceSum(slice);
        ((IGradientBucketListener)this).Progress();
    }

    /// <summary>Drives MPI's progress engine for the buckets in flight (it progresses only inside MPI calls).</summary>
    void IGradientBucketListener.Progress()
    {
        foreach (var r in _requests) if (r is not null && !r.IsCompleted) Communicator.Test(r);
    }

    /// <summary>
    /// After a failed step (bad input, a diverged loss): waits, within the timeout, for the bucket allreduces already
    /// started, so no request is left in flight over this rank's buffers. The other ranks then time out on the step's
    /// last collective with a clear message, since this rank does not take part in it.
    /// </summary>
    private void Drain()
    {
        foreach (var r in _requests)
        {
            if (r is null) continue;
            try { Communicator.Wait(r); }
            catch (CommunicationTimeoutException) { }
        }
    }

    private T Finish(T localLoss)
    {
        int batch = int.CreateTruncating(_localWeight);
        if (Communicator.Size > 1)
        {
            for (int k = 0; k < _buckets.Count; k++)
                if (_requests[k] is null) ((IGradientBucketListener)this).BucketReady(k); // a bucket backward never signalled
            _waiting.Start();
            try
            {
                foreach (var r in _requests) Communicator.Wait(r!);
                _scalars[0] = double.CreateTruncating(localLoss) * batch;
                _scalars[1] = batch;
                Communicator.AllreduceSum<double>(_scalars);
            }
            finally { _waiting.Stop(); }
            T inverse = T.One / T.CreateTruncating(_scalars[1]);
            var all = _gradients.Span;
            for (int i = 0; i < all.Length; i++) all[i] *= inverse;
            localLoss = T.CreateTruncating(_scalars[0] / _scalars[1]);
        }
        _local.ApplyUpdate();
        return localLoss;
    }

    /// <summary>Averages the running statistics (BatchNorm) over the ranks, so every rank holds the same ones.</summary>
    public void SynchronizeState()
    {
        var state = Network.StateData;
        if (Communicator.Size == 1 || state.IsEmpty) return;
        var copy = state.ToArray();
        Communicator.AllreduceSum<T>(copy);
        T inverse = T.One / T.CreateTruncating(Communicator.Size);
        foreach (var s in Network.Description.States)
            for (int i = s.Offset; i < s.Offset + s.Length; i++)
                state[i] = s.IsCount ? state[i] : copy[i] * inverse;
    }

    /// <summary>
    /// Saves a checkpoint (parameters, running statistics averaged over the ranks, optimizer state) from rank 0
    /// only; the other ranks take part in the averaging and write nothing.
    /// </summary>
    public void SaveCheckpoint(string path, int epoch = 0, IReadOnlyDictionary<string, string>? metadata = null)
    {
        SynchronizeState();
        if (Communicator.IsRoot) Checkpoints.Checkpoint.Save(path, Network, _local, epoch, metadata);
    }

    /// <summary>
    /// The part of a global batch that is this rank's: of the samples <c>[start, start + count)</c> of the epoch's
    /// order, a contiguous run, the ranks' runs differing by at most one sample.
    /// </summary>
    public static (int Start, int Count) Shard(int start, int count, int rank, int size)
    {
        int each = count / size, extra = count % size;
        return (start + rank * each + Math.Min(rank, extra), each + (rank < extra ? 1 : 0));
    }

    /// <summary>The bucket plan, one line per bucket, for logs.</summary>
    public string DescribePlan()
    {
        var text = new StringBuilder();
        text.Append($"{_buckets.Count} gradient buckets (at most {Network.Description.GradientBucketBytes:N0} bytes each), allreduced over {Communicator.Size} process(es) by {Communicator.Transport}:");
        int size = System.Runtime.CompilerServices.Unsafe.SizeOf<T>();
        for (int k = 0; k < _buckets.Count; k++)
            text.Append($"\n  #{k}: {(long)_buckets[k].Length * size:N0} bytes, after backward step {_buckets[k].ReadyAfterStep}: {string.Join(", ", _buckets[k].Parameters)}");
        return text.ToString();
    }

    /// <inheritdoc />
    public void Dispose() => _local.Dispose();
}

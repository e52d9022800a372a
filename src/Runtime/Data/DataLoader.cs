using System;
using System.Collections.Generic;
using System.Threading;

namespace NetDsl.Runtime.Data;

/// <summary>
/// A dataset in memory: samples of <see cref="SampleSize"/> floats, each with a class label or a row of
/// <see cref="TargetSize"/> target values.
/// </summary>
public sealed class Dataset
{
    /// <summary>A labelled dataset (classification).</summary>
    public Dataset(float[] inputs, int[] labels, int[] sampleShape)
        : this(inputs, sampleShape, labels, null, 0)
    {
    }

    /// <summary>A dataset with float targets (regression, autoencoders: the targets may be the inputs).</summary>
    public Dataset(float[] inputs, float[] targets, int[] sampleShape, int targetSize)
        : this(inputs, sampleShape, null, targets, targetSize)
    {
    }

    private Dataset(float[] inputs, int[] sampleShape, int[]? labels, float[]? targets, int targetSize)
    {
        Inputs = inputs ?? throw new ArgumentNullException(nameof(inputs));
        SampleShape = sampleShape ?? throw new ArgumentNullException(nameof(sampleShape));
        int size = 1;
        foreach (int d in sampleShape)
        {
            if (d < 1) throw new ArgumentException($"Sample dimensions must be positive; got [{string.Join(", ", sampleShape)}].", nameof(sampleShape));
            size *= d;
        }
        SampleSize = size;
        if (inputs.Length % size != 0)
            throw new ArgumentException($"The inputs have {inputs.Length} floats, not a multiple of the sample size {size} ([{string.Join(", ", sampleShape)}]).", nameof(inputs));
        Count = inputs.Length / size;
        Labels = labels;
        Targets = targets;
        TargetSize = targetSize;
        if (labels is not null && labels.Length != Count)
            throw new ArgumentException($"There are {labels.Length} labels for {Count} samples; expected one per sample.", nameof(labels));
        if (targets is not null && targets.Length != (long)Count * targetSize)
            throw new ArgumentException($"There are {targets.Length} targets for {Count} samples of {targetSize}; expected {(long)Count * targetSize}.", nameof(targets));
    }

    /// <summary>All inputs, sample after sample.</summary>
    public float[] Inputs { get; }

    /// <summary>Class labels, or null.</summary>
    public int[]? Labels { get; }

    /// <summary>Target rows, or null.</summary>
    public float[]? Targets { get; }

    /// <summary>The shape of one sample, e.g. [1, 28, 28].</summary>
    public int[] SampleShape { get; }

    /// <summary>Floats per sample.</summary>
    public int SampleSize { get; }

    /// <summary>Floats per target row.</summary>
    public int TargetSize { get; }

    /// <summary>Number of samples.</summary>
    public int Count { get; }

    /// <summary>An image set as a labelled dataset of [1, rows, cols] samples.</summary>
    public static Dataset FromImages(ImageSet images, int rows, int cols) => new(images.Images, images.Labels, [1, rows, cols]);

    /// <summary>The first <paramref name="count"/> samples (copied).</summary>
    public Dataset Take(int count) => Slice(0, Math.Min(count, Count));

    /// <summary>Samples [<paramref name="start"/>, <paramref name="start"/> + <paramref name="count"/>) as a new dataset (copied).</summary>
    public Dataset Slice(int start, int count)
    {
        if (start < 0 || count < 0 || start + count > Count) throw new ArgumentOutOfRangeException(nameof(count), $"Samples [{start}, {start + count}) are outside [0, {Count}).");
        var inputs = Inputs.AsSpan(start * SampleSize, count * SampleSize).ToArray();
        return Labels is not null
            ? new Dataset(inputs, Labels.AsSpan(start, count).ToArray(), SampleShape)
            : new Dataset(inputs, Targets.AsSpan(start * TargetSize, count * TargetSize).ToArray(), SampleShape, TargetSize);
    }
}

/// <summary>One batch: views of the loader's reusable buffers, valid until the next batch is requested.</summary>
public readonly ref struct Batch
{
    internal Batch(ReadOnlySpan<float> inputs, ReadOnlySpan<int> labels, ReadOnlySpan<float> targets, int count, int index)
    {
        Inputs = inputs;
        Labels = labels;
        Targets = targets;
        Count = count;
        Index = index;
    }

    /// <summary>The samples, one after another.</summary>
    public ReadOnlySpan<float> Inputs { get; }

    /// <summary>Class labels (empty for target datasets).</summary>
    public ReadOnlySpan<int> Labels { get; }

    /// <summary>Target rows (empty for labelled datasets).</summary>
    public ReadOnlySpan<float> Targets { get; }

    /// <summary>Samples in this batch (the last batch of an epoch may be short).</summary>
    public int Count { get; }

    /// <summary>The batch's position in its epoch.</summary>
    public int Index { get; }
}

/// <summary>
/// Serves a dataset in batches: shuffled each epoch from a seed (the same seed gives the same order on every
/// run), a short last batch unless <c>dropLast</c>, augmentations applied to whole batches in place, and the
/// next batch prepared on a background thread while the current one trains. Batches live in buffers the
/// loader owns, so an epoch allocates nothing per sample.
/// </summary>
public sealed class DataLoader : IDisposable
{
    private readonly int[] _order;
    private readonly IBatchTransform[] _transforms;
    private readonly Slot[] _slots;
    private readonly SemaphoreSlim _request = new(0);
    private readonly SemaphoreSlim _done = new(0);
    private Thread? _producer;
    private volatile bool _stopping;

    // The one batch being prepared in the background: which one, into which slot.
    private int _pendingEpoch = -1, _pendingIndex = -1, _pendingSlot;
    private bool _inFlight;
    private Exception? _producerError;
    private int _orderEpoch = -1;

    /// <summary>Creates a loader.</summary>
    public DataLoader(Dataset data, int batchSize, bool shuffle = true, int seed = 0, bool dropLast = false, bool prefetch = true, params IBatchTransform[] transforms)
    {
        Data = data ?? throw new ArgumentNullException(nameof(data));
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "The batch size must be at least 1.");
        BatchSize = batchSize;
        Shuffle = shuffle;
        Seed = seed;
        DropLast = dropLast;
        Prefetch = prefetch;
        _transforms = transforms ?? [];
        _order = new int[data.Count];
        _slots = new Slot[prefetch ? 2 : 1];
        for (int i = 0; i < _slots.Length; i++) _slots[i] = new Slot(batchSize, data);
    }

    /// <summary>The dataset.</summary>
    public Dataset Data { get; }

    /// <summary>Samples per batch.</summary>
    public int BatchSize { get; }

    /// <summary>Whether each epoch reshuffles.</summary>
    public bool Shuffle { get; }

    /// <summary>The shuffle and augmentation seed.</summary>
    public int Seed { get; }

    /// <summary>Whether a short last batch is dropped.</summary>
    public bool DropLast { get; }

    /// <summary>Whether the next batch is prepared in the background.</summary>
    public bool Prefetch { get; }

    /// <summary>Batches per epoch.</summary>
    public int BatchCount => DropLast ? Data.Count / BatchSize : (Data.Count + BatchSize - 1) / BatchSize;

    /// <summary>The batches of epoch <paramref name="epoch"/> (0-based), in this epoch's shuffled order.</summary>
    public Enumerator GetEpoch(int epoch) => new(this, epoch);

    /// <summary>Iterates one epoch's batches; <see cref="Current"/> is valid until <see cref="MoveNext"/>.</summary>
    public ref struct Enumerator
    {
        private readonly DataLoader _loader;
        private readonly int _epoch;
        private int _index;
        private Slot? _current;

        internal Enumerator(DataLoader loader, int epoch)
        {
            _loader = loader;
            _epoch = epoch;
            _index = -1;
            _current = null;
            loader.StartEpoch(epoch);
        }

        /// <summary>The current batch.</summary>
        public readonly Batch Current => _current!.AsBatch(_index);

        /// <summary>Advances to the next batch.</summary>
        public bool MoveNext()
        {
            _index++;
            if (_index >= _loader.BatchCount)
            {
                _current = null;
                return false;
            }
            _current = _loader.Take(_epoch, _index);
            return true;
        }

        /// <summary>Enables <c>foreach</c>.</summary>
        public readonly Enumerator GetEnumerator() => this;
    }

    private void StartEpoch(int epoch)
    {
        WaitForPending();
        Order(epoch);
    }

    private void Order(int epoch)
    {
        if (_orderEpoch == epoch) return;
        _orderEpoch = epoch;
        for (int i = 0; i < _order.Length; i++) _order[i] = i;
        if (!Shuffle) return;
        // Fisher-Yates with a counter-based generator keyed by (seed, epoch): reproducible and order-independent.
        ulong key = CounterRandom.Derive((ulong)(uint)Seed, (ulong)epoch);
        for (int i = _order.Length - 1; i > 0; i--)
        {
            int j = (int)(CounterRandom.Hash(key, (ulong)i) % (ulong)(i + 1));
            (_order[i], _order[j]) = (_order[j], _order[i]);
        }
    }

    private Slot Take(int epoch, int index)
    {
        Slot slot;
        if (_inFlight && _pendingEpoch == epoch && _pendingIndex == index)
        {
            WaitForPending();
            slot = _slots[_pendingSlot];
        }
        else
        {
            WaitForPending();
            Order(epoch);
            slot = _slots[0];
            Fill(slot, epoch, index);
        }
        if (Prefetch && index + 1 < BatchCount)
        {
            // Prepare the next batch in the other slot while this one trains.
            _pendingEpoch = epoch;
            _pendingIndex = index + 1;
            _pendingSlot = slot == _slots[0] ? 1 : 0;
            _inFlight = true;
            _producer ??= StartProducer();
            _request.Release();
        }
        return slot;
    }

    private void WaitForPending()
    {
        if (!_inFlight) return;
        _done.Wait();
        _inFlight = false;
        if (_producerError is { } error)
        {
            _producerError = null;
            throw new InvalidOperationException("Preparing a batch failed: " + error.Message, error);
        }
    }

    private Thread StartProducer()
    {
        var thread = new Thread(Produce) { IsBackground = true, Name = "NetDsl data loader" };
        thread.Start();
        return thread;
    }

    private void Produce()
    {
        while (true)
        {
            _request.Wait();
            if (_stopping) return;
            try { Fill(_slots[_pendingSlot], _pendingEpoch, _pendingIndex); }
            catch (Exception ex) { _producerError = ex; }
            _done.Release();
        }
    }

    private void Fill(Slot slot, int epoch, int index)
    {
        int start = index * BatchSize;
        int count = Math.Min(BatchSize, Data.Count - start);
        int size = Data.SampleSize;
        for (int b = 0; b < count; b++)
        {
            int src = _order[start + b];
            Data.Inputs.AsSpan(src * size, size).CopyTo(slot.Inputs.AsSpan(b * size));
            if (Data.Labels is not null) slot.Labels[b] = Data.Labels[src];
            else Data.Targets.AsSpan(src * Data.TargetSize, Data.TargetSize).CopyTo(slot.Targets.AsSpan(b * Data.TargetSize));
        }
        slot.Count = count;
        if (_transforms.Length > 0)
        {
            ulong key = CounterRandom.Derive(CounterRandom.Derive((ulong)(uint)Seed ^ 0xA5A5, (ulong)epoch), (ulong)index);
            foreach (var t in _transforms) t.Apply(slot.Inputs.AsSpan(0, count * size), count, Data.SampleShape, key);
        }
    }

    /// <summary>Stops the background thread.</summary>
    public void Dispose()
    {
        if (_inFlight) WaitForPending();
        _stopping = true;
        _request.Release();
    }

    private sealed class Slot
    {
        public Slot(int batchSize, Dataset data)
        {
            Inputs = new float[batchSize * data.SampleSize];
            Labels = data.Labels is not null ? new int[batchSize] : [];
            Targets = data.Targets is not null ? new float[batchSize * data.TargetSize] : [];
            TargetSize = data.TargetSize;
            SampleSize = data.SampleSize;
        }

        public float[] Inputs { get; }

        public int[] Labels { get; }

        public float[] Targets { get; }

        public int TargetSize { get; }

        public int SampleSize { get; }

        public int Count { get; set; }

        public Batch AsBatch(int index) => new(
            Inputs.AsSpan(0, Count * SampleSize),
            Labels.Length > 0 ? Labels.AsSpan(0, Count) : default,
            Targets.Length > 0 ? Targets.AsSpan(0, Count * TargetSize) : default,
            Count, index);
    }
}

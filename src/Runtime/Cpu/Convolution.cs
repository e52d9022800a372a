using System;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace NetDsl.Runtime.Cpu;

/// <summary>
/// 2-D convolution through im2col and GEMM. Samples run in parallel on the workers, each with its own column
/// buffer (<c>C·k² × OH·OW</c>, allocated once per thread), and a fused epilogue (bias, activation, the next
/// op's gradient) runs on each sample right after its GEMM, while the data is in cache. The weight gradient is
/// split by rows of the column matrix instead, so every weight is accumulated over the batch in sample order
/// by one thread: the result does not depend on the number of threads.
/// </summary>
public static unsafe class Convolution
{
    /// <summary>The column-buffer elements one thread needs.</summary>
    public static int ScratchSize(in Window2d g) => g.ColumnRows * g.OutPixels;

    /// <summary><c>y[b] = W · im2col(x[b])</c>; the bias is added by the generated epilogue.</summary>
    public static void Forward<T>(in Window2d g, int batch, ReadOnlySpan<T> x, ReadOnlySpan<T> w, Span<T> y)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var none = new NoEpilogue();
        Forward(g, batch, x, w, y, ref none);
    }

    /// <summary><c>y[b] = W · im2col(x[b])</c>, then <paramref name="epilogue"/> over sample b's outputs.</summary>
    public static void Forward<T, TEpilogue>(in Window2d g, int batch, ReadOnlySpan<T> x, ReadOnlySpan<T> w, Span<T> y, ref TEpilogue epilogue)
        where T : unmanaged, IFloatingPointIeee754<T>
        where TEpilogue : IElementwise, allows ref struct
    {
        var job = new Job<T, TEpilogue> { G = g, In = x, Weights = w, Out = y, Epilogue = epilogue };
        CpuWorkers.Run(ref job, &ForwardSamples<T, TEpilogue>, batch, align: 1);
    }

    /// <summary><c>dx[b] (+)= col2im(Wᵀ · dy[b])</c>.</summary>
    public static void BackwardData<T>(in Window2d g, int batch, ReadOnlySpan<T> dy, ReadOnlySpan<T> w, Span<T> dx, bool accumulate)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var none = new NoEpilogue();
        BackwardData(g, batch, dy, w, dx, accumulate, ref none);
    }

    /// <summary><c>dx[b] (+)= col2im(Wᵀ · dy[b])</c>, then <paramref name="epilogue"/> over sample b's input gradient.</summary>
    public static void BackwardData<T, TEpilogue>(in Window2d g, int batch, ReadOnlySpan<T> dy, ReadOnlySpan<T> w, Span<T> dx, bool accumulate, ref TEpilogue epilogue)
        where T : unmanaged, IFloatingPointIeee754<T>
        where TEpilogue : IElementwise, allows ref struct
    {
        var job = new Job<T, TEpilogue> { G = g, In = dy, Weights = w, Out = dx, Accumulate = accumulate, Epilogue = epilogue };
        CpuWorkers.Run(ref job, &BackwardDataSamples<T, TEpilogue>, batch, align: 1);
    }

    /// <summary>
    /// <c>dW (+)= Σ_b dy[b] · im2col(x[b])ᵀ</c>. The batch is summed in sample order, or, where the column matrix
    /// has too few rows to split over threads (a first layer's 1 × 3 × 3), in fixed blocks of
    /// <see cref="SampleBlock"/> samples whose sums are then added in block order: either way the result does not
    /// depend on the number of threads.
    /// </summary>
    public static void BackwardWeight<T>(in Window2d g, int batch, ReadOnlySpan<T> x, ReadOnlySpan<T> dy, Span<T> dw, bool accumulate)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var job = new Job<T, NoEpilogue> { G = g, In = x, Weights = dy, Out = dw, Accumulate = accumulate, Batch = batch };
        if (typeof(T) == typeof(float) && Sgemm.IsAccelerated)
        {
            if (g.ColumnRows < 16 && batch >= 2 * SampleBlock)
                BackwardWeightBySamples(ref job);
            else
                CpuWorkers.Run(ref job, &BackwardWeightRows<T>, g.ColumnRows, align: 8);
        }
        else
            BackwardWeightSerial(ref job);
    }

    /// <summary>Samples per partial weight gradient when the batch, not the column rows, is split over threads.</summary>
    private const int SampleBlock = 8;

    private static void BackwardWeightBySamples<T>(ref Job<T, NoEpilogue> j) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var g = j.G;
        int size = g.OutChannels * g.ColumnRows, blocks = (j.Batch + SampleBlock - 1) / SampleBlock;
        j.Partials = ThreadBuffer<PartialSums, float>.Get(blocks * size);
        CpuWorkers.Run(ref j, &BackwardWeightBlocks<T>, blocks, align: 1);
        AddBlocks(j.Partials, blocks, MemoryMarshal.Cast<T, float>(j.Out).Slice(0, size), j.Accumulate);
    }

    /// <summary><c>dw (+)= Σ partials[blk]</c>, the blocks' weight-gradient sums added in block order.</summary>
    private static void AddBlocks(ReadOnlySpan<float> partials, int blocks, Span<float> dw, bool accumulate)
    {
        int size = dw.Length;
        for (int e = 0; e < size; e++)
        {
            float sum = accumulate ? dw[e] + partials[e] : partials[e];
            for (int blk = 1; blk < blocks; blk++) sum += partials[blk * size + e];
            dw[e] = sum;
        }
    }

    /// <summary>
    /// One sample's term of a block's weight gradient, <c>partial (+)= dY[b] · im2col(x[b])ᵀ</c> (overwriting for the
    /// block's first sample), through this thread's column buffer <paramref name="col"/>.
    /// </summary>
    private static void AddSampleTerm(in Window2d g, ReadOnlySpan<float> xb, float* dyb, Span<float> col, float* partial, bool first)
    {
        Im2Col(g, xb, col, 0, g.ColumnRows);
        fixed (float* pcol = col)
            Sgemm.Multiply(false, true, g.OutChannels, g.ColumnRows, g.OutPixels, dyb, g.OutPixels, pcol, g.OutPixels, partial, g.ColumnRows, accumulate: !first);
    }

    // Each worker sums whole blocks of samples into their own partial gradients, in sample order within a block.
    private static void BackwardWeightBlocks<T>(ref Job<T, NoEpilogue> j, int blk0, int blk1)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var g = j.G;
        int size = g.OutChannels * g.ColumnRows;
        Span<float> col = ThreadBuffer<ColumnMatrix, float>.Get(ScratchSize(g));
        var x = MemoryMarshal.Cast<T, float>(j.In);
        var dy = MemoryMarshal.Cast<T, float>(j.Weights);
        fixed (float* pdy = dy, partials = j.Partials)
        {
            for (int blk = blk0; blk < blk1; blk++)
            {
                int first = blk * SampleBlock, last = Math.Min(j.Batch, first + SampleBlock);
                for (int b = first; b < last; b++)
                    AddSampleTerm(g, x.Slice(b * g.InSize, g.InSize), pdy + (long)b * g.OutSize, col, partials + (long)blk * size, b == first);
            }
        }
    }

    /// <summary>
    /// The usual CNN block, fused per sample: <c>pooled[b] = maxpool(relu(W · im2col(x[b]) + bias))</c>, recording each
    /// window's winning position (within the sample, as <see cref="Pooling.MaxForward{T}"/> does) unless
    /// <paramref name="argmax"/> is empty. Each sample's convolution output lives in a per-thread buffer while its
    /// bias, ReLU and pooling run, so the unpooled activation never goes to memory: written and read back, it is the
    /// largest stream of a small CNN's step, and the one a busy host's memory slows most. The outputs are bit for
    /// bit those of <see cref="Forward{T, TEpilogue}"/> with a bias-and-ReLU epilogue followed by
    /// <see cref="Pooling.MaxForward{T}"/>. <paramref name="y"/> is the unpooled activation's place in the workspace,
    /// which the fused block leaves untouched (it is written only when <see cref="FuseBlocks"/> is off).
    /// </summary>
    public static void ForwardReluMaxPool(in Window2d conv, in Window2d pool, int batch, ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> bias,
        Span<float> y, Span<float> pooled, Span<int> argmax)
    {
        RequirePoolsConvolution(conv, pool);
        if (!FuseBlocks)
        {
            Require(bias.Length, conv.OutChannels, nameof(bias));
            var epilogue = new BiasRelu { Y = y, Bias = bias, Channels = conv.OutChannels, Pixels = conv.OutPixels };
            Forward(conv, batch, x, w, y, ref epilogue);
            Pooling.MaxForward(pool, batch, (ReadOnlySpan<float>)y, pooled, argmax);
            return;
        }
        Require(x.Length, (long)batch * conv.InSize, nameof(x));
        Require(w.Length, (long)conv.OutChannels * conv.ColumnRows, nameof(w));
        Require(bias.Length, conv.OutChannels, nameof(bias));
        Require(pooled.Length, (long)batch * pool.OutSize, nameof(pooled));
        if (!argmax.IsEmpty) Require(argmax.Length, (long)batch * pool.OutSize, nameof(argmax));
        var job = new BlockJob { Conv = conv, Pool = pool, X = x, W = w, Bias = bias, Pooled = pooled, Argmax = argmax };
        CpuWorkers.Run(ref job, &ForwardReluMaxPoolSamples, batch, align: 1);
    }

    /// <summary>
    /// Whether <see cref="ForwardReluMaxPool"/> and <see cref="BackwardWeightThroughMaxPool"/> run fused (the default) or
    /// as their steps one after another through the unpooled buffers. Internal: for tests and benchmarks that compare
    /// the two.
    /// </summary>
    internal static bool FuseBlocks = true;

    /// <summary>The bias-and-ReLU epilogue over whole samples of a convolution's output (the unfused block).</summary>
    private ref struct BiasRelu : IElementwise
    {
        public Span<float> Y;
        public ReadOnlySpan<float> Bias;
        public int Channels, Pixels;

        public void Run(int start, int end)
        {
            int size = Channels * Pixels;
            for (int o = start / size; o < end / size; o++) AddBiasRelu(Y.Slice(o * size, size), Bias, Channels, Pixels);
        }
    }

    private static void Require(int length, long needed, string name) => Pooling.Require(length, needed, name);

    /// <summary>Refuses a pooling window that does not read what the convolution writes per sample.</summary>
    private static void RequirePoolsConvolution(in Window2d conv, in Window2d pool)
    {
        if (pool.InChannels != conv.OutChannels || pool.InHeight != conv.OutHeight || pool.InWidth != conv.OutWidth)
            throw new ArgumentException($"The pooling reads [{pool.InChannels}, {pool.InHeight}, {pool.InWidth}] per sample; the convolution writes [{conv.OutChannels}, {conv.OutHeight}, {conv.OutWidth}].", nameof(pool));
    }

    /// <summary>A fused convolution block's operands (<see cref="ForwardReluMaxPool"/>, <see cref="BackwardWeightThroughMaxPool"/>).</summary>
    private ref struct BlockJob
    {
        public Window2d Conv, Pool;
        public ReadOnlySpan<float> X, W, Bias, DPooled, Gate;
        public Span<float> Pooled, Dw, PlaneSums;
        public Span<int> Argmax;
        public int Batch;
    }

    private static void ForwardReluMaxPoolSamples(ref BlockJob j, int b0, int b1)
    {
        var g = j.Conv;
        Span<float> col = ColumnBuffer<float>(g);
        Span<float> y = ThreadBuffer<BlockOutput, float>.Get(g.OutSize);
        for (int b = b0; b < b1; b++)
        {
            ConvolveSample(g, j.X.Slice(b * g.InSize, g.InSize), j.W, col, y);
            AddBiasRelu(y, j.Bias, g.OutChannels, g.OutPixels);
            Pooling.MaxForwardSample(j.Pool, y, j.Pooled.Slice(b * j.Pool.OutSize, j.Pool.OutSize),
                j.Argmax.IsEmpty ? default : j.Argmax.Slice(b * j.Pool.OutSize, j.Pool.OutSize));
        }
    }

    /// <summary>
    /// <c>y = max(y + bias[c], 0)</c> over each channel's plane, with the arithmetic of the generated epilogue it
    /// replaces: whole vectors, then <see cref="Math.Max(float, float)"/> for the plane's tail.
    /// </summary>
    private static void AddBiasRelu(Span<float> y, ReadOnlySpan<float> bias, int channels, int pixels)
    {
        for (int c = 0; c < channels; c++)
        {
            float r1 = bias[c];
            var v1 = new Vector<float>(r1);
            int i = c * pixels, stop = i + pixels;
            for (; i <= stop - Vector<float>.Count; i += Vector<float>.Count)
                Lanes.Store(y, i, Lanes.Relu(Lanes.Load((ReadOnlySpan<float>)y, i) + v1));
            for (; i < stop; i++) y[i] = Math.Max(y[i] + r1, 0.0f);
        }
    }

    /// <summary>
    /// The first convolution block's backward, fused per sample: the gated max-pooling gradient (see
    /// <see cref="Pooling.MaxBackward{T}"/>) of each sample goes to a per-thread buffer, from which the bias gradient
    /// <c>db (+)= Σ dY</c> (unless <paramref name="db"/> is empty) and the weight gradient <c>dW (+)= Σ_b dY[b] · im2col(x[b])ᵀ</c> are taken while it is in
    /// cache; <paramref name="dy"/> (the unpooled gradient) is not written. This applies where the column matrix has too few rows to split
    /// over the threads (<see cref="BackwardWeight{T}"/>'s blocks of samples); elsewhere, or without a SIMD GEMM, the
    /// three steps run one after another through <paramref name="dy"/>. Either way the gradients are bit for bit
    /// those of <see cref="Pooling.MaxBackward{T}"/>, <see cref="Rows.SumToChannels{T}"/> and
    /// <see cref="BackwardWeight{T}"/> in turn, whatever the number of threads.
    /// </summary>
    public static void BackwardWeightThroughMaxPool(in Window2d conv, in Window2d pool, int batch, ReadOnlySpan<float> x, ReadOnlySpan<float> dPooled,
        ReadOnlySpan<int> argmax, ReadOnlySpan<float> gate, Span<float> dy, Span<float> dw, bool accumulate, Span<float> db, bool biasAccumulate)
    {
        RequirePoolsConvolution(conv, pool);
        if (!(FuseBlocks && Sgemm.IsAccelerated && conv.ColumnRows < 16 && batch >= 2 * SampleBlock))
        {
            Pooling.MaxBackward(pool, batch, dPooled, argmax, dy, accumulate: false, gate);
            if (!db.IsEmpty) Rows.SumToChannels(batch, conv.OutChannels, conv.OutPixels, dy, db, biasAccumulate);
            BackwardWeight(conv, batch, x, dy, dw, accumulate);
            return;
        }
        Require(x.Length, (long)batch * conv.InSize, nameof(x));
        Require(dPooled.Length, (long)batch * pool.OutSize, nameof(dPooled));
        Require(argmax.Length, (long)batch * pool.OutSize, nameof(argmax));
        if (!gate.IsEmpty) Require(gate.Length, (long)batch * pool.OutSize, nameof(gate));
        int size = conv.OutChannels * conv.ColumnRows, blocks = (batch + SampleBlock - 1) / SampleBlock;
        Require(dw.Length, size, nameof(dw));
        if (!db.IsEmpty) Require(db.Length, conv.OutChannels, nameof(db));
        var job = new BlockJob
        {
            Conv = conv, Pool = pool, X = x, DPooled = dPooled, Gate = gate, Batch = batch,
            Argmax = MemoryMarshal.CreateSpan(ref MemoryMarshal.GetReference(argmax), argmax.Length),
            PlaneSums = db.IsEmpty ? default : ThreadBuffer<PlaneSumBuffer, float>.Get(batch * conv.OutChannels),
        };
        job.Dw = ThreadBuffer<PartialSums, float>.Get(blocks * size);
        CpuWorkers.Run(ref job, &BackwardWeightThroughMaxPoolBlocks, blocks, align: 1);
        // The weight gradient as BackwardWeightBySamples adds it.
        AddBlocks(job.Dw, blocks, dw.Slice(0, size), accumulate);
        // The bias gradient: each sample's plane sums added in sample order, as SumToChannels adds them.
        ReadOnlySpan<float> planes = job.PlaneSums;
        for (int c = 0; !planes.IsEmpty && c < conv.OutChannels; c++)
        {
            float sum = biasAccumulate ? db[c] : 0f;
            for (int b = 0; b < batch; b++) sum += planes[b * conv.OutChannels + c];
            db[c] = sum;
        }
    }

    private static void BackwardWeightThroughMaxPoolBlocks(ref BlockJob j, int blk0, int blk1)
    {
        var g = j.Conv;
        var pool = j.Pool;
        int size = g.OutChannels * g.ColumnRows;
        Span<float> col = ThreadBuffer<ColumnMatrix, float>.Get(ScratchSize(g));
        Span<float> dy = ThreadBuffer<BlockOutput, float>.Get(g.OutSize);
        fixed (float* pdy = dy, partials = j.Dw)
        {
            for (int blk = blk0; blk < blk1; blk++)
            {
                int first = blk * SampleBlock, last = Math.Min(j.Batch, first + SampleBlock);
                for (int b = first; b < last; b++)
                {
                    int o = b * pool.OutSize;
                    Pooling.MaxBackwardSample(pool, j.DPooled.Slice(o, pool.OutSize), j.Argmax.Slice(o, pool.OutSize), dy,
                        j.Gate.IsEmpty ? default : j.Gate.Slice(o, pool.OutSize));
                    if (!j.PlaneSums.IsEmpty)
                        for (int c = 0; c < g.OutChannels; c++)
                            j.PlaneSums[b * g.OutChannels + c] = Rows.Sum<float>(dy.Slice(c * g.OutPixels, g.OutPixels));
                    AddSampleTerm(g, j.X.Slice(b * g.InSize, g.InSize), pdy, col, partials + (long)blk * size, b == first);
                }
            }
        }
    }

    private ref struct Job<T, TEpilogue>
        where T : unmanaged
        where TEpilogue : IElementwise, allows ref struct
    {
        public Window2d G;
        public ReadOnlySpan<T> In;
        public ReadOnlySpan<T> Weights;
        public Span<T> Out;
        public bool Accumulate;
        public int Batch;
        public TEpilogue Epilogue;
        public Span<float> Partials;
    }

    private static void ForwardSamples<T, TEpilogue>(ref Job<T, TEpilogue> j, int b0, int b1)
        where T : unmanaged, IFloatingPointIeee754<T>
        where TEpilogue : IElementwise, allows ref struct
    {
        var g = j.G;
        Span<T> col = ColumnBuffer<T>(g);
        for (int b = b0; b < b1; b++)
        {
            ConvolveSample(g, j.In.Slice(b * g.InSize, g.InSize), j.Weights, col, j.Out.Slice(b * g.OutSize, g.OutSize));
            j.Epilogue.Run(b * g.OutSize, (b + 1) * g.OutSize);
        }
    }

    /// <summary>This thread's column buffer for <paramref name="g"/>; empty for a 1×1 convolution, which multiplies its input as it is.</summary>
    private static Span<T> ColumnBuffer<T>(in Window2d g) where T : unmanaged
        => g.Kernel == 1 && g.Stride == 1 && g.Padding == 0 ? default : ThreadBuffer<ColumnMatrix, T>.Get(ScratchSize(g));

    /// <summary><c>y = W · im2col(x)</c> for one sample, through <paramref name="col"/> (<see cref="ColumnBuffer{T}"/>; empty: x itself).</summary>
    private static void ConvolveSample<T>(in Window2d g, ReadOnlySpan<T> x, ReadOnlySpan<T> w, Span<T> col, Span<T> y)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ReadOnlySpan<T> columns = x;
        if (!col.IsEmpty)
        {
            Im2Col(g, x, col, 0, g.ColumnRows);
            columns = col;
        }
        Gemm.Multiply(false, false, g.OutChannels, g.OutPixels, g.ColumnRows, w, columns, y, accumulate: false);
    }

    private static void BackwardDataSamples<T, TEpilogue>(ref Job<T, TEpilogue> j, int b0, int b1)
        where T : unmanaged, IFloatingPointIeee754<T>
        where TEpilogue : IElementwise, allows ref struct
    {
        var g = j.G;
        Span<T> col = ThreadBuffer<ColumnMatrix, T>.Get(ScratchSize(g));
        for (int b = b0; b < b1; b++)
        {
            Gemm.Multiply(true, false, g.ColumnRows, g.OutPixels, g.OutChannels, j.Weights, j.In.Slice(b * g.OutSize, g.OutSize), col, accumulate: false);
            Span<T> dxb = j.Out.Slice(b * g.InSize, g.InSize);
            if (!j.Accumulate) dxb.Clear();
            Col2Im(g, col, dxb);
            j.Epilogue.Run(b * g.InSize, (b + 1) * g.InSize);
        }
    }

    // Each worker owns rows [r0, r1) of the column matrix, i.e. of dW's columns, and walks the whole batch.
    private static void BackwardWeightRows<T>(ref Job<T, NoEpilogue> j, int r0, int r1)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var g = j.G;
        int rows = r1 - r0;
        Span<float> col = ThreadBuffer<ColumnMatrix, float>.Get(rows * g.OutPixels);
        var x = MemoryMarshal.Cast<T, float>(j.In);
        var dy = MemoryMarshal.Cast<T, float>(j.Weights);
        var dw = MemoryMarshal.Cast<T, float>(j.Out);
        fixed (float* pcol = col, pdy = dy, pdw = dw)
        {
            for (int b = 0; b < j.Batch; b++)
            {
                Im2Col(g, x.Slice(b * g.InSize, g.InSize), col, r0, r1);
                Sgemm.Multiply(false, true, g.OutChannels, rows, g.OutPixels, pdy + (long)b * g.OutSize, g.OutPixels, pcol, g.OutPixels,
                    pdw + r0, g.ColumnRows, accumulate: j.Accumulate || b > 0);
            }
        }
    }

    private static void BackwardWeightSerial<T>(ref Job<T, NoEpilogue> j) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var g = j.G;
        Span<T> col = ThreadBuffer<ColumnMatrix, T>.Get(ScratchSize(g));
        Span<T> dw = j.Out.Slice(0, g.OutChannels * g.ColumnRows);
        if (!j.Accumulate) dw.Clear();
        for (int b = 0; b < j.Batch; b++)
        {
            Im2Col(g, j.In.Slice(b * g.InSize, g.InSize), col, 0, g.ColumnRows);
            Gemm.Multiply(false, true, g.OutChannels, g.ColumnRows, g.OutPixels, j.Weights.Slice(b * g.OutSize, g.OutSize), col, dw, accumulate: true);
        }
    }

    /// <summary>Unfolds rows [<paramref name="r0"/>, <paramref name="r1"/>) of one sample's column matrix: row <c>(c,ky,kx)</c>, column <c>(oy,ox)</c>.</summary>
    public static void Im2Col<T>(in Window2d g, ReadOnlySpan<T> x, Span<T> col, int r0, int r1) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int k = g.Kernel, s = g.Stride, pad = g.Padding, oh = g.OutHeight, ow = g.OutWidth, h = g.InHeight, w = g.InWidth;
        for (int row = r0; row < r1; row++)
        {
            int c = row / (k * k), ky = row / k % k, kx = row % k;
            ReadOnlySpan<T> xc = x.Slice(c * h * w, h * w);
            Span<T> dst = col.Slice((row - r0) * oh * ow, oh * ow);
            if (s == 1 && ow == w && oh == h)
            {
                // 'Same' convolution: the row is the channel image shifted by (ky − pad, kx − pad), so the valid
                // output rows are one contiguous copy (dst[f] = src[f + shift]); the border is zeroed after it.
                // Per-row copies cost more than the data on small images.
                var (lo, hi) = Inside(pad - kx, ow, w);
                var (top, bottom) = Inside(pad - ky, oh, h);
                if (bottom > top && hi > lo)
                {
                    int first = top * w + lo, last = (bottom - 1) * w + hi, shift = (ky - pad) * w + (kx - pad);
                    xc.Slice(first + shift, last - first).CopyTo(dst.Slice(first, last - first));
                }
                dst.Slice(0, top * w).Clear();
                dst.Slice(bottom * w).Clear();
                if (lo > 0 || hi < ow)
                {
                    ref T d = ref MemoryMarshal.GetReference(dst);
                    for (int oy = top; oy < bottom; oy++)
                    {
                        ref T drow = ref Unsafe.Add(ref d, oy * w);
                        for (int ox = 0; ox < lo; ox++) Unsafe.Add(ref drow, ox) = T.Zero;
                        for (int ox = hi; ox < ow; ox++) Unsafe.Add(ref drow, ox) = T.Zero;
                    }
                }
                continue;
            }
            for (int oy = 0; oy < oh; oy++)
            {
                int iy = oy * s - pad + ky;
                Span<T> drow = dst.Slice(oy * ow, ow);
                if ((uint)iy >= (uint)h) { drow.Clear(); continue; }
                ReadOnlySpan<T> srow = xc.Slice(iy * w, w);
                if (s == 1)
                {
                    // A contiguous run: ox in [lo, hi) reads ix = ox - pad + kx inside the row.
                    var (lo, hi) = Inside(pad - kx, ow, w);
                    if (hi - lo >= Vector<T>.Count)
                    {
                        // Rows of a small image are short: lanes (the last one overlapping) instead of a memmove
                        // call per row, which costs more than the copy.
                        ref T d = ref MemoryMarshal.GetReference(drow);
                        ref T src = ref Unsafe.Add(ref MemoryMarshal.GetReference(srow), lo - pad + kx);
                        for (int ox = 0; ox < lo; ox++) Unsafe.Add(ref d, ox) = T.Zero;
                        int n = hi - lo, i = 0;
                        for (; i + Vector<T>.Count <= n; i += Vector<T>.Count)
                            Vector.StoreUnsafe(Vector.LoadUnsafe(ref src, (nuint)i), ref d, (nuint)(lo + i));
                        if (i < n)
                            Vector.StoreUnsafe(Vector.LoadUnsafe(ref src, (nuint)(n - Vector<T>.Count)), ref d, (nuint)(hi - Vector<T>.Count));
                        for (int ox = hi; ox < ow; ox++) Unsafe.Add(ref d, ox) = T.Zero;
                    }
                    else
                    {
                        drow.Slice(0, lo).Clear();
                        srow.Slice(lo - pad + kx, hi - lo).CopyTo(drow.Slice(lo, hi - lo));
                        drow.Slice(hi).Clear();
                    }
                }
                else
                {
                    for (int ox = 0; ox < ow; ox++)
                    {
                        int ix = ox * s - pad + kx;
                        drow[ox] = (uint)ix < (uint)w ? srow[ix] : T.Zero;
                    }
                }
            }
        }
    }

    /// <summary>
    /// At stride 1, the outputs [Lo, Hi) of a line of <paramref name="outLength"/> whose input, output −
    /// <paramref name="shift"/> (shift = pad − kernel offset), lies inside a line of <paramref name="inLength"/>;
    /// an empty range has Hi = Lo.
    /// </summary>
    private static (int Lo, int Hi) Inside(int shift, int outLength, int inLength)
    {
        int lo = Math.Min(Math.Max(0, shift), outLength);
        return (lo, Math.Max(Math.Min(outLength, inLength + shift), lo));
    }

    /// <summary>Unfolds one sample into its whole column matrix.</summary>
    public static void Im2Col<T>(in Window2d g, ReadOnlySpan<T> x, Span<T> col) where T : unmanaged, IFloatingPointIeee754<T>
        => Im2Col(g, x, col, 0, g.ColumnRows);

    /// <summary>Folds columns back onto one sample, adding overlapping contributions.</summary>
    public static void Col2Im<T>(in Window2d g, ReadOnlySpan<T> col, Span<T> x) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int k = g.Kernel, s = g.Stride, pad = g.Padding, oh = g.OutHeight, ow = g.OutWidth, h = g.InHeight, w = g.InWidth;
        if (s == 1 && ow == w && oh == h && k * h * w <= SameMaskLimit)
        {
            Col2ImSame(g, col, x);
            return;
        }
        int row = 0;
        for (int c = 0; c < g.InChannels; c++)
        {
            Span<T> xc = x.Slice(c * h * w, h * w);
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++, row++)
                {
                    ReadOnlySpan<T> src = col.Slice(row * oh * ow, oh * ow);
                    for (int oy = 0; oy < oh; oy++)
                    {
                        int iy = oy * s - pad + ky;
                        if ((uint)iy >= (uint)h) continue;
                        Span<T> xrow = xc.Slice(iy * w, w);
                        ReadOnlySpan<T> srow = src.Slice(oy * ow, ow);
                        if (s == 1)
                        {
                            var (lo, hi) = Inside(pad - kx, ow, w);
                            if (hi > lo) Rows.AddTo(srow.Slice(lo, hi - lo), xrow.Slice(lo - pad + kx, hi - lo));
                        }
                        else
                        {
                            for (int ox = 0; ox < ow; ox++)
                            {
                                int ix = ox * s - pad + kx;
                                if ((uint)ix < (uint)w) xrow[ix] += srow[ox];
                            }
                        }
                    }
                }
        }
    }

    /// <summary>The most elements of kernel-column masks <see cref="Col2ImSame{T}"/> keeps on the stack (16 KiB of floats).</summary>
    private const int SameMaskLimit = 4096;

    /// <summary>
    /// Col2im of a 'same' stride-1 convolution: each column-matrix row adds onto the channel image shifted by
    /// (ky − pad, kx − pad) as one contiguous run of lanes; the elements that would wrap into the neighbouring
    /// image row are masked to +0 (a mask per kernel column). Each input element receives the same additions in
    /// the same order as row by row, so the result is unchanged; on small images the per-row calls cost more
    /// than the additions.
    /// </summary>
    private static void Col2ImSame<T>(in Window2d g, ReadOnlySpan<T> col, Span<T> x) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int k = g.Kernel, pad = g.Padding, h = g.InHeight, w = g.InWidth, plane = h * w;
        Span<T> keep = stackalloc T[k * plane];
        for (int kx = 0; kx < k; kx++)
        {
            var (lo, hi) = Inside(pad - kx, w, w);
            for (int f = 0; f < plane; f++)
            {
                int ox = f % w;
                keep[kx * plane + f] = ox >= lo && ox < hi ? T.One : T.Zero;
            }
        }
        var one = Vector<T>.One;
        int row = 0;
        for (int c = 0; c < g.InChannels; c++)
        {
            ref T xc = ref MemoryMarshal.GetReference(x.Slice(c * plane, plane));
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++, row++)
                {
                    var (lo, hi) = Inside(pad - kx, w, w);
                    var (top, bottom) = Inside(pad - ky, h, h);
                    if (bottom <= top || hi <= lo) continue;
                    int first = top * w + lo, last = (bottom - 1) * w + hi, shift = (ky - pad) * w + (kx - pad);
                    ref T src = ref MemoryMarshal.GetReference(col.Slice(row * plane, plane));
                    ref T mask = ref MemoryMarshal.GetReference(keep.Slice(kx * plane, plane));
                    ref T dst = ref Unsafe.Add(ref xc, shift); // dst[f] = x[f + shift], inside the channel for f in [first, last)
                    int f = first;
                    for (; f + Vector<T>.Count <= last; f += Vector<T>.Count)
                    {
                        var add = Vector.ConditionalSelect(Vector.Equals(Vector.LoadUnsafe(ref mask, (nuint)f), one), Vector.LoadUnsafe(ref src, (nuint)f), Vector<T>.Zero);
                        Vector.StoreUnsafe(Vector.LoadUnsafe(ref dst, (nuint)f) + add, ref dst, (nuint)f);
                    }
                    for (; f < last; f++)
                        if (Unsafe.Add(ref mask, f) == T.One) Unsafe.Add(ref dst, f) += Unsafe.Add(ref src, f);
                }
        }
    }

    private struct ColumnMatrix;

    private struct PartialSums;

    private struct BlockOutput;

    private struct PlaneSumBuffer;

    /// <summary>
    /// A buffer per thread and use (<typeparamref name="TUse"/>: column matrices, partial sums), grown to the
    /// largest size asked for and then reused; it starts on a cache line, as the GEMM operands it becomes.
    /// </summary>
    private static class ThreadBuffer<TUse, T> where T : unmanaged
    {
        // One static field per closed type: each use keeps its own buffer.
        [ThreadStatic] private static AlignedArray<T> t_buffer;

        public static Span<T> Get(int size)
        {
            if (t_buffer.Length < size) t_buffer = new AlignedArray<T>(size);
            return t_buffer.Span.Slice(0, size);
        }
    }
}

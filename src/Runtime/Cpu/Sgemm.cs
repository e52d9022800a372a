using System;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace NetDsl.Runtime.Cpu;

/// <summary>
/// Single-precision GEMM for the managed CPU path, BLIS-style: blocks of A and B are packed into contiguous
/// panels (which also absorbs every transpose; with AVX-512, row-major A whose rows do not crowd an L1 set is
/// read in place instead), and a register-blocked micro-kernel computes an MR×NR tile of C with fused
/// multiply-adds — 12×32 or 8×32 with AVX-512 (up to 24 accumulators in zmm registers), 6×16
/// with AVX2/FMA. Small products, and narrow ones (N below 16, computed transposed), take a direct path that
/// packs nothing but op(B); A·Bᵀ with few rows (a batch-1 Linear layer) uses dot products whatever N is. The
/// packed and direct paths sum K in the same blocks, so a column of C comes out the same however a caller splits
/// N (a convolution's weight gradient splits it by thread). Large products are split over the worker threads by
/// columns of C.
/// </summary>
public static unsafe class Sgemm
{
    private const int KC = 512;   // depth of a packed block: an A micro-panel (12 × 512, 24 KiB) stays in L1
    private const int MC = 72;    // rows of a packed A block (a multiple of both MRs; 144 KiB at KC deep, in L2)
    private const int NC = 2048;  // columns of a packed B block (a worker's share of a 1024-wide product: 512, 1 MiB)

    /// <summary>Whether a SIMD micro-kernel is available (AVX-512 or AVX2 with FMA).</summary>
    public static bool IsAccelerated => Vector512.IsHardwareAccelerated || (Vector256.IsHardwareAccelerated && System.Runtime.Intrinsics.X86.Fma.IsSupported);

    /// <summary>
    /// The row-panel height for an M-row product's packed A: 12 with AVX-512, or 8 where 12-row panels would pad more than
    /// 2 % of the rows (M = 64 or 256: a batch, a layer's outputs) and 8-row ones less.
    /// </summary>
    private static int RowPanel(int m)
    {
        if (!Vector512.IsHardwareAccelerated) return 6;
        int pad12 = RoundUp(m, 12) - m, pad8 = RoundUp(m, 8) - m;
        return pad8 < pad12 && pad12 * 50 > m ? 8 : 12;
    }

    private static int NR => Vector512.IsHardwareAccelerated ? 32 : 16;

    /// <summary>
    /// Below this many rows A·Bᵀ runs as dot products (no packing: a batch-1 or small-batch Linear layer reads its
    /// weights once); from it on, packing Bᵀ pays for itself through the register-blocked kernel.
    /// </summary>
    private const int DotRowsLimit = 16;

    /// <summary>Products below this many multiply-adds run on the calling thread: waking workers costs more.</summary>
    private const long ParallelThreshold = 1L << 20;

    /// <summary><c>C[M,N] (+)= op(A)·op(B)</c> on contiguous row-major matrices.</summary>
    public static void Multiply(bool transA, bool transB, int m, int n, int k, ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, bool accumulate)
    {
        fixed (float* pa = a, pb = b, pc = c)
            Multiply(transA, transB, m, n, k, pa, pb, pc, accumulate);
    }

    /// <summary><c>C[M,N] (+)= op(A)·op(B)</c> on contiguous row-major matrices.</summary>
    public static void Multiply(bool transA, bool transB, int m, int n, int k, float* a, float* b, float* c, bool accumulate)
        => Multiply(transA, transB, m, n, k, a, transA ? m : k, b, transB ? k : n, c, n, accumulate);

    /// <summary>
    /// <c>C[M,N] (+)= op(A)·op(B)</c> on row-major matrices whose rows are <paramref name="lda"/>,
    /// <paramref name="ldb"/> and <paramref name="ldc"/> elements apart (sub-blocks of larger matrices).
    /// </summary>
    public static void Multiply(bool transA, bool transB, int m, int n, int k, float* a, int lda, float* b, int ldb, float* c, int ldc, bool accumulate)
        => Multiply(transA, transB, m, n, k, a, lda, b, ldb, c, ldc, accumulate, CpuWorkers.Count > 1 && WorthSplitting(m, n, k), packedB: null);

    /// <summary>
    /// Large products, and weight matrices of at least 128 KiB read by few rows (memory-bound: each core then streams
    /// half, and keeps its half in its own L2 from call to call).
    /// </summary>
    private static bool WorthSplitting(int m, int n, int k) => (long)m * n * k >= ParallelThreshold || (long)n * k >= 1 << 15;

    private static void Multiply(bool transA, bool transB, int m, int n, int k, float* a, int lda, float* b, int ldb, float* c, int ldc, bool accumulate, bool parallel,
        float* packedB)
    {
        if (m <= 0 || n <= 0) return;
        if (k <= 0)
        {
            if (!accumulate)
                for (int i = 0; i < m; i++) new Span<float>(c + (long)i * ldc, n).Clear();
            return;
        }
        var job = new Job(transA, transB, m, n, k, a, lda, b, ldb, c, ldc, accumulate);
        // Narrow C (an output layer's few classes) runs transposed through the direct path at any size (split
        // over the workers when large): 32-column micro-panels would be mostly padding.
        bool narrow = n < 16 && m > n;
        long panel = (long)k * RoundUp(narrow ? m : n, 16);
        if (Vector512.IsHardwareAccelerated && (transA || !transB || m >= DotRowsLimit) && panel <= PanelCapacity
            && (narrow || (!parallel && (long)m * n * k <= SmallProduct && panel <= SmallPanel)))
        {
            Direct(ref job, parallel);
        }
        else if (!transA && transB && m < DotRowsLimit)
        {
            if (parallel) CpuWorkers.Run(ref job, &DotSlice, n);
            else DotSlice(ref job, 0, n);
        }
        else
        {
            // A B operand the calling thread has declared constant (an inference session's weights) is packed once.
            if (packedB == null) packedB = ConstantOperands.Find(transB, n, k, b, ldb);
            if (packedB != null) job = new Job(transA, transB, m, n, k, a, lda, b, ldb, c, ldc, accumulate, packedB);
            if (parallel) CpuWorkers.Run(ref job, &PackedSlice, n);
            else PackedSlice(ref job, 0, n);
        }
    }

    /// <summary>
    /// <c>C (+)= op(A)·op(B)</c> on contiguous row-major matrices, then <paramref name="epilogue"/> over C's elements
    /// (a Linear layer's bias and activation), each worker running it on the rows it has just computed while they
    /// are in cache, in chunks of whole rows that are multiples of <paramref name="period"/> elements. Returns
    /// false, having done nothing, where splitting by rows does not pay: products small enough for one thread,
    /// and those with fewer rows than columns, where each worker would pack more of B than it saves of A; the
    /// caller then multiplies and runs the epilogue itself. Every row comes out as the unsplit product computes it.
    /// </summary>
    public static bool MultiplyByRows<TEpilogue>(bool transA, bool transB, int m, int n, int k, float* a, float* b, float* c,
        bool accumulate, ref TEpilogue epilogue, int period)
        where TEpilogue : IElementwise, allows ref struct
    {
        int count = CpuWorkers.Count;
        if (count < 2 || m < n || k <= 0 || period <= 0 || !WorthSplitting(m, n, k)) return false;
        // Chunks of whole rows, a multiple of the epilogue's period, and at least DotRowsLimit rows each (fewer
        // would take the dot-product path, whose sums run in another order).
        long periodRows = period / Gcd(period, n);
        long align = (DotRowsLimit + periodRows - 1) / periodRows * periodRows;
        if (m <= 2 * count * align) return false;
        int ldb = transB ? k : n;
        // The workers see no constant operands of their own: the calling thread's packed B goes with the job.
        float* packedB = ConstantOperands.Find(transB, n, k, b, ldb);
        var job = new RowsJob(new Job(transA, transB, m, n, k, a, transA ? m : k, b, ldb, c, n, accumulate, packedB), Unsafe.AsPointer(ref epilogue));
        CpuWorkers.Run(ref job, &RowsThen<TEpilogue>, m, (int)align);
        return true;
    }

    private static int Gcd(int x, int y)
    {
        while (y != 0) (x, y) = (y, x % y);
        return x;
    }

    /// <summary>A product split by rows of C, and the epilogue its workers run on their rows.</summary>
    private readonly struct RowsJob(Job job, void* epilogue)
    {
        public readonly Job Job = job;
        public readonly void* Epilogue = epilogue;
    }

    private static void RowsThen<TEpilogue>(ref RowsJob rows, int r0, int r1)
        where TEpilogue : IElementwise, allows ref struct
    {
        ref readonly Job job = ref rows.Job;
        float* a = job.A + (job.TransA ? r0 : (long)r0 * job.Lda);
        Multiply(job.TransA, job.TransB, r1 - r0, job.N, job.K, a, job.Lda, job.B, job.Ldb, job.C + (long)r0 * job.Ldc, job.Ldc, job.Accumulate, parallel: false, job.PackedB);
        Unsafe.AsRef<TEpilogue>(rows.Epilogue).Run(r0 * job.N, r1 * job.N);
    }

    /// <summary>Products up to this many multiply-adds may skip packing A (see <see cref="Direct"/>).</summary>
    private const long SmallProduct = 1L << 18;

    /// <summary>The most elements op(B) may have, rounded up to whole vectors of columns, for the direct path (64 KiB).</summary>
    private const int SmallPanel = 1 << 14;

    /// <summary>The per-thread buffer op(B) is copied into on the direct path (the packed path's B buffer).</summary>
    private const int PanelCapacity = KC * (NC + 32);

    /// <summary>
    /// The depth of the K blocks, at most <see cref="KC"/> and as equal as possible (784 = 2 × 392, not
    /// 512 + 272; 1100 = 3 × 367, not 2 × 512 + 76: a thin last block pays a pass over C for little work). Both
    /// paths use it, so they sum every element in the same blocks.
    /// </summary>
    private static int BlockDepth(int k)
    {
        int blocks = (k + KC - 1) / KC;
        return (k + blocks - 1) / blocks;
    }

    private static int RoundUp(int value, int multiple) => (value + multiple - 1) / multiple * multiple;

    /// <summary>The operands of one product; slices of its columns go to the workers.</summary>
    internal readonly struct Job(bool transA, bool transB, int m, int n, int k, float* a, int lda, float* b, int ldb, float* c, int ldc, bool accumulate,
        float* packedB = null)
    {
        public readonly bool TransA = transA, TransB = transB, Accumulate = accumulate;
        public readonly int M = m, N = n, K = k, Lda = lda, Ldb = ldb, Ldc = ldc;
        public readonly float* A = a, B = b, C = c;

        /// <summary>All of op(B) packed once (<see cref="PackWhole"/>, a constant operand), or null: pack per call.</summary>
        public readonly float* PackedB = packedB;
    }

    // ---- packed path (NN, NT with 16 rows or more, TN, TT) --------------------------------------------------

    /// <summary>
    /// Columns [n0, n1) of C. Each K block of op(B) is packed into this thread's buffer (it stays in L2), and each
    /// A block of it into this thread's buffer; with AVX-512, row-major A whose rows spread over L1's sets is read
    /// in place instead (<see cref="InPlaceRows"/>; each worker of a split by columns would pack all of it). An A
    /// micro-panel stays in L1 while the B micro-panels stream past it from L2 (the AVX-512 kernel prefetches them),
    /// and the tiles of C it updates lie along its rows, which the hardware prefetcher follows; going down C's
    /// columns instead touches a new row, often a new page, at every tile.
    /// </summary>
    private static void PackedSlice(ref Job job, int n0, int n1)
    {
        int mr = RowPanel(job.M), nr = NR;
        float* packA = Scratch.A, packB = Scratch.B;
        bool inPlace = !job.TransA && Vector512.IsHardwareAccelerated && RowsSpread(job.Lda);
        for (int jc = n0; jc < n1; jc += NC)
        {
            int nc = Math.Min(NC, n1 - jc);
            int depth = BlockDepth(job.K);
            for (int pc = 0; pc < job.K; pc += depth)
            {
                int kc = Math.Min(depth, job.K - pc);
                bool overwrite = pc == 0 && !job.Accumulate;
                float* blockB = packB;
                if (job.PackedB != null) blockB = job.PackedB + (long)pc * RoundUp(job.N, nr) + (long)jc * kc; // see PackWhole
                else PackB(ref job, pc, kc, jc, nc, nr, packB);
                if (inPlace)
                {
                    InPlaceRows(ref job, jc, nc, pc, kc, blockB, packA, overwrite);
                    continue;
                }
                for (int ic = 0; ic < job.M; ic += MC)
                {
                    int mc = Math.Min(MC, job.M - ic);
                    PackA(ref job, ic, mc, pc, kc, mr, packA);
                    for (int i = 0; i < mc; i += mr)
                        TileRow(ref job, ic + i, Math.Min(mr, mc - i), mr, packA + i * kc, 0, jc, nc, kc, blockB, overwrite);
                }
            }
        }
    }

    /// <summary>
    /// One K block of row-major A read in place against a packed block of op(B): 12-row panels, then 8-row ones for
    /// the rows that 12 do not divide (128 = 10 × 12 + 8: no padded rows, where one panel height would pad 8 % or
    /// drop to 8-row panels, whose kernel streams half as much B again for each multiply-add). A last panel of
    /// fewer than 8 rows is packed (zero-padded). Every element's multiply-adds are the same whatever its panel.
    /// </summary>
    private static void InPlaceRows(ref Job job, int jc, int nc, int pc, int kc, float* packB, float* packA, bool overwrite)
    {
        int m = job.M;
        int twelves = m / 12;
        while (twelves > 0 && (m - 12 * twelves) % 8 != 0) twelves--;
        if ((m - 12 * twelves) % 8 != 0) twelves = m / 12; // M not a multiple of 4: the rest in 8-row panels
        for (int i = 0, panel = 0; i < m; panel++)
        {
            int mr = panel < twelves ? 12 : 8, rows = Math.Min(mr, m - i);
            float* a = job.A + (long)i * job.Lda + pc;
            long lda = job.Lda;
            if (rows < mr)
            {
                PackA(ref job, i, rows, pc, kc, mr, a = packA);
                lda = 0;
            }
            TileRow(ref job, i, rows, mr, a, lda, jc, nc, kc, packB, overwrite);
            i += mr;
        }
    }

    /// <summary>
    /// The tiles of C for one row panel (rows [i, i + rows), an MR-row kernel) across columns [jc, jc + nc): A as for
    /// <see cref="MicroKernel"/>, op(B) the packed block.
    /// </summary>
    private static void TileRow(ref Job job, int i, int rows, int mr, float* a, long lda, int jc, int nc, int kc, float* packB, bool overwrite)
    {
        int nr = NR;
        float* c = job.C + (long)i * job.Ldc + jc;
        for (int j = 0; j < nc; j += nr)
        {
            int cols = Math.Min(nr, nc - j);
            if (rows == mr && cols == nr) MicroKernel(mr, kc, a, lda, packB + j * kc, c + j, job.Ldc, overwrite);
            else EdgeTile(mr, kc, a, lda, packB + j * kc, c + j, job.Ldc, rows, cols, overwrite);
        }
    }

    /// <summary>
    /// Whether A micro-panels can be read straight from rows <paramref name="lda"/> elements apart: at most three
    /// of 12 rows share an L1 set (12 rows 4 KiB apart would all compete for one set's 12 ways).
    /// </summary>
    private static bool RowsSpread(int lda)
    {
        Span<int> sets = stackalloc int[64];
        for (int r = 0; r < 12; r++)
            if (++sets[(int)((long)r * lda / 16 % 64)] > 3) return false;
        return true;
    }

    /// <summary>Packs A[ic..ic+mc, pc..pc+kc] into MR-row panels, k-major, zero-padding the last panel.</summary>
    private static void PackA(ref Job job, int ic, int mc, int pc, int kc, int mr, float* dst)
    {
        int lda = job.Lda;
        for (int i = 0; i < mc; i += mr)
        {
            int rows = Math.Min(mr, mc - i);
            float* panel = dst + i * kc;
            if (job.TransA)
            {
                // A is stored [K, M]: a panel column is contiguous, one or two vector copies when whole.
                for (int p = 0; p < kc; p++)
                {
                    float* src = job.A + (long)(pc + p) * lda + ic + i;
                    float* d = panel + p * mr;
                    int r = 0;
                    if (rows == mr && mr >= 8 && Vector256.IsHardwareAccelerated)
                    {
                        Vector256.Store(Vector256.Load(src), d);
                        if (mr == 12) Vector128.Store(Vector128.Load(src + 8), d + 8);
                        continue;
                    }
                    for (; r < rows; r++) d[r] = src[r];
                    for (; r < mr; r++) d[r] = 0;
                }
            }
            else
            {
                // A is stored [M, K]: rows become panel columns, eight rows at a time through 8×8 transposes (and
                // a 12-row panel's last four through 4×4 ones).
                int r = 0;
                if (Transpose.IsSupported)
                {
                    for (; r + 8 <= rows; r += 8)
                        Transpose.Rows(job.A + (long)(ic + i + r) * lda + pc, lda, kc, panel + r, mr);
                    if (r + 4 <= rows)
                    {
                        Transpose.Rows4(job.A + (long)(ic + i + r) * lda + pc, lda, kc, panel + r, mr);
                        r += 4;
                    }
                }
                for (; r < mr; r++)
                {
                    if (r < rows)
                    {
                        float* src = job.A + (long)(ic + i + r) * lda + pc;
                        for (int p = 0; p < kc; p++) panel[p * mr + r] = src[p];
                    }
                    else
                    {
                        for (int p = 0; p < kc; p++) panel[p * mr + r] = 0;
                    }
                }
            }
        }
    }

    /// <summary>The elements <see cref="PackWhole"/> writes for op(B) of <paramref name="k"/> × <paramref name="n"/>.</summary>
    internal static long PackedSize(int n, int k) => (long)k * RoundUp(n, NR);

    /// <summary>
    /// Packs all of op(B) (K × N) as the packed path packs it per call: K block after K block (<see cref="BlockDepth"/>),
    /// block pc at <c>pc · N↑NR</c>, each block's NR-column panels (k-major, the last zero-padded) one after another,
    /// so columns [jc, …) of block pc start at <c>pc · N↑NR + jc · kc</c> for any jc that is a multiple of NR (the
    /// workers' column slices are multiples of 32). A product given the result computes exactly what it would
    /// computing its own panels.
    /// </summary>
    internal static void PackWhole(bool transB, int n, int k, float* b, int ldb, float* dst)
    {
        var job = new Job(false, transB, 0, n, k, null, 0, b, ldb, null, 0, false);
        int nr = NR, np = RoundUp(n, nr), depth = BlockDepth(k);
        for (int pc = 0; pc < k; pc += depth)
            PackB(ref job, pc, Math.Min(depth, k - pc), 0, n, nr, dst + (long)pc * np);
    }

    /// <summary>Packs B[pc..pc+kc, jc..jc+nc] into NR-column panels, k-major, zero-padding the last panel.</summary>
    private static void PackB(ref Job job, int pc, int kc, int jc, int nc, int nr, float* dst)
    {
        int ldb = job.Ldb;
        for (int j = 0; j < nc; j += nr)
        {
            int cols = Math.Min(nr, nc - j);
            float* panel = dst + j * kc;
            if (job.TransB) PanelFromColumns(job.B + (long)(jc + j) * ldb + pc, ldb, cols, kc, panel, nr);
            else if (cols < nr) PanelFromRows(job.B + (long)pc * ldb + jc + j, ldb, cols, kc, panel, nr); // the last panel
            else
                for (int p = 0; p < kc; p++)
                {
                    float* src = job.B + (long)(pc + p) * ldb + jc + j;
                    float* d = panel + p * nr;
                    if (nr == 32)
                    {
                        Vector512.Store(Vector512.Load(src), d);
                        Vector512.Store(Vector512.Load(src + 16), d + 16);
                    }
                    else
                    {
                        Vector256.Store(Vector256.Load(src), d);
                        Vector256.Store(Vector256.Load(src + 8), d + 8);
                    }
                }
        }
    }

    /// <summary>
    /// Copies <paramref name="depth"/> rows (<paramref name="ld"/> apart) of <paramref name="cols"/> elements into a
    /// panel of rows <paramref name="width"/> wide, zeroing the columns past <paramref name="cols"/>.
    /// </summary>
    private static void PanelFromRows(float* src, int ld, int cols, int depth, float* panel, int width)
    {
        for (int p = 0; p < depth; p++)
        {
            float* d = panel + (long)p * width;
            new ReadOnlySpan<float>(src + (long)p * ld, cols).CopyTo(new Span<float>(d, cols));
            new Span<float>(d + cols, width - cols).Clear();
        }
    }

    /// <summary>
    /// Writes <paramref name="cols"/> rows of B stored [N, K] (<paramref name="ld"/> apart, <paramref name="depth"/>
    /// elements used) as the columns of a panel of rows <paramref name="width"/> wide, eight at a time through 8×8
    /// transposes, zeroing the columns past <paramref name="cols"/>.
    /// </summary>
    private static void PanelFromColumns(float* src, int ld, int cols, int depth, float* panel, int width)
    {
        int c = 0;
        if (Transpose.IsSupported)
        {
            // Depth in blocks of 32 across all the columns: a wide panel (a narrow product's transposed operand,
            // 1 KiB rows) then gets both halves of each line while they are in L1, and the source rows are read
            // whole lines at a time.
            int whole = cols / 8 * 8;
            for (int p0 = 0; p0 < depth; p0 += 32)
                for (c = 0; c < whole; c += 8)
                    Transpose.Rows(src + (long)c * ld + p0, ld, Math.Min(32, depth - p0), panel + (long)p0 * width + c, width);
            c = whole;
        }
        for (; c < cols; c++)
        {
            float* row = src + (long)c * ld;
            for (int p = 0; p < depth; p++) panel[(long)p * width + c] = row[p];
        }
        if (cols < width)
            for (int p = 0; p < depth; p++) new Span<float>(panel + (long)p * width + cols, width - cols).Clear();
    }

    /// <summary>
    /// A tile of C with fewer than MR rows or NR columns, computed whole into a buffer and copied; A as for
    /// <see cref="MicroKernel"/>.
    /// </summary>
    private static void EdgeTile(int mr, int kc, float* a, long lda, float* b, float* c, int ldc, int rows, int cols, bool overwrite)
    {
        int nr = NR;
        float* tile = stackalloc float[12 * 32];
        // A last panel of at most 16 columns (a 512-bit kernel's half) costs half a full one.
        if (Vector512.IsHardwareAccelerated && cols <= 16) PanelKernel<One>(mr, kc, a, lda, b, tile, nr, overwrite: true);
        else MicroKernel(mr, kc, a, lda, b, tile, nr, overwrite: true);
        CopyTile(tile, nr, c, ldc, 1, rows, cols, accumulate: !overwrite);
    }

    /// <summary>
    /// Writes (or adds) the first <paramref name="rows"/> × <paramref name="cols"/> of a result tile (rows
    /// <paramref name="tileStride"/> apart) into C, whose element (i, j) is at <c>c[i·cRow + j·cCol]</c>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void CopyTile(float* tile, int tileStride, float* c, long cRow, long cCol, int rows, int cols, bool accumulate)
    {
        for (int r = 0; r < rows; r++)
        {
            float* src = tile + r * tileStride, dst = c + r * cRow;
            int j = 0;
            if (cCol == 1 && Vector512.IsHardwareAccelerated)
                for (; j + 16 <= cols; j += 16)
                {
                    var v = Vector512.Load(src + j);
                    if (accumulate) v += Vector512.Load(dst + j);
                    Vector512.Store(v, dst + j);
                }
            if (accumulate) for (; j < cols; j++) dst[j * cCol] += src[j];
            else for (; j < cols; j++) dst[j * cCol] = src[j];
        }
    }

    /// <summary>
    /// A whole MR × NR tile of C. A is a packed micro-panel (<paramref name="lda"/> 0), or, with AVX-512 only, MR
    /// rows of row-major A <paramref name="lda"/> elements apart, read where they are.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void MicroKernel(int mr, int kc, float* a, long lda, float* b, float* c, int ldc, bool overwrite)
    {
        if (!Vector512.IsHardwareAccelerated) Kernel6x16(kc, a, b, c, ldc, overwrite);
        else PanelKernel<Two>(mr, kc, a, lda, b, c, ldc, overwrite);
    }

    /// <summary>The AVX-512 kernel for MR rows and a width of 32 (<see cref="Two"/>) or 16 columns, A as for <see cref="MicroKernel"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PanelKernel<TWidth>(int mr, int kc, float* a, long lda, float* b, float* c, int ldc, bool overwrite)
        where TWidth : struct
    {
        if (lda != 0)
        {
            if (mr == 8) RowsKernel<Eight, TWidth>(kc, a, lda, b, c, ldc, overwrite);
            else RowsKernel<Twelve, TWidth>(kc, a, lda, b, c, ldc, overwrite);
        }
        else if (mr == 8) PanelKernel<Eight, TWidth>(kc, a, b, c, ldc, overwrite);
        else PanelKernel<Twelve, TWidth>(kc, a, b, c, ldc, overwrite);
    }

    private struct Eight;

    private struct Twelve;

    /// <summary>
    /// C[12 or 8 rows × 32 or 16 columns] (+)= A-panel · B-panel (B panels are 32 wide): up to 24 zmm accumulators,
    /// 2 loads and 12 broadcasts per 24 FMAs. The shape is a type argument, so each instantiation is compiled
    /// with only its own accumulators.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PanelKernel<TRows, TWidth>(int kc, float* a, float* b, float* c, int ldc, bool overwrite)
        where TRows : struct
        where TWidth : struct
    {
        bool twelve = typeof(TRows) == typeof(Twelve), two = typeof(TWidth) == typeof(Two);
        int mr = twelve ? 12 : 8;
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default,
            c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default,
            c60 = default, c61 = default, c70 = default, c71 = default, c80 = default, c81 = default,
            c90 = default, c91 = default, ca0 = default, ca1 = default, cb0 = default, cb1 = default;
        for (int p = 0; p < kc; p++)
        {
            // The B micro-panel streams from L2 (the A one stays in L1): fetch 8 steps ahead, past the panel's end
            // into the next one (prefetches never fault).
            Sse.Prefetch0(b + 256);
            Sse.Prefetch0(b + 272);
            var b0 = Vector512.Load(b);
            var b1 = two ? Vector512.Load(b + 16) : default;
            Vector512<float> x;
            x = Vector512.Create(a[0]); c00 = Vector512.FusedMultiplyAdd(x, b0, c00); if (two) c01 = Vector512.FusedMultiplyAdd(x, b1, c01);
            x = Vector512.Create(a[1]); c10 = Vector512.FusedMultiplyAdd(x, b0, c10); if (two) c11 = Vector512.FusedMultiplyAdd(x, b1, c11);
            x = Vector512.Create(a[2]); c20 = Vector512.FusedMultiplyAdd(x, b0, c20); if (two) c21 = Vector512.FusedMultiplyAdd(x, b1, c21);
            x = Vector512.Create(a[3]); c30 = Vector512.FusedMultiplyAdd(x, b0, c30); if (two) c31 = Vector512.FusedMultiplyAdd(x, b1, c31);
            x = Vector512.Create(a[4]); c40 = Vector512.FusedMultiplyAdd(x, b0, c40); if (two) c41 = Vector512.FusedMultiplyAdd(x, b1, c41);
            x = Vector512.Create(a[5]); c50 = Vector512.FusedMultiplyAdd(x, b0, c50); if (two) c51 = Vector512.FusedMultiplyAdd(x, b1, c51);
            x = Vector512.Create(a[6]); c60 = Vector512.FusedMultiplyAdd(x, b0, c60); if (two) c61 = Vector512.FusedMultiplyAdd(x, b1, c61);
            x = Vector512.Create(a[7]); c70 = Vector512.FusedMultiplyAdd(x, b0, c70); if (two) c71 = Vector512.FusedMultiplyAdd(x, b1, c71);
            if (twelve)
            {
                x = Vector512.Create(a[8]); c80 = Vector512.FusedMultiplyAdd(x, b0, c80); if (two) c81 = Vector512.FusedMultiplyAdd(x, b1, c81);
                x = Vector512.Create(a[9]); c90 = Vector512.FusedMultiplyAdd(x, b0, c90); if (two) c91 = Vector512.FusedMultiplyAdd(x, b1, c91);
                x = Vector512.Create(a[10]); ca0 = Vector512.FusedMultiplyAdd(x, b0, ca0); if (two) ca1 = Vector512.FusedMultiplyAdd(x, b1, ca1);
                x = Vector512.Create(a[11]); cb0 = Vector512.FusedMultiplyAdd(x, b0, cb0); if (two) cb1 = Vector512.FusedMultiplyAdd(x, b1, cb1);
            }
            a += mr;
            b += 32;
        }
        Store(c, c00, c01, two, overwrite); Store(c + ldc, c10, c11, two, overwrite); Store(c + 2 * ldc, c20, c21, two, overwrite);
        Store(c + 3 * ldc, c30, c31, two, overwrite); Store(c + 4 * ldc, c40, c41, two, overwrite); Store(c + 5 * ldc, c50, c51, two, overwrite);
        Store(c + 6 * ldc, c60, c61, two, overwrite); Store(c + 7 * ldc, c70, c71, two, overwrite);
        if (twelve)
        {
            Store(c + 8 * ldc, c80, c81, two, overwrite); Store(c + 9 * ldc, c90, c91, two, overwrite);
            Store(c + 10 * ldc, ca0, ca1, two, overwrite); Store(c + 11 * ldc, cb0, cb1, two, overwrite);
        }
    }

    /// <summary>
    /// <see cref="PanelKernel{TRows, TWidth}"/> with A's elements read straight from MR rows of row-major A,
    /// <paramref name="lda"/> elements apart: the same multiply-adds in the same order, without packing A. Each row
    /// has its own pointer (an indexed address would not fold into the broadcast, which would then take a shuffle
    /// beside the FMAs); with 12 rows the JIT keeps one pointer and the loop's end on the stack.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RowsKernel<TRows, TWidth>(int kc, float* a, long lda, float* b, float* c, int ldc, bool overwrite)
        where TRows : struct
        where TWidth : struct
    {
        bool twelve = typeof(TRows) == typeof(Twelve), two = typeof(TWidth) == typeof(Two);
        float* r1 = a + lda, r2 = r1 + lda, r3 = r2 + lda, r4 = r3 + lda, r5 = r4 + lda, r6 = r5 + lda, r7 = r6 + lda;
        float* r8 = twelve ? r7 + lda : null, r9 = twelve ? r8 + lda : null, r10 = twelve ? r9 + lda : null, r11 = twelve ? r10 + lda : null;
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default,
            c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default,
            c60 = default, c61 = default, c70 = default, c71 = default, c80 = default, c81 = default,
            c90 = default, c91 = default, ca0 = default, ca1 = default, cb0 = default, cb1 = default;
        // The loop runs on A's first row pointer (no counter: every register is taken).
        for (float* end = a + kc; a < end;)
        {
            Sse.Prefetch0(b + 256);
            Sse.Prefetch0(b + 272);
            var b0 = Vector512.Load(b);
            var b1 = two ? Vector512.Load(b + 16) : default;
            Vector512<float> x;
            x = Vector512.Create(*a); c00 = Vector512.FusedMultiplyAdd(x, b0, c00); if (two) c01 = Vector512.FusedMultiplyAdd(x, b1, c01);
            x = Vector512.Create(*r1); c10 = Vector512.FusedMultiplyAdd(x, b0, c10); if (two) c11 = Vector512.FusedMultiplyAdd(x, b1, c11);
            x = Vector512.Create(*r2); c20 = Vector512.FusedMultiplyAdd(x, b0, c20); if (two) c21 = Vector512.FusedMultiplyAdd(x, b1, c21);
            x = Vector512.Create(*r3); c30 = Vector512.FusedMultiplyAdd(x, b0, c30); if (two) c31 = Vector512.FusedMultiplyAdd(x, b1, c31);
            x = Vector512.Create(*r4); c40 = Vector512.FusedMultiplyAdd(x, b0, c40); if (two) c41 = Vector512.FusedMultiplyAdd(x, b1, c41);
            x = Vector512.Create(*r5); c50 = Vector512.FusedMultiplyAdd(x, b0, c50); if (two) c51 = Vector512.FusedMultiplyAdd(x, b1, c51);
            x = Vector512.Create(*r6); c60 = Vector512.FusedMultiplyAdd(x, b0, c60); if (two) c61 = Vector512.FusedMultiplyAdd(x, b1, c61);
            x = Vector512.Create(*r7); c70 = Vector512.FusedMultiplyAdd(x, b0, c70); if (two) c71 = Vector512.FusedMultiplyAdd(x, b1, c71);
            a++; r1++; r2++; r3++; r4++; r5++; r6++; r7++;
            if (twelve)
            {
                x = Vector512.Create(*r8); c80 = Vector512.FusedMultiplyAdd(x, b0, c80); if (two) c81 = Vector512.FusedMultiplyAdd(x, b1, c81);
                x = Vector512.Create(*r9); c90 = Vector512.FusedMultiplyAdd(x, b0, c90); if (two) c91 = Vector512.FusedMultiplyAdd(x, b1, c91);
                x = Vector512.Create(*r10); ca0 = Vector512.FusedMultiplyAdd(x, b0, ca0); if (two) ca1 = Vector512.FusedMultiplyAdd(x, b1, ca1);
                x = Vector512.Create(*r11); cb0 = Vector512.FusedMultiplyAdd(x, b0, cb0); if (two) cb1 = Vector512.FusedMultiplyAdd(x, b1, cb1);
                r8++; r9++; r10++; r11++;
            }
            b += 32;
        }
        Store(c, c00, c01, two, overwrite); Store(c + ldc, c10, c11, two, overwrite); Store(c + 2 * ldc, c20, c21, two, overwrite);
        Store(c + 3 * ldc, c30, c31, two, overwrite); Store(c + 4 * ldc, c40, c41, two, overwrite); Store(c + 5 * ldc, c50, c51, two, overwrite);
        Store(c + 6 * ldc, c60, c61, two, overwrite); Store(c + 7 * ldc, c70, c71, two, overwrite);
        if (twelve)
        {
            Store(c + 8 * ldc, c80, c81, two, overwrite); Store(c + 9 * ldc, c90, c91, two, overwrite);
            Store(c + 10 * ldc, ca0, ca1, two, overwrite); Store(c + 11 * ldc, cb0, cb1, two, overwrite);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(float* c, Vector512<float> v0, Vector512<float> v1, bool two, bool overwrite)
    {
        if (!overwrite) v0 += Vector512.Load(c);
        Vector512.Store(v0, c);
        if (two)
        {
            if (!overwrite) v1 += Vector512.Load(c + 16);
            Vector512.Store(v1, c + 16);
        }
    }

    /// <summary>C[6×16] (+)= A-panel · B-panel with AVX2: 12 ymm accumulators.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel6x16(int kc, float* a, float* b, float* c, int ldc, bool overwrite)
    {
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default,
            c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        for (int p = 0; p < kc; p++)
        {
            var b0 = Vector256.Load(b);
            var b1 = Vector256.Load(b + 8);
            Vector256<float> x;
            x = Vector256.Create(a[0]); c00 = Vector256.FusedMultiplyAdd(x, b0, c00); c01 = Vector256.FusedMultiplyAdd(x, b1, c01);
            x = Vector256.Create(a[1]); c10 = Vector256.FusedMultiplyAdd(x, b0, c10); c11 = Vector256.FusedMultiplyAdd(x, b1, c11);
            x = Vector256.Create(a[2]); c20 = Vector256.FusedMultiplyAdd(x, b0, c20); c21 = Vector256.FusedMultiplyAdd(x, b1, c21);
            x = Vector256.Create(a[3]); c30 = Vector256.FusedMultiplyAdd(x, b0, c30); c31 = Vector256.FusedMultiplyAdd(x, b1, c31);
            x = Vector256.Create(a[4]); c40 = Vector256.FusedMultiplyAdd(x, b0, c40); c41 = Vector256.FusedMultiplyAdd(x, b1, c41);
            x = Vector256.Create(a[5]); c50 = Vector256.FusedMultiplyAdd(x, b0, c50); c51 = Vector256.FusedMultiplyAdd(x, b1, c51);
            a += 6;
            b += 16;
        }
        Store(c, c00, c01, overwrite); Store(c + ldc, c10, c11, overwrite); Store(c + 2 * ldc, c20, c21, overwrite);
        Store(c + 3 * ldc, c30, c31, overwrite); Store(c + 4 * ldc, c40, c41, overwrite); Store(c + 5 * ldc, c50, c51, overwrite);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(float* c, Vector256<float> v0, Vector256<float> v1, bool overwrite)
    {
        if (!overwrite)
        {
            v0 += Vector256.Load(c);
            v1 += Vector256.Load(c + 8);
        }
        Vector256.Store(v0, c);
        Vector256.Store(v1, c + 8);
    }

    // ---- direct path (small products, AVX-512) --------------------------------------------------------------

    /// <summary>
    /// A small product on the calling thread without packing A: op(B) is used in place when it is row-major with
    /// whole vectors of columns, otherwise copied once into a zero-padded [K, N↑16] panel; A's elements are
    /// broadcast straight from their rows or columns, four rows of C at a time. Packing both operands into
    /// 12×32 micro-panels costs more than it saves at these sizes (a small layer's weight gradient, a batch-32
    /// step), and panels of 32 columns waste most of their work when N is 4 or 8.
    /// </summary>
    private static void Direct(ref Job job, bool parallel)
    {
        if (job.N < 16 && job.M > job.N)
        {
            // Narrow C: compute Cᵀ = op(B)ᵀ·op(A)ᵀ, whose rows are long, and write it back transposed.
            var swapped = new Job(!job.TransB, !job.TransA, job.N, job.M, job.K, job.B, job.Ldb, job.A, job.Lda, job.C, job.Ldc, job.Accumulate);
            DirectOriented(ref swapped, transposeC: true, parallel);
        }
        else DirectOriented(ref job, transposeC: false, parallel);
    }

    private static void DirectOriented(ref Job job, bool transposeC, bool parallel)
    {
        int m = job.M, n = job.N, k = job.K, np = RoundUp(n, 16);
        float* b;
        int ldb;
        if (!job.TransB && n == np)
        {
            b = job.B;
            ldb = job.Ldb;
        }
        else
        {
            b = Scratch.B;
            ldb = np;
            if (!job.TransB) PanelFromRows(job.B, job.Ldb, n, k, b, np);
            else PanelFromColumns(job.B, job.Ldb, n, k, b, np);
        }
        var tiles = new DirectJob(job, b, ldb, np, transposeC);
        if (parallel) CpuWorkers.Run(ref tiles, &DirectColumns, np, align: 32);
        else DirectColumns(ref tiles, 0, np);
    }

    /// <summary>A direct product with its op(B) panel in place: slices of the panel's columns go to the workers.</summary>
    private readonly struct DirectJob(Job job, float* b, int ldb, int np, bool transposeC)
    {
        public readonly Job Job = job;
        public readonly float* B = b;
        public readonly int Ldb = ldb, Np = np;
        public readonly bool TransposeC = transposeC;
    }

    /// <summary>
    /// Columns [j0, j1) of C, a strip of 32 at a time down all the rows: the strip of op(B) (K × 32) stays in L1
    /// while 4-row blocks of A stream past it.
    /// </summary>
    private static void DirectColumns(ref DirectJob d, int j0, int j1)
    {
        ref readonly Job job = ref d.Job;
        int m = job.M, n = job.N, k = job.K;
        // A(i, p) = a[i·rowStep + p·depthStep]; C(i, j) = c[i·cRow + j·cCol].
        long rowStep = job.TransA ? 1 : job.Lda, depthStep = job.TransA ? job.Lda : 1;
        long cRow = d.TransposeC ? 1 : job.Ldc, cCol = d.TransposeC ? job.Ldc : 1;
        for (int j = j0; j < j1; j += 32)
        {
            bool two = j + 32 <= j1;
            int cols = Math.Min(two ? 32 : 16, n - j);
            // K in the packed path's blocks, each block's sum added to C: every element then gets exactly the
            // packed path's arithmetic, so which path a product takes (it depends on N, and callers may split N
            // by thread) never changes a result.
            int depth = BlockDepth(k);
            for (int pc = 0; pc < k; pc += depth)
            {
                int kc = Math.Min(depth, k - pc);
                bool accumulate = job.Accumulate || pc > 0;
                float* b = d.B + (long)pc * d.Ldb + j;
                for (int i = 0; i < m; i += 4)
                {
                    int rows = Math.Min(4, m - i);
                    float* a = job.A + i * rowStep + pc * depthStep, c = job.C + i * cRow + j * cCol;
                    if (two) DirectTile<Two>(kc, a, rowStep, depthStep, b, d.Ldb, c, cRow, cCol, rows, cols, accumulate);
                    else DirectTile<One>(kc, a, rowStep, depthStep, b, d.Ldb, c, cRow, cCol, rows, cols, accumulate);
                }
            }
        }
    }

    private struct One;

    private struct Two;

    /// <summary>
    /// C[rows × cols] (+)= A[rows × K]·B[K × 16 or 32] for up to 4 rows: 4 or 8 zmm accumulators. Missing rows
    /// repeat the last one (their results are not stored); columns past <paramref name="cols"/> are zero in B.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization), SkipLocalsInit]
    private static void DirectTile<TWidth>(int k, float* a, long rowStep, long depthStep, float* b, int ldb, float* c, long cRow, long cCol, int rows, int cols, bool accumulate)
        where TWidth : struct
    {
        bool two = typeof(TWidth) == typeof(Two);
        // Results leave through a stack tile, allocated up front: a call (or the allocation's zeroing) while the
        // accumulators are live makes the JIT spill them inside the loop.
        float* tile = stackalloc float[4 * 32];
        float* a0 = a, a1 = rows > 1 ? a + rowStep : a0, a2 = rows > 2 ? a + 2 * rowStep : a1, a3 = rows > 3 ? a + 3 * rowStep : a2;
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default, c30 = default, c31 = default;
        for (int p = 0; p < k; p++)
        {
            var b0 = Vector512.Load(b);
            var b1 = two ? Vector512.Load(b + 16) : default;
            b += ldb;
            var x = Vector512.Create(*a0);
            c00 = Vector512.FusedMultiplyAdd(x, b0, c00);
            if (two) c01 = Vector512.FusedMultiplyAdd(x, b1, c01);
            x = Vector512.Create(*a1);
            c10 = Vector512.FusedMultiplyAdd(x, b0, c10);
            if (two) c11 = Vector512.FusedMultiplyAdd(x, b1, c11);
            x = Vector512.Create(*a2);
            c20 = Vector512.FusedMultiplyAdd(x, b0, c20);
            if (two) c21 = Vector512.FusedMultiplyAdd(x, b1, c21);
            x = Vector512.Create(*a3);
            c30 = Vector512.FusedMultiplyAdd(x, b0, c30);
            if (two) c31 = Vector512.FusedMultiplyAdd(x, b1, c31);
            a0 += depthStep; a1 += depthStep; a2 += depthStep; a3 += depthStep;
        }
        if (rows == 4 && cCol == 1 && cols == (two ? 32 : 16))
        {
            // A whole tile of row-major C: straight from the registers (the same additions as through the tile).
            Store(c, c00, c01, two, overwrite: !accumulate); Store(c + cRow, c10, c11, two, overwrite: !accumulate);
            Store(c + 2 * cRow, c20, c21, two, overwrite: !accumulate); Store(c + 3 * cRow, c30, c31, two, overwrite: !accumulate);
            return;
        }
        Vector512.Store(c00, tile); Vector512.Store(c10, tile + 32); Vector512.Store(c20, tile + 64); Vector512.Store(c30, tile + 96);
        if (two)
        {
            Vector512.Store(c01, tile + 16); Vector512.Store(c11, tile + 48); Vector512.Store(c21, tile + 80); Vector512.Store(c31, tile + 112);
        }
        CopyTile(tile, 32, c, cRow, cCol, rows, cols, accumulate);
    }

    // ---- dot-product path (A·Bᵀ) ----------------------------------------------------------------------------

    /// <summary>
    /// C[i, j] (+)= A[i, :]·B[j, :] for columns [n0, n1): both operands are contiguous along K, so each output
    /// is a dot product; tiles of 4 rows × 4 columns share their loads.
    /// </summary>
    private static void DotSlice(ref Job job, int n0, int n1)
    {
        int m = job.M, k = job.K, lda = job.Lda, ldb = job.Ldb, ldc = job.Ldc;
        int i = 0;
        for (; i + 4 <= m; i += 4)
        {
            int j = n0;
            for (; j + 4 <= n1; j += 4) Dot4x4(k, job.A + (long)i * lda, lda, job.B + (long)j * ldb, ldb, job.C + (long)i * ldc + j, ldc, job.Accumulate);
            for (; j < n1; j++)
                for (int r = 0; r < 4; r++) Set(job.C + (long)(i + r) * ldc + j, Dot(k, job.A + (long)(i + r) * lda, job.B + (long)j * ldb), job.Accumulate);
        }
        for (; i < m; i++)
        {
            float* ai = job.A + (long)i * lda;
            int j = n0;
            // Eight outputs per call at any depth (a control policy's first layer has K = 8): one reduction tree
            // for eight sums, the same arithmetic per output as four at a time.
            for (; j + 8 <= n1; j += 8) DotRow<Eight>(k, ai, job.B + (long)j * ldb, ldb, job.C + (long)i * ldc + j, job.Accumulate);
            for (; j + 4 <= n1; j += 4) DotRow<Four>(k, ai, job.B + (long)j * ldb, ldb, job.C + (long)i * ldc + j, job.Accumulate);
            for (; j < n1; j++) Set(job.C + (long)i * ldc + j, Dot(k, ai, job.B + (long)j * ldb), job.Accumulate);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Set(float* c, float value, bool accumulate) => *c = accumulate ? *c + value : value;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Dot4x4(int k, float* a, int lda, float* b, int ldb, float* c, int ldc, bool accumulate)
    {
        float* a0 = a, a1 = a + lda, a2 = a + 2 * lda, a3 = a + 3 * lda;
        float* b0 = b, b1 = b + ldb, b2 = b + 2 * ldb, b3 = b + 3 * ldb;
        int p = 0;
        var s = stackalloc float[16];
        if (Vector512.IsHardwareAccelerated && k >= 16)
        {
            Vector512<float> s00 = default, s01 = default, s02 = default, s03 = default, s10 = default, s11 = default, s12 = default, s13 = default,
                s20 = default, s21 = default, s22 = default, s23 = default, s30 = default, s31 = default, s32 = default, s33 = default;
            for (; p + 16 <= k; p += 16)
            {
                var x0 = Vector512.Load(a0 + p); var x1 = Vector512.Load(a1 + p); var x2 = Vector512.Load(a2 + p); var x3 = Vector512.Load(a3 + p);
                var y = Vector512.Load(b0 + p);
                s00 = Vector512.FusedMultiplyAdd(x0, y, s00); s10 = Vector512.FusedMultiplyAdd(x1, y, s10); s20 = Vector512.FusedMultiplyAdd(x2, y, s20); s30 = Vector512.FusedMultiplyAdd(x3, y, s30);
                y = Vector512.Load(b1 + p);
                s01 = Vector512.FusedMultiplyAdd(x0, y, s01); s11 = Vector512.FusedMultiplyAdd(x1, y, s11); s21 = Vector512.FusedMultiplyAdd(x2, y, s21); s31 = Vector512.FusedMultiplyAdd(x3, y, s31);
                y = Vector512.Load(b2 + p);
                s02 = Vector512.FusedMultiplyAdd(x0, y, s02); s12 = Vector512.FusedMultiplyAdd(x1, y, s12); s22 = Vector512.FusedMultiplyAdd(x2, y, s22); s32 = Vector512.FusedMultiplyAdd(x3, y, s32);
                y = Vector512.Load(b3 + p);
                s03 = Vector512.FusedMultiplyAdd(x0, y, s03); s13 = Vector512.FusedMultiplyAdd(x1, y, s13); s23 = Vector512.FusedMultiplyAdd(x2, y, s23); s33 = Vector512.FusedMultiplyAdd(x3, y, s33);
            }
            s[0] = Vector512.Sum(s00); s[1] = Vector512.Sum(s01); s[2] = Vector512.Sum(s02); s[3] = Vector512.Sum(s03);
            s[4] = Vector512.Sum(s10); s[5] = Vector512.Sum(s11); s[6] = Vector512.Sum(s12); s[7] = Vector512.Sum(s13);
            s[8] = Vector512.Sum(s20); s[9] = Vector512.Sum(s21); s[10] = Vector512.Sum(s22); s[11] = Vector512.Sum(s23);
            s[12] = Vector512.Sum(s30); s[13] = Vector512.Sum(s31); s[14] = Vector512.Sum(s32); s[15] = Vector512.Sum(s33);
        }
        else
        {
            for (int q = 0; q < 16; q++) s[q] = 0;
        }
        if (Vector256.IsHardwareAccelerated && p + 8 <= k)
        {
            Vector256<float> t00 = default, t01 = default, t02 = default, t03 = default, t10 = default, t11 = default, t12 = default, t13 = default,
                t20 = default, t21 = default, t22 = default, t23 = default, t30 = default, t31 = default, t32 = default, t33 = default;
            for (; p + 8 <= k; p += 8)
            {
                var x0 = Vector256.Load(a0 + p); var x1 = Vector256.Load(a1 + p); var x2 = Vector256.Load(a2 + p); var x3 = Vector256.Load(a3 + p);
                var y = Vector256.Load(b0 + p);
                t00 = Vector256.FusedMultiplyAdd(x0, y, t00); t10 = Vector256.FusedMultiplyAdd(x1, y, t10); t20 = Vector256.FusedMultiplyAdd(x2, y, t20); t30 = Vector256.FusedMultiplyAdd(x3, y, t30);
                y = Vector256.Load(b1 + p);
                t01 = Vector256.FusedMultiplyAdd(x0, y, t01); t11 = Vector256.FusedMultiplyAdd(x1, y, t11); t21 = Vector256.FusedMultiplyAdd(x2, y, t21); t31 = Vector256.FusedMultiplyAdd(x3, y, t31);
                y = Vector256.Load(b2 + p);
                t02 = Vector256.FusedMultiplyAdd(x0, y, t02); t12 = Vector256.FusedMultiplyAdd(x1, y, t12); t22 = Vector256.FusedMultiplyAdd(x2, y, t22); t32 = Vector256.FusedMultiplyAdd(x3, y, t32);
                y = Vector256.Load(b3 + p);
                t03 = Vector256.FusedMultiplyAdd(x0, y, t03); t13 = Vector256.FusedMultiplyAdd(x1, y, t13); t23 = Vector256.FusedMultiplyAdd(x2, y, t23); t33 = Vector256.FusedMultiplyAdd(x3, y, t33);
            }
            s[0] += Vector256.Sum(t00); s[1] += Vector256.Sum(t01); s[2] += Vector256.Sum(t02); s[3] += Vector256.Sum(t03);
            s[4] += Vector256.Sum(t10); s[5] += Vector256.Sum(t11); s[6] += Vector256.Sum(t12); s[7] += Vector256.Sum(t13);
            s[8] += Vector256.Sum(t20); s[9] += Vector256.Sum(t21); s[10] += Vector256.Sum(t22); s[11] += Vector256.Sum(t23);
            s[12] += Vector256.Sum(t30); s[13] += Vector256.Sum(t31); s[14] += Vector256.Sum(t32); s[15] += Vector256.Sum(t33);
        }
        for (; p < k; p++)
        {
            float x0 = a0[p], x1 = a1[p], x2 = a2[p], x3 = a3[p];
            float y0 = b0[p], y1 = b1[p], y2 = b2[p], y3 = b3[p];
            s[0] += x0 * y0; s[1] += x0 * y1; s[2] += x0 * y2; s[3] += x0 * y3;
            s[4] += x1 * y0; s[5] += x1 * y1; s[6] += x1 * y2; s[7] += x1 * y3;
            s[8] += x2 * y0; s[9] += x2 * y1; s[10] += x2 * y2; s[11] += x2 * y3;
            s[12] += x3 * y0; s[13] += x3 * y1; s[14] += x3 * y2; s[15] += x3 * y3;
        }
        for (int r = 0; r < 4; r++)
            for (int j = 0; j < 4; j++) Set(c + (long)r * ldc + j, s[r * 4 + j], accumulate);
    }

    /// <summary>
    /// One row of A against four or eight rows of B (a batch-1 Linear layer): eight independent FMA chains hide
    /// the FMA latency that four would expose, and the row of A is loaded once per four or eight outputs. The
    /// eight accumulators are reduced together, folded to 256 bits and then through a horizontal-add tree that
    /// leaves the eight sums in one vector (17 operations instead of eight separate reductions of about eight
    /// each, which dominated a layer with K = 64). Each row's lanes are added in the same order whether four or
    /// eight rows are computed.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization), SkipLocalsInit]
    private static void DotRow<TRows>(int k, float* a, float* b, int ldb, float* c, bool accumulate) where TRows : struct
    {
        bool eight = typeof(TRows) == typeof(Eight);
        int rows = eight ? 8 : 4;
        float* b0 = b, b1 = b + ldb, b2 = b + 2 * ldb, b3 = b + 3 * ldb;
        float* b4 = eight ? b + 4 * ldb : b0, b5 = eight ? b + 5 * ldb : b0, b6 = eight ? b + 6 * ldb : b0, b7 = eight ? b + 7 * ldb : b0;
        float* s = stackalloc float[8];
        int p = 0;
        if (Avx.IsSupported && Fma.IsSupported)
        {
            Vector256<float> u0 = default, u1 = default, u2 = default, u3 = default, u4 = default, u5 = default, u6 = default, u7 = default;
            if (Vector512.IsHardwareAccelerated && k >= 16)
            {
                Vector512<float> v0 = default, v1 = default, v2 = default, v3 = default, v4 = default, v5 = default, v6 = default, v7 = default;
                for (; p + 16 <= k; p += 16)
                {
                    var x = Vector512.Load(a + p);
                    v0 = Vector512.FusedMultiplyAdd(x, Vector512.Load(b0 + p), v0);
                    v1 = Vector512.FusedMultiplyAdd(x, Vector512.Load(b1 + p), v1);
                    v2 = Vector512.FusedMultiplyAdd(x, Vector512.Load(b2 + p), v2);
                    v3 = Vector512.FusedMultiplyAdd(x, Vector512.Load(b3 + p), v3);
                    if (eight)
                    {
                        v4 = Vector512.FusedMultiplyAdd(x, Vector512.Load(b4 + p), v4);
                        v5 = Vector512.FusedMultiplyAdd(x, Vector512.Load(b5 + p), v5);
                        v6 = Vector512.FusedMultiplyAdd(x, Vector512.Load(b6 + p), v6);
                        v7 = Vector512.FusedMultiplyAdd(x, Vector512.Load(b7 + p), v7);
                    }
                }
                u0 = v0.GetLower() + v0.GetUpper(); u1 = v1.GetLower() + v1.GetUpper();
                u2 = v2.GetLower() + v2.GetUpper(); u3 = v3.GetLower() + v3.GetUpper();
                if (eight)
                {
                    u4 = v4.GetLower() + v4.GetUpper(); u5 = v5.GetLower() + v5.GetUpper();
                    u6 = v6.GetLower() + v6.GetUpper(); u7 = v7.GetLower() + v7.GetUpper();
                }
            }
            for (; p + 8 <= k; p += 8)
            {
                var x = Vector256.Load(a + p);
                u0 = Vector256.FusedMultiplyAdd(x, Vector256.Load(b0 + p), u0);
                u1 = Vector256.FusedMultiplyAdd(x, Vector256.Load(b1 + p), u1);
                u2 = Vector256.FusedMultiplyAdd(x, Vector256.Load(b2 + p), u2);
                u3 = Vector256.FusedMultiplyAdd(x, Vector256.Load(b3 + p), u3);
                if (eight)
                {
                    u4 = Vector256.FusedMultiplyAdd(x, Vector256.Load(b4 + p), u4);
                    u5 = Vector256.FusedMultiplyAdd(x, Vector256.Load(b5 + p), u5);
                    u6 = Vector256.FusedMultiplyAdd(x, Vector256.Load(b6 + p), u6);
                    u7 = Vector256.FusedMultiplyAdd(x, Vector256.Load(b7 + p), u7);
                }
            }
            // hadd(a, b) per 128-bit half: [a0+a1, a2+a3, b0+b1, b2+b3]. Two levels give, per half, one partial
            // sum of each of four rows; adding the halves finishes them.
            var h0123 = Avx.HorizontalAdd(Avx.HorizontalAdd(u0, u1), Avx.HorizontalAdd(u2, u3));
            var h4567 = eight ? Avx.HorizontalAdd(Avx.HorizontalAdd(u4, u5), Avx.HorizontalAdd(u6, u7)) : default;
            var sums = Avx.Permute2x128(h0123, h4567, 0x20) + Avx.Permute2x128(h0123, h4567, 0x31);
            Vector256.Store(sums, s);
        }
        else
        {
            // Without AVX and FMA (other architectures, or intrinsics switched off) the scalar loop does it all.
            for (int r = 0; r < 8; r++) s[r] = 0;
        }
        for (; p < k; p++)
        {
            float x = a[p];
            s[0] += x * b0[p]; s[1] += x * b1[p]; s[2] += x * b2[p]; s[3] += x * b3[p];
            if (eight) { s[4] += x * b4[p]; s[5] += x * b5[p]; s[6] += x * b6[p]; s[7] += x * b7[p]; }
        }
        for (int r = 0; r < rows; r++) Set(c + r, s[r], accumulate);
    }

    private struct Four;

    private static float Dot(int k, float* a, float* b)
    {
        int p = 0;
        float s = 0;
        if (Vector512.IsHardwareAccelerated && k >= 16)
        {
            var v = Vector512<float>.Zero;
            for (; p + 16 <= k; p += 16) v = Vector512.FusedMultiplyAdd(Vector512.Load(a + p), Vector512.Load(b + p), v);
            s = Vector512.Sum(v);
        }
        for (; p < k; p++) s += a[p] * b[p];
        return s;
    }

    /// <summary>Per-thread packing buffers, 64-byte aligned, allocated once per thread.</summary>
    private static class Scratch
    {
        [ThreadStatic] private static float* s_a;
        [ThreadStatic] private static float* s_b;

        public static float* A => s_a != null ? s_a : s_a = (float*)NativeMemory.AlignedAlloc((nuint)(MC * KC * sizeof(float)), 64);

        public static float* B => s_b != null ? s_b : s_b = (float*)NativeMemory.AlignedAlloc((nuint)(PanelCapacity * sizeof(float)), 64);
    }
}

namespace NetDsl.Testing;

/// <summary>
/// The GEMM shapes the kernel tests check against naive sums: every path (dot products, direct, narrow, packed,
/// A read in place), panel heights and edges, and K blocks. The Runtime tests run them on the machine's own kernels
/// and, through NetDsl.KernelProbe, with AVX-512, AVX2 and all hardware intrinsics switched off.
/// </summary>
internal static class GemmCases
{
    /// <summary>(transA, transB, M, N, K) of <c>C[M,N] (+)= op(A)·op(B)</c>.</summary>
    public static readonly (bool TransA, bool TransB, int M, int N, int K)[] All =
    [
        (false, false, 7, 9, 5),
        (false, true, 7, 9, 5),
        (true, false, 7, 9, 5),
        (true, true, 7, 9, 5),
        (false, true, 1, 33, 70),
        (false, true, 1, 64, 8),              // dot products eight outputs at a time, K of one 256-bit vector
        (false, true, 3, 20, 5),              // ... and K below a vector
        (true, false, 65, 17, 3),
        (false, false, 157, 70, 300),
        (false, true, 157, 70, 300),
        (true, false, 157, 70, 300),
        (true, true, 157, 70, 300),
        (false, true, 64, 256, 784),
        (false, true, 3, 256, 784),
        (true, false, 300, 97, 129),
        (false, false, 13, 2100, 33),
        // Small products (the direct path on AVX-512): whole vectors of columns, ragged ones, rows not a multiple of 4,
        // and narrow C (N < 16 below M), which is computed transposed; a Linear step at batch 32 and its gradients.
        (false, false, 32, 64, 64),
        (false, true, 32, 64, 8),
        (true, false, 64, 64, 32),
        (true, true, 33, 48, 20),
        (false, false, 30, 40, 9),
        (false, true, 32, 4, 64),
        (false, false, 32, 4, 64),
        (true, false, 64, 8, 32),
        (true, true, 21, 10, 17),
        (false, true, 32, 9, 784),
        (false, true, 256, 10, 128),
        (true, false, 250, 7, 130),
        (false, true, 2000, 10, 128),
        (true, false, 1500, 12, 100),
        // Products of 64 or 256 rows (8-row panels for packed A; 12-row and then 8-row ones for A read in place), with a
        // last column panel of at most 16.
        (false, true, 64, 200, 300),
        (true, false, 256, 130, 40),
        (false, false, 64, 196, 288),
        (false, false, 300, 70, 300),         // 12-row panels of row-major A read in place (rows 1200 B apart)
        (false, true, 1000, 40, 300),         // ... 82 of them and two of 8 rows
        (false, false, 1002, 40, 300),        // ... 83 and a last panel of 6 rows, packed
        (false, false, 45, 200, 300),         // three 12-row panels, an 8-row one and a last row
        (false, false, 40, 70, 1100),         // three K blocks of 367, 367 and 366
        (true, true, 30, 50, 1100),
        (false, false, 300, 40, 1024),        // rows 4 KiB apart: 12-row panels packed, 8 + 4 rows at a time
        (false, false, 64, 130, 1024),        // ... and 8-row panels
    ];
}

// kiln's own tensor-core matrix multiply: C = A x B with bf16 or fp16
// inputs, fp32 accumulation and fp32 output, through mma.sync (sm_80 and
// later). It is the matmul that still runs where cuBLAS is missing.
//
// Layouts (n x n, n a multiple of 128, n >= 128):
//   A   row-major:     A[i * n + k]
//   Bt  column-major B (B transposed, row-major): Bt[j * n + k] = B[k][j];
//       the generator fills it with kiln_gen_matrix_*(.., col_major = 1),
//       i.e. Bt[j * n + k] = round(gen::matrix_value(seed, 1, k * n + j))
//   C   row-major fp32: C[i * n + j]
// All three 16-byte aligned (cuMemAlloc results are).
//
// Launch: blockDim.x = 256 (8 warps), gridDim.x = (n / 128)^2 (1-D: the
// kernel maps the block index to a 128 x 128 output tile, grouping 8 tile
// rows for L2 reuse), static shared memory 48 KiB (3 stages x (A + B)
// tiles of 128 x 32 halves), no dynamic shared memory, no attribute needed.
//
// Each block computes a 128 x 128 tile of C, looping over k in steps of 32:
// cp.async 16-byte copies fill a 3-stage shared-memory ring (XOR-swizzled
// rows, so ldmatrix reads are free of bank conflicts), ldmatrix.x4 loads
// the fragments, and each warp computes a 64 x 32 sub-tile with
// mma.sync.aligned.m16n8k16 (4 x 4 tiles of 16 x 8, 64 fp32 accumulators
// per thread).
#include "common.cuh"

#define KILN_MM_BM 128
#define KILN_MM_BN 128
#define KILN_MM_BK 32
#define KILN_MM_STAGES 3
#define KILN_MM_THREADS 256
#define KILN_MM_GROUP 8
// Halves per stage per operand: 128 rows x 32 k.
#define KILN_MM_TILE (KILN_MM_BM * KILN_MM_BK)

__device__ __forceinline__ u32 kiln_smem_addr(const void* p) {
    u32 a;
    asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
    return a;
}

__device__ __forceinline__ void kiln_cp_async16(u32 dst, const void* src) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(dst), "l"(src) : "memory");
}

__device__ __forceinline__ void kiln_cp_async_commit() {
    asm volatile("cp.async.commit_group;" ::: "memory");
}

template <int N>
__device__ __forceinline__ void kiln_cp_async_wait() {
    asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}

__device__ __forceinline__ void kiln_ldmatrix_x4(u32 addr, u32& r0, u32& r1, u32& r2, u32& r3) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(addr));
}

template <bool BF16>
__device__ __forceinline__ void kiln_mma16816(float (&c)[4], const u32 (&a)[4], u32 b0, u32 b1) {
    // Not volatile: a pure register operation the compiler may schedule.
    if (BF16) {
        asm(
            "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
            "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
            : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    } else {
        asm(
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
            "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
            : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
}

// Offset (in halves) of 16-byte chunk `chunk` (0..3) of tile row `row`:
// rows are 64 bytes (32 halves); the chunk index is XORed with bits 1..2 of
// the row, so the 8 rows an ldmatrix reads hit 8 different bank groups.
__device__ __forceinline__ u32 kiln_mm_swizzle(u32 row, u32 chunk) {
    return row * KILN_MM_BK + ((chunk ^ ((row >> 1) & 3u)) << 3);
}

template <bool BF16>
__device__ __forceinline__ void kiln_mma_gemm(const u16* __restrict__ A,
                                              const u16* __restrict__ Bt, float* __restrict__ C,
                                              u32 n) {
    __shared__ __align__(128) u16 smem[KILN_MM_STAGES * 2 * KILN_MM_TILE];

    // Block -> output tile, in groups of KILN_MM_GROUP tile rows.
    const u32 tiles = n / KILN_MM_BM;
    const u32 pid = blockIdx.x;
    const u32 group = pid / (KILN_MM_GROUP * tiles);
    const u32 first_m = group * KILN_MM_GROUP;
    const u32 rows_in_group = min(tiles - first_m, (u32)KILN_MM_GROUP);
    const u32 tile_m = first_m + (pid % rows_in_group);
    const u32 tile_n = (pid % (KILN_MM_GROUP * tiles)) / rows_in_group;
    const u32 m0 = tile_m * KILN_MM_BM;
    const u32 n0 = tile_n * KILN_MM_BN;

    const u32 tid = threadIdx.x;
    const u32 lane = tid & 31u;
    const u32 warp = tid >> 5;
    const u32 warp_m = warp >> 2;  // 0..1: 64 rows each
    const u32 warp_n = warp & 3u;  // 0..3: 32 columns each

    const u32 smem_base = kiln_smem_addr(smem);
    const u32 ktiles = n / KILN_MM_BK;

    // Copy of k-tile `kt` into stage `stage`: 128 rows x 4 chunks per
    // operand, 2 chunks per thread per operand.
    auto load_tile = [&](u32 stage, u32 kt) {
        const u32 a_stage = smem_base + stage * (2 * KILN_MM_TILE) * 2;
        const u32 b_stage = a_stage + KILN_MM_TILE * 2;
        const u64 k0 = (u64)kt * KILN_MM_BK;
#pragma unroll
        for (int i = 0; i < 2; ++i) {
            const u32 c = tid + i * KILN_MM_THREADS;
            const u32 row = c >> 2;
            const u32 chunk = c & 3u;
            const u32 off = kiln_mm_swizzle(row, chunk) * 2;
            kiln_cp_async16(a_stage + off, A + (u64)(m0 + row) * n + k0 + chunk * 8);
            kiln_cp_async16(b_stage + off, Bt + (u64)(n0 + row) * n + k0 + chunk * 8);
        }
    };

    float acc[4][4][4];
#pragma unroll
    for (int mi = 0; mi < 4; ++mi) {
#pragma unroll
        for (int ni = 0; ni < 4; ++ni) {
#pragma unroll
            for (int q = 0; q < 4; ++q) {
                acc[mi][ni][q] = 0.0f;
            }
        }
    }

#pragma unroll
    for (u32 s = 0; s < KILN_MM_STAGES - 1; ++s) {
        if (s < ktiles) {
            load_tile(s, s);
        }
        kiln_cp_async_commit();
    }

#pragma unroll 1
    for (u32 kt = 0; kt < ktiles; ++kt) {
        // Tile kt has landed (at most STAGES - 2 younger groups pending), and
        // every warp is done with the stage the next copy overwrites.
        kiln_cp_async_wait<KILN_MM_STAGES - 2>();
        __syncthreads();
        const u32 next = kt + KILN_MM_STAGES - 1;
        if (next < ktiles) {
            load_tile(next % KILN_MM_STAGES, next);
        }
        kiln_cp_async_commit();

        const u32 stage = kt % KILN_MM_STAGES;
        const u32 a_stage = smem_base + stage * (2 * KILN_MM_TILE) * 2;
        const u32 b_stage = a_stage + KILN_MM_TILE * 2;
#pragma unroll
        for (u32 kk = 0; kk < KILN_MM_BK / 16; ++kk) {
            u32 af[4][4];
            u32 bf[4][2];
#pragma unroll
            for (u32 mi = 0; mi < 4; ++mi) {
                // Matrices: rows 0-7 / 8-15 of the 16-row tile, k 0-7 / 8-15.
                const u32 row = warp_m * 64 + mi * 16 + (lane & 15u);
                const u32 chunk = kk * 2 + (lane >> 4);
                kiln_ldmatrix_x4(a_stage + kiln_mm_swizzle(row, chunk) * 2, af[mi][0], af[mi][1],
                                 af[mi][2], af[mi][3]);
            }
#pragma unroll
            for (u32 nj = 0; nj < 2; ++nj) {
                // Matrices: columns 0-7 k 0-7, columns 0-7 k 8-15, columns
                // 8-15 k 0-7, columns 8-15 k 8-15 of a 16-column pair.
                const u32 row = warp_n * 32 + nj * 16 + (lane & 7u) + ((lane >> 4) << 3);
                const u32 chunk = kk * 2 + ((lane >> 3) & 1u);
                kiln_ldmatrix_x4(b_stage + kiln_mm_swizzle(row, chunk) * 2, bf[2 * nj][0],
                                 bf[2 * nj][1], bf[2 * nj + 1][0], bf[2 * nj + 1][1]);
            }
#pragma unroll
            for (u32 mi = 0; mi < 4; ++mi) {
#pragma unroll
                for (u32 ni = 0; ni < 4; ++ni) {
                    kiln_mma16816<BF16>(acc[mi][ni], af[mi], bf[ni][0], bf[ni][1]);
                }
            }
        }
    }
    kiln_cp_async_wait<0>();

    // Accumulator layout of m16n8: c0, c1 at (row g, columns 2t, 2t+1),
    // c2, c3 at (row g + 8, same columns), g = lane / 4, t = lane % 4.
    const u32 g = lane >> 2;
    const u32 t = lane & 3u;
#pragma unroll
    for (u32 mi = 0; mi < 4; ++mi) {
#pragma unroll
        for (u32 ni = 0; ni < 4; ++ni) {
            const u64 row = m0 + warp_m * 64 + mi * 16 + g;
            const u64 col = n0 + warp_n * 32 + ni * 8 + 2 * t;
            *reinterpret_cast<float2*>(C + row * n + col) =
                make_float2(acc[mi][ni][0], acc[mi][ni][1]);
            *reinterpret_cast<float2*>(C + (row + 8) * n + col) =
                make_float2(acc[mi][ni][2], acc[mi][ni][3]);
        }
    }
}

// bf16 inputs (bit patterns as u16), fp32 accumulate and output.
extern "C" __global__ void __launch_bounds__(KILN_MM_THREADS)
    kiln_mma_bf16(const u16* __restrict__ A, const u16* __restrict__ Bt, float* __restrict__ C,
                  u32 n) {
    kiln_mma_gemm<true>(A, Bt, C, n);
}

// IEEE fp16 inputs (bit patterns as u16), fp32 accumulate and output.
extern "C" __global__ void __launch_bounds__(KILN_MM_THREADS)
    kiln_mma_f16(const u16* __restrict__ A, const u16* __restrict__ Bt, float* __restrict__ C,
                 u32 n) {
    kiln_mma_gemm<false>(A, Bt, C, n);
}

// The memory test (src/reference/memtest.rs): fill a buffer of 64-bit words
// with a pattern, verify it, and the moving-inversions step that verifies
// each word and writes the next pattern to it.
//
// Patterns travel as (u32 kind, u64 param), see common.cuh: kind 0 Fixed,
// 1 Random (param = seed), 2 AddressInAddress, ORed with 16 for inverted.
//
// Launch: 1-D, blockDim.x a multiple of 32, at most 256 for verify,
// verify_and_write and collect (at most 1024 for fill; 256 recommended for
// all), gridDim.x of your choice (4-8 blocks per SM); no dynamic shared
// memory; `buf` 16-byte aligned.
//
// Verify and verify_and_write split the buffer into tiles of
// blockDim.x * 8 words and give each block a contiguous run of tiles
// (block b's run lies below block b+1's). A block walks its tiles in order,
// upward, or downward when `descending` is set; within a tile the words are
// accessed by all threads at once. So the walk order is per block, not
// global (as the CPU backend's is per 1 MiB chunk).
//
// Results, without atomics and without a memset before the launch: block b
// writes stats[2b] = its bad words, stats[2b+1] = its bit flips, and keeps
// the `keep` lowest-index bad words of its run in bad[3 * (b * keep + s)]
// (index, expected, actual) for slots s. kiln_mt_collect then merges the
// blocks into the first `keep` bad words of the whole buffer, exactly as
// MemErrors defines them: since the runs are ordered, the lowest `keep` of
// the buffer are the lowest of the concatenation in block order.
#include "common.cuh"

#define KILN_MT_UNROLL 4  // 16-byte vectors per thread per tile
// Most threads per block of verify, verify_and_write and collect (their
// register budget is sized for it).
#define KILN_MT_MAX_THREADS 256

// Records the bad words of one tile in walk order (DESC: downward). Called by every thread of
// the block (it holds barriers and warp ballots).
template <bool DESC>
__device__ __forceinline__ void kiln_mt_record(const u64 (&diff)[KILN_MT_UNROLL][2], u64 base,
                                               const KilnPattern& ex, u32 keep,
                                               u64* __restrict__ bad, u64& recorded) {
    __shared__ u32 warp_count[32];
    const u32 lane = threadIdx.x & 31u;
    const u32 warp = threadIdx.x >> 5;
    const u32 warps = blockDim.x >> 5;
    const u32 lt = (1u << lane) - 1u;
    const u32 gt = (0xffffffffu << lane) << 1;
    const bool descending = DESC;
#pragma unroll
    for (int uu = 0; uu < KILN_MT_UNROLL; ++uu) {
        const int u = descending ? KILN_MT_UNROLL - 1 - uu : uu;
        const bool f0 = diff[u][0] != 0;
        const bool f1 = diff[u][1] != 0;
        const u32 b0 = __ballot_sync(KILN_FULL_MASK, f0);
        const u32 b1 = __ballot_sync(KILN_FULL_MASK, f1);
        const u32 m = descending ? gt : lt;
        u32 before = __popc(b0 & m) + __popc(b1 & m);
        if (lane == 0) {
            warp_count[warp] = __popc(b0) + __popc(b1);
        }
        __syncthreads();
        u64 total = 0;
        for (u32 w = 0; w < warps; ++w) {
            u32 c = warp_count[w];
            total += c;
            if (descending ? w > warp : w < warp) {
                before += c;
            }
        }
        __syncthreads();  // warp_count is rewritten by the next step
        // This thread's bad words in walk order: position p among all the
        // bad words the block has met.
        u64 p = recorded + before;
#pragma unroll
        for (int hh = 0; hh < 2; ++hh) {
            const int h = descending ? 1 - hh : hh;
            if (diff[u][h] != 0) {
                bool kept;
                u64 slot;
                if (!descending) {
                    // Ascending: the first `keep` met are the lowest.
                    kept = p < keep;
                    slot = p;
                } else {
                    // Descending: the last `keep` met are the lowest; a ring
                    // of `keep` slots, later words overwrite earlier ones.
                    kept = p + keep >= recorded + total;
                    kiln_udivmod64(p, keep, &slot);
                }
                if (kept) {
                    u64 index = base + 2 * ((u64)u * blockDim.x + threadIdx.x) + h;
                    u64 expected = kiln_pattern_word(ex, index);
                    u64* rec = bad + 3 * ((u64)blockIdx.x * keep + slot);
                    rec[0] = index;
                    rec[1] = expected;
                    rec[2] = expected ^ diff[u][h];
                }
                ++p;
            }
        }
        recorded += total;
    }
}

// The walk shared by verify (WRITE = false) and verify_and_write; DESC
// walks downward. Template flags keep every array index a compile-time
// constant, so the tile stays in registers.
template <bool WRITE, bool DESC>
__device__ __forceinline__ void kiln_mt_walk(u64* __restrict__ buf, u64 words, KilnPattern ex,
                                             KilnPattern nx, u32 keep, u64* __restrict__ stats,
                                             u64* __restrict__ bad) {
    const bool descending = DESC;
    // The moving-inversions case: the next word is the expected one inverted.
    const bool inv_only = nx.base == ex.base && nx.param == ex.param && nx.mask == ~ex.mask;
    const u64 tile_words = 2ull * KILN_MT_UNROLL * blockDim.x;
    u64 r;
    const u64 tiles = kiln_udivmod64(words + tile_words - 1, tile_words, &r);
    u64 t_lo, t_hi;
    kiln_block_range(tiles, &t_lo, &t_hi);
    u64 errors = 0, flips = 0;  // this thread's
    u64 recorded = 0;           // the block's, kept uniform across threads
    for (u64 k = t_lo; k < t_hi; ++k) {
        const u64 t = descending ? t_hi - 1 - (k - t_lo) : k;
        const u64 base = t * tile_words;
        u64 diff[KILN_MT_UNROLL][2];
        u64 expect[KILN_MT_UNROLL][2];
#pragma unroll
        for (int u = 0; u < KILN_MT_UNROLL; ++u) {
            const u64 w0 = base + 2 * ((u64)u * blockDim.x + threadIdx.x);
            expect[u][0] = kiln_pattern_word(ex, w0);
            expect[u][1] = kiln_pattern_word(ex, w0 + 1);
            if (w0 + 1 < words) {
                ulonglong2 v = *reinterpret_cast<const ulonglong2*>(buf + w0);
                diff[u][0] = v.x ^ expect[u][0];
                diff[u][1] = v.y ^ expect[u][1];
            } else if (w0 < words) {
                diff[u][0] = buf[w0] ^ expect[u][0];
                diff[u][1] = 0;
            } else {
                diff[u][0] = 0;
                diff[u][1] = 0;
            }
        }
        if (WRITE) {
#pragma unroll
            for (int u = 0; u < KILN_MT_UNROLL; ++u) {
                const u64 w0 = base + 2 * ((u64)u * blockDim.x + threadIdx.x);
                u64 n0 = inv_only ? ~expect[u][0] : kiln_pattern_word(nx, w0);
                u64 n1 = inv_only ? ~expect[u][1] : kiln_pattern_word(nx, w0 + 1);
                if (w0 + 1 < words) {
                    *reinterpret_cast<ulonglong2*>(buf + w0) = make_ulonglong2(n0, n1);
                } else if (w0 < words) {
                    buf[w0] = n0;
                }
            }
        }
        u32 e = 0;
#pragma unroll
        for (int u = 0; u < KILN_MT_UNROLL; ++u) {
            e += (diff[u][0] != 0) + (diff[u][1] != 0);
            flips += kiln_popc64(diff[u][0]) + kiln_popc64(diff[u][1]);
        }
        errors += e;
        // Uniform: in an ascending walk, a block that has kept `keep` words
        // keeps no more and skips the barrier.
        if (keep != 0 && (descending || recorded < keep)) {
            if (__syncthreads_or(e != 0)) {
                kiln_mt_record<DESC>(diff, base, ex, keep, bad, recorded);
            }
        }
    }
    errors = kiln_block_reduce(errors, (u64)0, KilnAddU64());
    flips = kiln_block_reduce(flips, (u64)0, KilnAddU64());
    if (threadIdx.x == 0) {
        stats[2 * blockIdx.x] = errors;
        stats[2 * blockIdx.x + 1] = flips;
    }
}

// Fill: buf[i] = word(i) for i < words. Grid-stride, 16-byte stores.
extern "C" __global__ void __launch_bounds__(1024)
    kiln_mt_fill(u64* __restrict__ buf, u64 words, u32 kind, u64 param) {
    const KilnPattern p = kiln_pattern(kind, param);
    ulonglong2* buf2 = reinterpret_cast<ulonglong2*>(buf);
    const u64 n2 = words >> 1;
    const u64 stride = kiln_thread_count();
    u64 i = kiln_thread_id();
    for (; i + (KILN_MT_UNROLL - 1) * stride < n2; i += KILN_MT_UNROLL * stride) {
#pragma unroll
        for (int u = 0; u < KILN_MT_UNROLL; ++u) {
            const u64 j = i + u * stride;
            buf2[j] = make_ulonglong2(kiln_pattern_word(p, 2 * j), kiln_pattern_word(p, 2 * j + 1));
        }
    }
    for (; i < n2; i += stride) {
        buf2[i] = make_ulonglong2(kiln_pattern_word(p, 2 * i), kiln_pattern_word(p, 2 * i + 1));
    }
    if ((words & 1) && kiln_thread_id() == 0) {
        buf[words - 1] = kiln_pattern_word(p, words - 1);
    }
}

// Verify: counts the words that differ from the pattern; see the top of
// this file for stats[2 * gridDim.x] and bad[3 * gridDim.x * keep].
extern "C" __global__ void __launch_bounds__(KILN_MT_MAX_THREADS, 2)
    kiln_mt_verify(const u64* __restrict__ buf, u64 words, u32 kind, u64 param, u32 keep,
                   u64* __restrict__ stats, u64* __restrict__ bad) {
    const KilnPattern p = kiln_pattern(kind, param);
    kiln_mt_walk<false, false>(const_cast<u64*>(buf), words, p, p, keep, stats, bad);
}

// Moving-inversions step: each word is checked against `expect` and then
// `next` is written to it (also when the check failed); blocks walk their
// runs downward when descending != 0. Results as for kiln_mt_verify.
extern "C" __global__ void __launch_bounds__(KILN_MT_MAX_THREADS, 2)
    kiln_mt_verify_and_write(u64* __restrict__ buf, u64 words, u32 expect_kind,
                             u64 expect_param, u32 next_kind, u64 next_param, u32 descending,
                             u32 keep, u64* __restrict__ stats, u64* __restrict__ bad) {
    const KilnPattern ex = kiln_pattern(expect_kind, expect_param);
    const KilnPattern nx = kiln_pattern(next_kind, next_param);
    if (descending) {
        kiln_mt_walk<true, true>(buf, words, ex, nx, keep, stats, bad);
    } else {
        kiln_mt_walk<true, false>(buf, words, ex, nx, keep, stats, bad);
    }
}

// Merges the per-block results of one verify or verify_and_write launch of
// `blocks` blocks (its gridDim.x) with the same `keep` and `descending`:
//   out[0] = bad words, out[1] = bit flips, out[2] = n = min(out[0], keep),
//   out[3 + 3r .. 3 + 3r + 3] = (index, expected, actual) of the r-th
//   lowest-index bad word, r < n (3 + 3 * keep words in all).
// Launch with ONE block (blockDim.x a multiple of 32, at most 1024).
extern "C" __global__ void __launch_bounds__(KILN_MT_MAX_THREADS, 2)
    kiln_mt_collect(const u64* __restrict__ stats, const u64* __restrict__ bad, u32 blocks,
                    u32 keep, u32 descending, u64* __restrict__ out) {
    u64 errors = 0, flips = 0;
    for (u32 b = threadIdx.x; b < blocks; b += blockDim.x) {
        errors += stats[2 * b];
        flips += stats[2 * b + 1];
    }
    errors = kiln_block_reduce(errors, (u64)0, KilnAddU64());
    flips = kiln_block_reduce(flips, (u64)0, KilnAddU64());
    if (threadIdx.x != 0) {
        return;
    }
    u64 n = 0;
    for (u32 b = 0; b < blocks && n < keep; ++b) {
        const u64 c = stats[2 * b];
        const u64 kept = c < keep ? c : keep;
        for (u64 r = 0; r < kept && n < keep; ++r) {
            // Ascending walks filled slots 0.. in index order; descending
            // walks met position c - 1 (the lowest index) last.
            u64 slot = r;
            if (descending) {
                kiln_udivmod64(c - 1 - r, keep, &slot);
            }
            const u64* rec = bad + 3 * ((u64)b * keep + slot);
            out[3 + 3 * n] = rec[0];
            out[4 + 3 * n] = rec[1];
            out[5 + 3 * n] = rec[2];
            ++n;
        }
    }
    out[0] = errors;
    out[1] = flips;
    out[2] = n;
}

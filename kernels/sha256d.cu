// Double SHA-256 nonce search (src/reference/hash/), with the midstate of
// the header's first 64 bytes computed once on the host.
//
// Per nonce (a u32 written little-endian at header bytes 76..80): compression
// 1 of the header's second block from the midstate, compression 2 of the
// 32-byte first digest from the standard initial state. The three rounds of
// compression 1 that precede the nonce word are computed once per thread.
//
// The job: `job` points to 16 u32 on the device:
//   job[0..8)   Midstate::state (the chaining value after header bytes 0..64)
//   job[8..11)  header bytes 64..76 as three big-endian words
//               (u32::from_be_bytes(header[64..68]), [68..72], [72..76])
//   job[11]     target_zero_bits (0: every nonce hits; above 256: none)
//   job[12]     sample_every (0: no samples)
//   job[13..16) reserved, 0
//
// One launch scans nonces [start, min(start + count, 2^32)): like
// hash::scan_range, the range never wraps past u32::MAX.
//
// Launch: 1-D, blockDim.x a multiple of 32, at most 256 (256 recommended),
// gridDim.x = G of your choice (e.g. 8 x SMs); no dynamic shared memory.
// Each block owns a contiguous run of the range, cut into steps of
// blockDim.x * KILN_SHA_NPT nonces, and walks it upward (each thread hashes
// KILN_SHA_NPT nonces per step).
//
// Outputs, without atomics and without a memset before the launch:
//   rec[80 b ..] per block b (80 u32 each, 80 G in all):
//     [0] hits of the block, [1..9) XOR fold of its digests, [9] how many
//     of its hits are listed (min(hits, 64)), [16..16+[9]) the block's
//     lowest-nonce hits, ascending.
//   samples[8 k .. 8 k + 8) for every nonce with nonce % sample_every == 0,
//     k = (nonce - start) / sample_every: the 32 digest bytes in standard
//     order (the u32 words hold them as laid out in memory, i.e. each is the
//     byte swap of the big-endian digest word). The host sizes it for the
//     multiples of sample_every in the range.
// kiln_sha256d_collect merges rec into the ScanResult fields.
#include "common.cuh"

#define KILN_MAX_HITS 64
#define KILN_SHA_NPT 4
#define KILN_SHA_REC 80
#define KILN_SHA_MAX_THREADS 256

extern "C" __global__ void __launch_bounds__(KILN_SHA_MAX_THREADS)
    kiln_sha256d_scan(const u32* __restrict__ job, u32 start, u32 count, u32* __restrict__ rec,
                      u32* __restrict__ samples) {
    __shared__ u32 warp_count[32];
    u32 mid[8];
#pragma unroll
    for (int i = 0; i < 8; ++i) {
        mid[i] = job[i];
    }
    const KilnShaJob j = kiln_sha_job(mid, job[8], job[9], job[10]);
    const u32 target = job[11];
    const u32 every = job[12];

    const u64 lo = start;
    const u64 end = lo + count < (1ull << 32) ? lo + count : (1ull << 32);
    const u64 step_nonces = (u64)blockDim.x * KILN_SHA_NPT;
    u64 r;
    const u64 steps = kiln_udivmod64(end - lo + step_nonces - 1, step_nonces, &r);
    u64 s_lo, s_hi;
    kiln_block_range(steps, &s_lo, &s_hi);

    const u32 lane = threadIdx.x & 31u;
    const u32 warp = threadIdx.x >> 5;
    const u32 warps = blockDim.x >> 5;
    u32* const out = rec + (u64)blockIdx.x * KILN_SHA_REC;
    u32 fold[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    u32 hits = 0;    // this thread's
    u32 listed = 0;  // the block's, uniform: hits ranked so far
    for (u64 s = s_lo; s < s_hi; ++s) {
        const u64 base = lo + s * step_nonces + threadIdx.x;
        u32 hit_mask = 0;
#pragma unroll 1
        for (u32 k = 0; k < KILN_SHA_NPT; ++k) {
            const u64 n = base + (u64)k * blockDim.x;
            if (n < end) {
                const u32 nonce = (u32)n;
                u32 d[8];
                kiln_sha256d_nonce(j, nonce, d);
#pragma unroll
                for (int i = 0; i < 8; ++i) {
                    fold[i] ^= d[i];
                }
                if (kiln_leading_zero_bits(d) >= target) {
                    hit_mask |= 1u << k;
                    ++hits;
                }
                if (every != 0 && nonce % every == 0) {
                    u32* smp = samples + 8ull * ((nonce - start) / every);
#pragma unroll
                    for (int i = 0; i < 8; ++i) {
                        smp[i] = kiln_bswap32(d[i]);
                    }
                }
            }
        }
        // List hits in nonce order until the block has KILN_MAX_HITS.
        if (listed < KILN_MAX_HITS && __syncthreads_or(hit_mask != 0)) {
#pragma unroll 1
            for (u32 k = 0; k < KILN_SHA_NPT; ++k) {
                const bool hit = (hit_mask >> k) & 1u;
                const u32 ballot = __ballot_sync(KILN_FULL_MASK, hit);
                u32 before = __popc(ballot & ((1u << lane) - 1u));
                if (lane == 0) {
                    warp_count[warp] = __popc(ballot);
                }
                __syncthreads();
                u32 total = 0;
                for (u32 w = 0; w < warps; ++w) {
                    const u32 c = warp_count[w];
                    total += c;
                    before += w < warp ? c : 0u;
                }
                __syncthreads();
                const u32 p = listed + before;
                if (hit && p < KILN_MAX_HITS) {
                    out[16 + p] = (u32)(base + (u64)k * blockDim.x);
                }
                listed += total;
            }
        }
    }
    hits = kiln_block_reduce(hits, 0u, KilnAddU32());
#pragma unroll
    for (int i = 0; i < 8; ++i) {
        fold[i] = kiln_block_reduce(fold[i], 0u, KilnXorU32());
    }
    if (threadIdx.x == 0) {
        out[0] = hits;
#pragma unroll
        for (int i = 0; i < 8; ++i) {
            out[1 + i] = fold[i];
        }
        out[9] = listed < KILN_MAX_HITS ? listed : KILN_MAX_HITS;
    }
}

// Merges the `blocks` records of one kiln_sha256d_scan launch (its
// gridDim.x) into out (75 u32):
//   out[0], out[1]   hit_count as a u64 (low word first)
//   out[2..10)       fold (ScanResult::fold, big-endian digest words)
//   out[10]          n = min(hit_count, 64)
//   out[11..11+n)    the n smallest hit nonces, ascending (ScanResult::hits)
// The blocks' runs are ordered, so the concatenation of their lists in block
// order is ascending and its first 64 are the 64 smallest hits.
// Launch with ONE block (blockDim.x a multiple of 32, at most 1024).
extern "C" __global__ void __launch_bounds__(1024)
    kiln_sha256d_collect(const u32* __restrict__ rec, u32 blocks, u32* __restrict__ out) {
    u64 hits = 0;
    u32 fold[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (u32 b = threadIdx.x; b < blocks; b += blockDim.x) {
        const u32* r = rec + (u64)b * KILN_SHA_REC;
        hits += r[0];
#pragma unroll
        for (int i = 0; i < 8; ++i) {
            fold[i] ^= r[1 + i];
        }
    }
    hits = kiln_block_reduce(hits, (u64)0, KilnAddU64());
#pragma unroll
    for (int i = 0; i < 8; ++i) {
        fold[i] = kiln_block_reduce(fold[i], 0u, KilnXorU32());
    }
    if (threadIdx.x != 0) {
        return;
    }
    u32 n = 0;
    for (u32 b = 0; b < blocks && n < KILN_MAX_HITS; ++b) {
        const u32* r = rec + (u64)b * KILN_SHA_REC;
        const u32 listed = r[9];
        for (u32 i = 0; i < listed && n < KILN_MAX_HITS; ++i) {
            out[11 + n] = r[16 + i];
            ++n;
        }
    }
    out[0] = (u32)hits;
    out[1] = (u32)(hits >> 32);
#pragma unroll
    for (int i = 0; i < 8; ++i) {
        out[2 + i] = fold[i];
    }
    out[10] = n;
}

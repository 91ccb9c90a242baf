// On-device verification: buffer digests, matrix checksums, sampled reads
// and the final reduction of per-block partials, so that verification reads
// a few bytes back instead of whole buffers.
//
// Launch of the grid-stride kernels: 1-D, blockDim.x a multiple of 32 and at
// most 1024, any gridDim.x; no dynamic shared memory. Per-block partials go
// to partial[blockIdx.x] (gridDim.x entries); kiln_reduce_f64/_u64 (or the
// host) adds them.
#include "common.cuh"

// BufferDigest of an f64 buffer (src/device/mod.rs): the sum of the
// elements and the wrapping sum of gen::digest_term(i, x.to_bits()).
// partial_sum[blockIdx.x] and partial_hash[blockIdx.x] receive the block's
// share; the total sum is exact for kiln's integer-valued buffers, and the
// wrapping u64 sum does not depend on the order.
extern "C" __global__ void __launch_bounds__(1024)
    kiln_digest_f64(const double* __restrict__ x, u64 len, double* __restrict__ partial_sum,
                    u64* __restrict__ partial_hash) {
    const double2* x2 = reinterpret_cast<const double2*>(x);
    const u64 n2 = len >> 1;
    double s = 0.0;
    u64 h = 0;
    for (u64 i = kiln_thread_id(); i < n2; i += kiln_thread_count()) {
        double2 v = x2[i];
        s += v.x + v.y;
        h += kiln_digest_term(2 * i, kiln_f64_bits(v.x));
        h += kiln_digest_term(2 * i + 1, kiln_f64_bits(v.y));
    }
    if ((len & 1) && kiln_thread_id() == 0) {
        double v = x[len - 1];
        s += v;
        h += kiln_digest_term(len - 1, kiln_f64_bits(v));
    }
    s = kiln_block_reduce(s, 0.0, KilnAddF64());
    h = kiln_block_reduce(h, (u64)0, KilnAddU64());
    if (threadIdx.x == 0) {
        partial_sum[blockIdx.x] = s;
        partial_hash[blockIdx.x] = h;
    }
}

// Checksum of a matrix (MatmulOp::checksum, as src/device/cpu.rs defines
// it): the wrapping sum over i of gen::digest_term(i, bits_i), bits_i being
// the element's bit pattern zero-extended to u64. _u64 serves f64, _u32
// serves f32 (u64::from(x.to_bits())), _u16 serves bf16 and fp16.
// partial[blockIdx.x] receives the block's share.
extern "C" __global__ void __launch_bounds__(1024)
    kiln_checksum_u64(const u64* __restrict__ x, u64 len, u64* __restrict__ partial) {
    u64 h = 0;
    for (u64 i = kiln_thread_id(); i < len; i += kiln_thread_count()) {
        h += kiln_digest_term(i, x[i]);
    }
    h = kiln_block_reduce(h, (u64)0, KilnAddU64());
    if (threadIdx.x == 0) {
        partial[blockIdx.x] = h;
    }
}

extern "C" __global__ void __launch_bounds__(1024)
    kiln_checksum_u32(const u32* __restrict__ x, u64 len, u64* __restrict__ partial) {
    const uint4* x4 = reinterpret_cast<const uint4*>(x);
    const u64 n4 = len >> 2;
    u64 h = 0;
    for (u64 i = kiln_thread_id(); i < n4; i += kiln_thread_count()) {
        uint4 v = x4[i];
        h += kiln_digest_term(4 * i, v.x);
        h += kiln_digest_term(4 * i + 1, v.y);
        h += kiln_digest_term(4 * i + 2, v.z);
        h += kiln_digest_term(4 * i + 3, v.w);
    }
    if (kiln_thread_id() == 0) {
        for (u64 i = n4 * 4; i < len; ++i) {
            h += kiln_digest_term(i, x[i]);
        }
    }
    h = kiln_block_reduce(h, (u64)0, KilnAddU64());
    if (threadIdx.x == 0) {
        partial[blockIdx.x] = h;
    }
}

extern "C" __global__ void __launch_bounds__(1024)
    kiln_checksum_u16(const u16* __restrict__ x, u64 len, u64* __restrict__ partial) {
    u64 h = 0;
    for (u64 i = kiln_thread_id(); i < len; i += kiln_thread_count()) {
        h += kiln_digest_term(i, x[i]);
    }
    h = kiln_block_reduce(h, (u64)0, KilnAddU64());
    if (threadIdx.x == 0) {
        partial[blockIdx.x] = h;
    }
}

// Sums `count` partials into out[0]. Launch with ONE block (any blockDim.x
// multiple of 32, at most 1024). The order of the additions is fixed, so
// the result is reproducible (and exact for kiln's integer sums).
extern "C" __global__ void __launch_bounds__(1024)
    kiln_reduce_f64(const double* __restrict__ in, u32 count, double* __restrict__ out) {
    double s = 0.0;
    for (u32 i = threadIdx.x; i < count; i += blockDim.x) {
        s += in[i];
    }
    s = kiln_block_reduce(s, 0.0, KilnAddF64());
    if (threadIdx.x == 0) {
        out[0] = s;
    }
}

// Wrapping sum of `count` u64 partials into out[0]; ONE block, as above.
extern "C" __global__ void __launch_bounds__(1024)
    kiln_reduce_u64(const u64* __restrict__ in, u32 count, u64* __restrict__ out) {
    u64 s = 0;
    for (u32 i = threadIdx.x; i < count; i += blockDim.x) {
        s += in[i];
    }
    s = kiln_block_reduce(s, (u64)0, KilnAddU64());
    if (threadIdx.x == 0) {
        out[0] = s;
    }
}

// Sampled read: out[k] = src[idx[k]] for k < count, or `fill` when
// idx[k] >= len (pass the bits of f64 NaN to mirror the CPU backend's
// out-of-range NaN). Elements are moved as raw bits: _u64 for f64/u64,
// _u32 for f32, _u16 for bf16/fp16. Any 1-D launch covering `count`
// threads, e.g. one block of 64 for 64 samples.
extern "C" __global__ void kiln_gather_u64(const u64* __restrict__ src, u64 len,
                                           const u64* __restrict__ idx, u32 count,
                                           u64* __restrict__ out, u64 fill) {
    for (u64 k = kiln_thread_id(); k < count; k += kiln_thread_count()) {
        u64 i = idx[k];
        out[k] = i < len ? src[i] : fill;
    }
}

extern "C" __global__ void kiln_gather_u32(const u32* __restrict__ src, u64 len,
                                           const u64* __restrict__ idx, u32 count,
                                           u32* __restrict__ out, u32 fill) {
    for (u64 k = kiln_thread_id(); k < count; k += kiln_thread_count()) {
        u64 i = idx[k];
        out[k] = i < len ? src[i] : fill;
    }
}

extern "C" __global__ void kiln_gather_u16(const u16* __restrict__ src, u64 len,
                                           const u64* __restrict__ idx, u32 count,
                                           u16* __restrict__ out, u16 fill) {
    for (u64 k = kiln_thread_id(); k < count; k += kiln_thread_count()) {
        u64 i = idx[k];
        out[k] = i < len ? src[i] : fill;
    }
}

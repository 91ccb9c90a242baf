// The bandwidth kernels over three f64 buffers a, b, c of `len` elements
// (src/device/mod.rs, StreamKernel): read (sum of a), write (b = 2.0),
// copy (c = a) and triad (b = a + 3 c).
//
// Access pattern: 16-byte vectors (double2), coalesced, grid-stride with
// KILN_BW_UNROLL vectors per thread in flight per iteration; an odd last
// element is handled by thread 0. Buffers must be 16-byte aligned (every
// cuMemAlloc result is). Launch: 1-D, blockDim.x a multiple of 32 and at
// most 1024 (256 recommended), gridDim.x about 4-8 blocks per SM; no dynamic
// shared memory.
#include "common.cuh"

#define KILN_BW_UNROLL 4

// Read: partial[blockIdx.x] = sum of the block's elements of a. The host
// (or kiln_reduce_f64) adds the gridDim.x partials. The elements are
// integers in 0..=255 (gen::stream_value), so every partial and the total
// are exact in f64 whatever the order of the additions.
extern "C" __global__ void __launch_bounds__(1024)
    kiln_bw_read(const double* __restrict__ a, u64 len, double* __restrict__ partial) {
    const double2* a2 = reinterpret_cast<const double2*>(a);
    const u64 n2 = len >> 1;
    const u64 stride = kiln_thread_count();
    u64 i = kiln_thread_id();
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    for (; i + (KILN_BW_UNROLL - 1) * stride < n2; i += KILN_BW_UNROLL * stride) {
        double2 v[KILN_BW_UNROLL];
#pragma unroll
        for (int u = 0; u < KILN_BW_UNROLL; ++u) {
            v[u] = a2[i + u * stride];
        }
        s0 += v[0].x + v[0].y;
        s1 += v[1].x + v[1].y;
        s2 += v[2].x + v[2].y;
        s3 += v[3].x + v[3].y;
    }
    for (; i < n2; i += stride) {
        double2 v = a2[i];
        s0 += v.x + v.y;
    }
    if ((len & 1) && kiln_thread_id() == 0) {
        s1 += a[len - 1];
    }
    double s = kiln_block_reduce((s0 + s1) + (s2 + s3), 0.0, KilnAddF64());
    if (threadIdx.x == 0) {
        partial[blockIdx.x] = s;
    }
}

// Write: b[i] = 2.0.
extern "C" __global__ void __launch_bounds__(1024)
    kiln_bw_write(double* __restrict__ b, u64 len) {
    double2* b2 = reinterpret_cast<double2*>(b);
    const u64 n2 = len >> 1;
    const u64 stride = kiln_thread_count();
    const double2 two = make_double2(2.0, 2.0);
    u64 i = kiln_thread_id();
    for (; i + (KILN_BW_UNROLL - 1) * stride < n2; i += KILN_BW_UNROLL * stride) {
#pragma unroll
        for (int u = 0; u < KILN_BW_UNROLL; ++u) {
            b2[i + u * stride] = two;
        }
    }
    for (; i < n2; i += stride) {
        b2[i] = two;
    }
    if ((len & 1) && kiln_thread_id() == 0) {
        b[len - 1] = 2.0;
    }
}

// Copy: c[i] = a[i].
extern "C" __global__ void __launch_bounds__(1024)
    kiln_bw_copy(const double* __restrict__ a, double* __restrict__ c, u64 len) {
    const double2* a2 = reinterpret_cast<const double2*>(a);
    double2* c2 = reinterpret_cast<double2*>(c);
    const u64 n2 = len >> 1;
    const u64 stride = kiln_thread_count();
    u64 i = kiln_thread_id();
    for (; i + (KILN_BW_UNROLL - 1) * stride < n2; i += KILN_BW_UNROLL * stride) {
        double2 v[KILN_BW_UNROLL];
#pragma unroll
        for (int u = 0; u < KILN_BW_UNROLL; ++u) {
            v[u] = a2[i + u * stride];
        }
#pragma unroll
        for (int u = 0; u < KILN_BW_UNROLL; ++u) {
            c2[i + u * stride] = v[u];
        }
    }
    for (; i < n2; i += stride) {
        c2[i] = a2[i];
    }
    if ((len & 1) && kiln_thread_id() == 0) {
        c[len - 1] = a[len - 1];
    }
}

// Triad: b[i] = a[i] + 3.0 * c[i] (exact: small integers).
extern "C" __global__ void __launch_bounds__(1024)
    kiln_bw_triad(const double* __restrict__ a, const double* __restrict__ c,
                  double* __restrict__ b, u64 len) {
    const double2* a2 = reinterpret_cast<const double2*>(a);
    const double2* c2 = reinterpret_cast<const double2*>(c);
    double2* b2 = reinterpret_cast<double2*>(b);
    const u64 n2 = len >> 1;
    const u64 stride = kiln_thread_count();
    u64 i = kiln_thread_id();
    for (; i + (KILN_BW_UNROLL - 1) * stride < n2; i += KILN_BW_UNROLL * stride) {
        double2 va[KILN_BW_UNROLL], vc[KILN_BW_UNROLL];
#pragma unroll
        for (int u = 0; u < KILN_BW_UNROLL; ++u) {
            va[u] = a2[i + u * stride];
            vc[u] = c2[i + u * stride];
        }
#pragma unroll
        for (int u = 0; u < KILN_BW_UNROLL; ++u) {
            b2[i + u * stride] = make_double2(va[u].x + 3.0 * vc[u].x, va[u].y + 3.0 * vc[u].y);
        }
    }
    for (; i < n2; i += stride) {
        double2 x = a2[i], y = c2[i];
        b2[i] = make_double2(x.x + 3.0 * y.x, x.y + 3.0 * y.y);
    }
    if ((len & 1) && kiln_thread_id() == 0) {
        b[len - 1] = a[len - 1] + 3.0 * c[len - 1];
    }
}

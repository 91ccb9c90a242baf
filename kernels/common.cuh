// Shared device helpers of kiln's kernels.
//
// Every function here is a pure function of its arguments, marked
// __host__ __device__, so that kernels/test/host_check.cpp compiles the very
// same code with g++ and checks it bit for bit against values printed by the
// Rust reference (src/reference/gen.rs, hash/, memtest.rs). CUDA-only
// intrinsics sit behind `#ifdef __CUDA_ARCH__` with a portable fallback.
//
// No standard header is included: NVRTC from the wheel has none, and kiln's
// PTX must build from this folder alone.
#pragma once

#if defined(__CUDACC__)
#define KILN_HD __host__ __device__ __forceinline__
#define KILN_UNROLL _Pragma("unroll")
#else
// g++ build of the host check: CUDA qualifiers become plain inline.
#define KILN_HD inline
#define KILN_UNROLL
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#endif

typedef unsigned long long u64;
typedef unsigned int u32;
typedef unsigned short u16;
typedef long long i64;

// ---------------------------------------------------------------------------
// Counter-based generator: src/reference/gen.rs.

#define KILN_GOLDEN 0x9E3779B97F4A7C15ull
#define KILN_STREAM_MUL 0xD1B54A32D192ED03ull

// The SplitMix64 finaliser (gen::mix64).
KILN_HD u64 kiln_mix64(u64 z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// gen::random_u64(seed, stream, index).
KILN_HD u64 kiln_random_u64(u64 seed, u64 stream, u64 index) {
    return kiln_mix64(seed ^ (stream * KILN_STREAM_MUL) ^ (index * KILN_GOLDEN));
}

// gen::matrix_value as f64: (r >> 40) / 2^23 - 1, exact.
KILN_HD double kiln_matrix_value(u64 seed, u64 stream, u64 index) {
    i64 k = (i64)(kiln_random_u64(seed, stream, index) >> 40);
    // (k - 2^23) is an integer of at most 24 bits: the conversion and the
    // scaling by a power of two are exact.
    return (double)(k - (1ll << 23)) * (1.0 / 8388608.0);
}

// gen::matrix_value rounded to f32 (exact: 24 significant bits).
KILN_HD float kiln_matrix_value_f32(u64 seed, u64 stream, u64 index) {
    int k = (int)(kiln_random_u64(seed, stream, index) >> 40);
    return (float)(k - (1 << 23)) * (1.0f / 8388608.0f);
}

// gen::stream_value: an integer in 0..=255, as f64.
KILN_HD double kiln_stream_value(u64 seed, u64 index) {
    return (double)(u32)(kiln_random_u64(seed, 3, index) >> 56);
}

// gen::digest_term(index, bits).
KILN_HD u64 kiln_digest_term(u64 index, u64 bits) {
    return kiln_mix64(bits ^ (index * KILN_GOLDEN));
}

// n / d and n % d for d != 0 (d < 2^63), by shift and subtract. The GPU has
// no 64-bit divide: the compiler calls a subroutine for `/` on u64, and
// ptxas counts the registers saved around that call as spill stores. This
// loop is inline; kernels use it once per block or on cold paths only.
KILN_HD u64 kiln_udivmod64(u64 n, u64 d, u64* rem) {
    u64 q = 0, r = 0;
#if defined(__CUDACC__)
#pragma unroll 1
#endif
    for (int i = 63; i >= 0; --i) {
        r = (r << 1) | ((n >> i) & 1ull);
        if (r >= d) {
            r -= d;
            q |= 1ull << i;
        }
    }
    *rem = r;
    return q;
}

// ---------------------------------------------------------------------------
// Bit casts and conversions.

KILN_HD u64 kiln_f64_bits(double x) {
#ifdef __CUDA_ARCH__
    return (u64)__double_as_longlong(x);
#else
    u64 b;
    __builtin_memcpy(&b, &x, 8);
    return b;
#endif
}

KILN_HD double kiln_f64_from_bits(u64 b) {
#ifdef __CUDA_ARCH__
    return __longlong_as_double((long long)b);
#else
    double x;
    __builtin_memcpy(&x, &b, 8);
    return x;
#endif
}

KILN_HD u32 kiln_f32_bits(float x) {
#ifdef __CUDA_ARCH__
    return (u32)__float_as_uint(x);
#else
    u32 b;
    __builtin_memcpy(&b, &x, 4);
    return b;
#endif
}

// f32 -> bf16 bits, round to nearest even (what cvt.rn.bf16.f32 and
// __float2bfloat16_rn do). NaN stays a quiet NaN.
KILN_HD u16 kiln_f32_to_bf16_bits(u32 x) {
    if ((x & 0x7fffffffu) > 0x7f800000u) {
        return (u16)((x >> 16) | 0x0040u);
    }
    u32 lsb = (x >> 16) & 1u;
    return (u16)((x + 0x7fffu + lsb) >> 16);
}

// m >> shift rounded to nearest, ties to even (1 <= shift <= 31): the
// subnormal rounding of the narrow formats. A carry out of the subnormal
// range gives the smallest normal's bits, which is still right.
KILN_HD u32 kiln_round_shift(u32 m, u32 shift) {
    u32 q = m >> shift;
    u32 rem = m & ((1u << shift) - 1u);
    u32 half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (q & 1u))) {
        q += 1u;
    }
    return q;
}

// f32 -> IEEE binary16 bits, round to nearest even, with subnormals,
// overflow to infinity and NaN kept (what cvt.rn.f16.f32 and
// __float2half_rn do).
KILN_HD u16 kiln_f32_to_f16_bits(u32 x) {
    u32 sign = (x >> 16) & 0x8000u;
    u32 ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) {  // infinity or NaN
        return (u16)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x0200u : 0u));
    }
    if (ax >= 0x477ff000u) {  // rounds to >= 65520: infinity
        return (u16)(sign | 0x7c00u);
    }
    if (ax < 0x38800000u) {  // below 2^-14: a subnormal half or zero
        if (ax < 0x33000000u) {  // below 2^-25: rounds to zero
            return (u16)sign;
        }
        u32 e = ax >> 23;                      // 102 ..= 112
        u32 m = (ax & 0x7fffffu) | 0x800000u;  // 24-bit significand
        return (u16)(sign | kiln_round_shift(m, 126u - e));  // shift 14 ..= 24
    }
    u32 r = ax - 0x38000000u;  // rebias the exponent from 127 to 15
    u32 lsb = (r >> 13) & 1u;
    return (u16)(sign | ((r + 0xfffu + lsb) >> 13));
}

// f32 -> fp8 e4m3 bits (src/reference/numeric.rs, e4m3_bits): 4 significant
// bits, exponent bias 7, subnormals below 2^-6 (unit 2^-9), round to nearest
// even, saturating at +-448 (what cvt.rn.satfinite.e4m3x2.f32 does; e4m3
// has no infinity); NaN becomes 0x7f with the sign.
KILN_HD unsigned char kiln_f32_to_e4m3_bits(u32 x) {
    u32 sign = (x >> 24) & 0x80u;
    u32 ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) {  // NaN
        return (unsigned char)(sign | 0x7fu);
    }
    if (ax >= 0x43e00000u) {  // 448 and up, infinity included
        return (unsigned char)(sign | 0x7eu);
    }
    if (ax < 0x3c800000u) {  // below 2^-6: a subnormal (unit 2^-9) or zero
        if (ax < 0x3a800000u) {  // below 2^-10: rounds to zero
            return (unsigned char)sign;
        }
        u32 e = ax >> 23;                      // 117 ..= 120
        u32 m = (ax & 0x7fffffu) | 0x800000u;  // 24-bit significand
        return (unsigned char)(sign | kiln_round_shift(m, 141u - e));  // shift 21 ..= 24
    }
    u32 r = ax - 0x3c000000u;  // rebias the exponent from 127 to 7
    u32 lsb = (r >> 20) & 1u;
    return (unsigned char)(sign | ((r + 0x7ffffu + lsb) >> 20));
}

// ---------------------------------------------------------------------------
// Memory-test pattern words: src/reference/memtest.rs, Pattern::word.
//
// A pattern travels to a kernel as two arguments (u32 kind, u64 param):
//   kind 0 = Fixed(param)                word(i) = param
//   kind 1 = Random { seed: param }      word(i) = random_u64(param, 11, i)
//   kind 2 = AddressInAddress            word(i) = i
// with KILN_PATTERN_INVERT (16) ORed into kind for `invert: true`, which
// inverts every word bitwise. (Fixed with the flag is Fixed(!param), the
// same words as Pattern::inverted gives.)

#define KILN_PATTERN_FIXED 0u
#define KILN_PATTERN_RANDOM 1u
#define KILN_PATTERN_ADDRESS 2u
#define KILN_PATTERN_INVERT 16u
#define KILN_RANDOM_STREAM 11ull

struct KilnPattern {
    u32 base;  // kind without the invert flag
    u64 param;
    u64 mask;  // all ones when inverted
};

KILN_HD KilnPattern kiln_pattern(u32 kind, u64 param) {
    KilnPattern p;
    p.base = kind & 15u;
    p.param = param;
    p.mask = (kind & KILN_PATTERN_INVERT) ? ~0ull : 0ull;
    return p;
}

KILN_HD u64 kiln_pattern_word(const KilnPattern& p, u64 index) {
    u64 w;
    if (p.base == KILN_PATTERN_RANDOM) {
        w = kiln_random_u64(p.param, KILN_RANDOM_STREAM, index);
    } else if (p.base == KILN_PATTERN_ADDRESS) {
        w = index;
    } else {
        w = p.param;
    }
    return w ^ p.mask;
}

KILN_HD u32 kiln_popc64(u64 x) {
#ifdef __CUDA_ARCH__
    return (u32)__popcll(x);
#else
    return (u32)__builtin_popcountll(x);
#endif
}

// ---------------------------------------------------------------------------
// SHA-256 (FIPS 180-4) for the double SHA-256 nonce search: hash.rs.

KILN_HD u32 kiln_rotr(u32 x, u32 n) {
#ifdef __CUDA_ARCH__
    return __funnelshift_r(x, x, n);
#else
    return (x >> n) | (x << (32u - n));
#endif
}

KILN_HD u32 kiln_bswap32(u32 x) {
#ifdef __CUDA_ARCH__
    return __byte_perm(x, 0u, 0x0123u);
#else
    return __builtin_bswap32(x);
#endif
}

KILN_HD u32 kiln_clz32(u32 x) {
#ifdef __CUDA_ARCH__
    return (u32)__clz((int)x);
#else
    return x == 0u ? 32u : (u32)__builtin_clz(x);
#endif
}

#define KILN_S0(x) (kiln_rotr((x), 2) ^ kiln_rotr((x), 13) ^ kiln_rotr((x), 22))
#define KILN_S1(x) (kiln_rotr((x), 6) ^ kiln_rotr((x), 11) ^ kiln_rotr((x), 25))
#define KILN_s0(x) (kiln_rotr((x), 7) ^ kiln_rotr((x), 18) ^ ((x) >> 3))
#define KILN_s1(x) (kiln_rotr((x), 17) ^ kiln_rotr((x), 19) ^ ((x) >> 10))
#define KILN_CH(e, f, g) ((g) ^ ((e) & ((f) ^ (g))))
#define KILN_MAJ(a, b, c) (((a) & (b)) | ((c) & ((a) | (b))))

// One round on a..h (the caller rotates the names), with kw = K[t] + W[t].
#define KILN_ROUND(a, b, c, d, e, f, g, h, kw)                          \
    do {                                                                \
        u32 t1_ = (h) + KILN_S1(e) + KILN_CH((e), (f), (g)) + (kw);      \
        u32 t2_ = KILN_S0(a) + KILN_MAJ((a), (b), (c));                  \
        (d) += t1_;                                                     \
        (h) = t1_ + t2_;                                                \
    } while (0)

#define KILN_K_TABLE                                                            \
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u, \
    0x923f82a4u, 0xab1c5ed5u, 0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u, \
    0x72be5d74u, 0x80deb1feu, 0x9bdc06a7u, 0xc19bf174u, 0xe49b69c1u, 0xefbe4786u, \
    0x0fc19dc6u, 0x240ca1ccu, 0x2de92c6fu, 0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau, \
    0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u, 0xc6e00bf3u, 0xd5a79147u, \
    0x06ca6351u, 0x14292967u, 0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu, 0x53380d13u, \
    0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u, 0xa2bfe8a1u, 0xa81a664bu, \
    0xc24b8b70u, 0xc76c51a3u, 0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u, \
    0x19a4c116u, 0x1e376c08u, 0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au, \
    0x5b9cca4fu, 0x682e6ff3u, 0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u, \
    0x90befffau, 0xa4506cebu, 0xbef9a3f7u, 0xc67178f2u

#define KILN_IV0 0x6a09e667u
#define KILN_IV1 0xbb67ae85u
#define KILN_IV2 0x3c6ef372u
#define KILN_IV3 0xa54ff53au
#define KILN_IV4 0x510e527fu
#define KILN_IV5 0x9b05688cu
#define KILN_IV6 0x1f83d9abu
#define KILN_IV7 0x5be0cd19u

// The 64 rounds of one compression over a 16-word block w (big-endian
// words), message schedule computed in place, with a..h the working
// variables. Fully unrolled: every index is a compile-time constant, so w
// lives in registers and constant words fold away.
template <int T>
struct KilnRounds {
    static KILN_HD void run(u32* w, u32& a, u32& b, u32& c, u32& d, u32& e, u32& f, u32& g,
                            u32& h) {
        constexpr u32 K[64] = {KILN_K_TABLE};
        if (T >= 16) {
            w[T & 15] += KILN_s1(w[(T - 2) & 15]) + w[(T - 7) & 15] + KILN_s0(w[(T - 15) & 15]);
        }
        KILN_ROUND(a, b, c, d, e, f, g, h, K[T] + w[T & 15]);
        // Next round: the names shift by one (h becomes a).
        KilnRounds<T + 1>::run(w, h, a, b, c, d, e, f, g);
    }
};

template <>
struct KilnRounds<64> {
    static KILN_HD void run(u32*, u32&, u32&, u32&, u32&, u32&, u32&, u32&, u32&) {}
};

// One SHA-256 compression of block w (clobbered) into state (updated).
KILN_HD void kiln_sha256_compress(u32* state, u32* w) {
    u32 a = state[0], b = state[1], c = state[2], d = state[3];
    u32 e = state[4], f = state[5], g = state[6], h = state[7];
    KilnRounds<0>::run(w, a, b, c, d, e, f, g, h);
    // After 64 rounds the names are back in place.
    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;
    state[4] += e;
    state[5] += f;
    state[6] += g;
    state[7] += h;
}

// What the nonce search precomputes once per job (per thread on the GPU):
// the midstate, header words 16..18 (big-endian words of bytes 64..76) and
// the working variables after the first three rounds of compression 1,
// which do not depend on the nonce (word 19, the nonce, enters at round 3).
struct KilnShaJob {
    u32 mid[8];
    u32 w0, w1, w2;
    u32 s[8];  // a..h after rounds 0, 1, 2 (names in place: s[0] = a)
};

KILN_HD KilnShaJob kiln_sha_job(const u32* mid, u32 w0, u32 w1, u32 w2) {
    constexpr u32 K[64] = {KILN_K_TABLE};
    KilnShaJob j;
    for (int i = 0; i < 8; ++i) {
        j.mid[i] = mid[i];
    }
    j.w0 = w0;
    j.w1 = w1;
    j.w2 = w2;
    u32 a = mid[0], b = mid[1], c = mid[2], d = mid[3];
    u32 e = mid[4], f = mid[5], g = mid[6], h = mid[7];
    KILN_ROUND(a, b, c, d, e, f, g, h, K[0] + w0);
    KILN_ROUND(h, a, b, c, d, e, f, g, K[1] + w1);
    KILN_ROUND(g, h, a, b, c, d, e, f, K[2] + w2);
    // After three rounds the name that holds "a" is f, then g, h, a, b, c, d, e.
    j.s[0] = f;
    j.s[1] = g;
    j.s[2] = h;
    j.s[3] = a;
    j.s[4] = b;
    j.s[5] = c;
    j.s[6] = d;
    j.s[7] = e;
    return j;
}

// The double SHA-256 digest of the job's header with `nonce` written
// little-endian at bytes 76..80, as eight big-endian words (word i is
// digest bytes 4i..4i+4): hash.rs's Prepared::digest.
KILN_HD void kiln_sha256d_nonce(const KilnShaJob& j, u32 nonce, u32* digest) {
    // Compression 1: block 2 of the header, from the midstate.
    u32 w[16];
    w[0] = j.w0;
    w[1] = j.w1;
    w[2] = j.w2;
    w[3] = kiln_bswap32(nonce);  // little-endian nonce read as a big-endian word
    w[4] = 0x80000000u;
    w[5] = 0u;
    w[6] = 0u;
    w[7] = 0u;
    w[8] = 0u;
    w[9] = 0u;
    w[10] = 0u;
    w[11] = 0u;
    w[12] = 0u;
    w[13] = 0u;
    w[14] = 0u;
    w[15] = 640u;  // message length in bits
    u32 a = j.s[0], b = j.s[1], c = j.s[2], d = j.s[3];
    u32 e = j.s[4], f = j.s[5], g = j.s[6], h = j.s[7];
    // Rounds 3..63. KilnRounds<T>::run(w, A..H) runs round T with A as
    // working variable a and recurses with (H, A, .., G), so after N rounds
    // working variable v sits in argument position (v - N) mod 8. Here
    // N = 61: variable v is in position (v + 3) mod 8.
    KilnRounds<3>::run(w, a, b, c, d, e, f, g, h);
    const u32 pos[8] = {a, b, c, d, e, f, g, h};
    u32 st[8];
    KILN_UNROLL
    for (int v = 0; v < 8; ++v) {
        st[v] = j.mid[v] + pos[(v + 3) & 7];
    }
    // Compression 2: the 32-byte first digest, padding, length 256 bits.
    w[0] = st[0];
    w[1] = st[1];
    w[2] = st[2];
    w[3] = st[3];
    w[4] = st[4];
    w[5] = st[5];
    w[6] = st[6];
    w[7] = st[7];
    w[8] = 0x80000000u;
    w[9] = 0u;
    w[10] = 0u;
    w[11] = 0u;
    w[12] = 0u;
    w[13] = 0u;
    w[14] = 0u;
    w[15] = 256u;
    a = KILN_IV0;
    b = KILN_IV1;
    c = KILN_IV2;
    d = KILN_IV3;
    e = KILN_IV4;
    f = KILN_IV5;
    g = KILN_IV6;
    h = KILN_IV7;
    KilnRounds<0>::run(w, a, b, c, d, e, f, g, h);
    // 64 rounds: the names are back in place.
    digest[0] = KILN_IV0 + a;
    digest[1] = KILN_IV1 + b;
    digest[2] = KILN_IV2 + c;
    digest[3] = KILN_IV3 + d;
    digest[4] = KILN_IV4 + e;
    digest[5] = KILN_IV5 + f;
    digest[6] = KILN_IV6 + g;
    digest[7] = KILN_IV7 + h;
}

// Leading zero bits of a digest as Bitcoin displays it (digest bytes
// reversed): hash.rs's leading_zero_bits_words.
KILN_HD u32 kiln_leading_zero_bits(const u32* d) {
    u32 bits = 0u;
    for (int i = 7; i >= 0; --i) {
        u32 shown = kiln_bswap32(d[i]);
        if (shown != 0u) {
            return bits + kiln_clz32(shown);
        }
        bits += 32u;
    }
    return bits;
}

// ---------------------------------------------------------------------------
// Device-only helpers: reductions and launch geometry.
#if defined(__CUDACC__)

#define KILN_FULL_MASK 0xffffffffu

struct KilnAddF64 {
    __device__ __forceinline__ double operator()(double x, double y) const { return x + y; }
};
struct KilnAddU64 {
    __device__ __forceinline__ u64 operator()(u64 x, u64 y) const { return x + y; }
};
struct KilnAddU32 {
    __device__ __forceinline__ u32 operator()(u32 x, u32 y) const { return x + y; }
};
struct KilnXorU32 {
    __device__ __forceinline__ u32 operator()(u32 x, u32 y) const { return x ^ y; }
};

// Reduces v over the block (blockDim.x a multiple of 32, at most 1024);
// the result is valid in thread 0. Every thread of the block must call it
// (it holds barriers); it may be called repeatedly.
template <typename T, typename Op>
__device__ __forceinline__ T kiln_block_reduce(T v, T identity, Op op) {
    __shared__ T warp_vals[32];
    const u32 lane = threadIdx.x & 31u;
    const u32 warp = threadIdx.x >> 5;
    __syncthreads();  // a previous call's readers are done with warp_vals
#pragma unroll
    for (u32 o = 16; o > 0; o >>= 1) {
        v = op(v, __shfl_down_sync(KILN_FULL_MASK, v, o));
    }
    if (lane == 0) {
        warp_vals[warp] = v;
    }
    __syncthreads();
    if (warp == 0) {
        v = lane < (blockDim.x >> 5) ? warp_vals[lane] : identity;
#pragma unroll
        for (u32 o = 16; o > 0; o >>= 1) {
            v = op(v, __shfl_down_sync(KILN_FULL_MASK, v, o));
        }
    }
    return v;
}

// Global thread index and thread count of a 1-D grid-stride loop.
__device__ __forceinline__ u64 kiln_thread_id() {
    return (u64)blockIdx.x * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ u64 kiln_thread_count() {
    return (u64)gridDim.x * blockDim.x;
}

// The contiguous range of `units` work units that block `b` of `blocks`
// owns: ceil(units / blocks) each, the last ones possibly short or empty.
// Memtest and the nonce search walk their range in order, so the blocks'
// ranges, concatenated in block order, list the work in ascending order.
__device__ __forceinline__ void kiln_block_range(u64 units, u64* lo, u64* hi) {
    u64 r;
    u64 per = kiln_udivmod64(units + gridDim.x - 1, gridDim.x, &r);
    u64 a = per * blockIdx.x;
    u64 b = a + per;
    *lo = a < units ? a : units;
    *hi = b < units ? b : units;
}

#endif  // __CUDACC__

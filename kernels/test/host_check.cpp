// Host check of the kernels' integer code: compiles kernels/common.cuh
// with g++ (its helpers are __host__ __device__) and compares it bit for bit
// with values printed by kiln's Rust reference (src/reference/gen.rs,
// hash.rs, memtest.rs; see the expected values' comments) and with
// published SHA-256 vectors. It also replays the block-partition and
// hit-listing logic of kernels/sha256d.cu and the keep-lowest logic of
// kernels/memtest.cu on the host.
//
//   g++ -std=c++17 -O2 -Wall -Wextra -Werror -o /tmp/host_check kernels/test/host_check.cpp
//   /tmp/host_check
//
// scripts/check-kernels.sh builds and runs it.
#include "../common.cuh"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

static int failures = 0;
static int checks = 0;

#define CHECK_EQ(got, want)                                                                  \
    do {                                                                                     \
        ++checks;                                                                            \
        unsigned long long g_ = (unsigned long long)(got), w_ = (unsigned long long)(want); \
        if (g_ != w_) {                                                                      \
            ++failures;                                                                      \
            std::printf("FAIL %s:%d: %s = %#llx, want %#llx\n", __FILE__, __LINE__, #got,   \
                        g_, w_);                                                             \
        }                                                                                    \
    } while (0)

static std::string hex(const unsigned char* b, int n) {
    std::string s;
    char t[3];
    for (int i = 0; i < n; ++i) {
        std::snprintf(t, sizeof t, "%02x", b[i]);
        s += t;
    }
    return s;
}

static void check_str(const std::string& got, const char* want, int line) {
    ++checks;
    if (got != want) {
        ++failures;
        std::printf("FAIL host_check.cpp:%d: %s, want %s\n", line, got.c_str(), want);
    }
}

// Digest words (big-endian words) as the 32 standard-order bytes.
static std::string digest_hex(const u32* d) {
    unsigned char b[32];
    for (int i = 0; i < 8; ++i) {
        b[4 * i] = (unsigned char)(d[i] >> 24);
        b[4 * i + 1] = (unsigned char)(d[i] >> 16);
        b[4 * i + 2] = (unsigned char)(d[i] >> 8);
        b[4 * i + 3] = (unsigned char)d[i];
    }
    return hex(b, 32);
}

static u32 be_word(const unsigned char* p) {
    return ((u32)p[0] << 24) | ((u32)p[1] << 16) | ((u32)p[2] << 8) | p[3];
}

// ---------------------------------------------------------------------------

static void check_generator() {
    // Rust: gen::random_u64(1, 0, i), i = 0..4.
    CHECK_EQ(kiln_random_u64(1, 0, 0), 0x5692161d100b05e5ull);
    CHECK_EQ(kiln_random_u64(1, 0, 1), 0xe4d971771b652c20ull);
    CHECK_EQ(kiln_random_u64(1, 0, 2), 0xbeeb8da1658eec67ull);
    CHECK_EQ(kiln_random_u64(1, 0, 3), 0x382ff84cb27281e9ull);
    CHECK_EQ(kiln_random_u64(0x0123456789abcdefull, 7, 1ull << 40), 0x3f9e8ecf92d5d663ull);
    CHECK_EQ(kiln_mix64(0), 0);
    CHECK_EQ(kiln_mix64(1), 0x5692161d100b05e5ull);
    // Rust: gen::matrix_value(42, 0, i): f64 bits and `as f32` bits.
    const struct {
        u64 i, f64bits;
        u32 f32bits;
    } mv[] = {
        {0, 0x3fd3acf500000000ull, 0x3e9d67a8u},         {1, 0x3fdeeb9900000000ull, 0x3ef75cc8u},
        {2, 0x3fe658e680000000ull, 0x3f32c734u},         {3, 0xbfd0167980000000ull, 0xbe80b3ccu},
        {1000, 0x3fca0e2700000000ull, 0x3e507138u},      {123456789, 0xbfd06d7480000000ull, 0xbe836ba4u},
    };
    for (const auto& m : mv) {
        CHECK_EQ(kiln_f64_bits(kiln_matrix_value(42, 0, m.i)), m.f64bits);
        CHECK_EQ(kiln_f32_bits(kiln_matrix_value_f32(42, 0, m.i)), m.f32bits);
    }
    CHECK_EQ(kiln_f32_bits(kiln_matrix_value_f32(42, 1, 0)), 0xbe227580u);
    CHECK_EQ(kiln_f32_bits(kiln_matrix_value_f32(42, 1, 5)), 0x3ec7a3e0u);
    CHECK_EQ(kiln_f32_bits(kiln_matrix_value_f32(42, 1, 77)), 0x3f63085eu);
    // f32 and f64 paths agree everywhere (the value is exact in f32).
    for (u64 i = 0; i < 100000; ++i) {
        double d = kiln_matrix_value(9, i & 1, i * 7919);
        float f = kiln_matrix_value_f32(9, i & 1, i * 7919);
        if ((double)f != d || (float)d != f) {
            CHECK_EQ(kiln_f64_bits(d), kiln_f64_bits((double)f));
            break;
        }
    }
    // Rust: gen::stream_value(7, i).
    CHECK_EQ((u64)kiln_stream_value(7, 0), 207);
    CHECK_EQ((u64)kiln_stream_value(7, 1), 101);
    CHECK_EQ((u64)kiln_stream_value(7, 2), 246);
    CHECK_EQ((u64)kiln_stream_value(7, 3), 231);
    CHECK_EQ((u64)kiln_stream_value(7, 999), 189);
    // Rust: gen::digest_term.
    CHECK_EQ(kiln_digest_term(3, 0x10), 0x19d2ba7ecebe5f6dull);
    CHECK_EQ(kiln_digest_term(0, 0), 0);
    CHECK_EQ(kiln_digest_term(12345, kiln_f64_bits(2.0)), 0xabbb545a71cf172dull);
    // Rust: CpuStream::digest of a (seed 7, 1000 elements), and
    // CpuMatmul::checksum of matrix_value(1, 0, i) as f32 / f64, i < 1000
    // (what kiln_digest_f64 and kiln_checksum_u32 / _u64 add up).
    double sum = 0.0;
    u64 h = 0, c32 = 0, c64 = 0;
    for (u64 i = 0; i < 1000; ++i) {
        double x = kiln_stream_value(7, i);
        sum += x;
        h += kiln_digest_term(i, kiln_f64_bits(x));
        c32 += kiln_digest_term(i, kiln_f32_bits(kiln_matrix_value_f32(1, 0, i)));
        c64 += kiln_digest_term(i, kiln_f64_bits(kiln_matrix_value(1, 0, i)));
    }
    CHECK_EQ((u64)sum, 126945);
    CHECK_EQ(h, 0xb7bd754812f27469ull);
    CHECK_EQ(c32, 0x70b7619142444058ull);
    CHECK_EQ(c64, 0x91d455d041ebb1f2ull);
}

// Independent references for the half-precision roundings.
static u16 ref_f16(float x) {
    _Float16 h = (_Float16)x;  // libgcc: round to nearest even
    u16 b;
    std::memcpy(&b, &h, 2);
    return b;
}

static u16 ref_bf16(float x) {
    if (x == 0.0f || !std::isfinite(x)) {
        return (u16)(kiln_f32_bits(x) >> 16);
    }
    int e;
    std::frexp((double)x, &e);  // |x| in [2^(e-1), 2^e)
    // 8 significant bits; f32 subnormals have a fixed ulp of 2^-133 in bf16.
    double ulp = std::ldexp(1.0, std::max(e - 8, -133));
    double r = std::nearbyint((double)x / ulp) * ulp;  // ties to even
    return (u16)(kiln_f32_bits((float)r) >> 16);
}

static void check_half_conversions() {
    // Matrix values, and random finite f32 bit patterns over all exponents.
    u64 bad16 = 0, badbf = 0, n = 0;
    for (u64 i = 0; i < 200000; ++i) {
        float xs[2];
        xs[0] = kiln_matrix_value_f32(3, i & 1, i);
        u32 bits = (u32)kiln_random_u64(4, 0, i);
        std::memcpy(&xs[1], &bits, 4);
        for (float x : xs) {
            if (!std::isfinite(x)) {
                continue;
            }
            ++n;
            u32 b = kiln_f32_bits(x);
            if (kiln_f32_to_f16_bits(b) != ref_f16(x) && bad16++ < 5) {
                std::printf("f16 mismatch for %#x: %#x vs %#x\n", b, kiln_f32_to_f16_bits(b),
                            ref_f16(x));
            }
            // bf16 overflows to infinity only above the largest f32 rounding
            // range; the reference does the same through (float).
            if (kiln_f32_to_bf16_bits(b) != ref_bf16(x) && badbf++ < 5) {
                std::printf("bf16 mismatch for %#x: %#x vs %#x\n", b, kiln_f32_to_bf16_bits(b),
                            ref_bf16(x));
            }
        }
    }
    CHECK_EQ(bad16, 0);
    CHECK_EQ(badbf, 0);
    // Edges: the largest half, the overflow threshold, subnormals and ties.
    const float edges[] = {65504.0f, 65519.996f, 65520.0f, 1e9f, 6.1035156e-05f, 6.0975552e-05f,
                           5.9604645e-08f, 2.9802322e-08f, 2.9802326e-08f, 8.940697e-08f,
                           1.0f + 1.0f / 2048.0f, 1.0f + 3.0f / 2048.0f, -0.0f, 0.0f};
    for (float x : edges) {
        CHECK_EQ(kiln_f32_to_f16_bits(kiln_f32_bits(x)), ref_f16(x));
        CHECK_EQ(kiln_f32_to_f16_bits(kiln_f32_bits(-x)), ref_f16(-x));
        CHECK_EQ(kiln_f32_to_bf16_bits(kiln_f32_bits(x)), ref_bf16(x));
    }
    CHECK_EQ(kiln_f32_to_bf16_bits(0x3f808000u), 0x3f80u);  // tie, even stays
    CHECK_EQ(kiln_f32_to_bf16_bits(0x3f818000u), 0x3f82u);  // tie, odd rounds up
    CHECK_EQ(kiln_f32_to_f16_bits(0x7fc00000u) & 0x7e00u, 0x7e00u);  // NaN stays NaN
    CHECK_EQ(kiln_f32_to_bf16_bits(0x7f800001u) & 0x7fc0u, 0x7fc0u);
    std::printf("host_check: half conversions agree on %llu values\n", (unsigned long long)n);
}

// Independent reference for the e4m3 rounding: 4 significant bits, ulp
// 2^-9 below 2^-6, ties to even, saturating at 448.
static unsigned ref_e4m3(float x) {
    unsigned sign = std::signbit(x) ? 0x80u : 0u;
    double a = std::fabs((double)x);
    if (a >= 448.0) {
        return sign | 0x7eu;
    }
    if (a == 0.0) {
        return sign;
    }
    int e;
    std::frexp(a, &e);  // a in [2^(e-1), 2^e)
    double ulp = std::ldexp(1.0, std::max(e - 1, -6) - 3);
    double q = std::nearbyint(a / ulp) * ulp;  // ties to even
    if (q < 0.015625) {  // subnormal: q / 2^-9 in 0..8
        return sign | (unsigned)(q * 512.0);
    }
    std::frexp(q, &e);
    unsigned exp_field = (unsigned)(e - 1 + 7);
    unsigned mant = (unsigned)(std::ldexp(q, -(e - 1)) * 8.0) - 8u;
    return sign | (exp_field << 3) | mant;
}

static void check_e4m3() {
    u64 bad = 0, n = 0;
    for (u64 i = 0; i < 200000; ++i) {
        float xs[2];
        xs[0] = kiln_matrix_value_f32(3, i & 1, i);
        // Random magnitudes from 2^-12 to 2^10, both signs.
        u64 r = kiln_random_u64(4, 1, i);
        double m = 1.0 + (double)(r >> 40) / 16777216.0;
        xs[1] = (float)std::ldexp((r & 1) ? -m : m, (int)(r % 23) - 12);
        for (float x : xs) {
            ++n;
            if (kiln_f32_to_e4m3_bits(kiln_f32_bits(x)) != ref_e4m3(x) && bad++ < 5) {
                std::printf("e4m3 mismatch for %a: %#x vs %#x\n", (double)x,
                            kiln_f32_to_e4m3_bits(kiln_f32_bits(x)), ref_e4m3(x));
            }
        }
    }
    CHECK_EQ(bad, 0);
    CHECK_EQ(kiln_f32_to_e4m3_bits(kiln_f32_bits(1.0f)), 0x38);
    CHECK_EQ(kiln_f32_to_e4m3_bits(0x7f800000u), 0x7e);  // infinity saturates
    CHECK_EQ(kiln_f32_to_e4m3_bits(0x7fc00000u), 0x7f);  // NaN
    CHECK_EQ(kiln_f32_to_e4m3_bits(kiln_f32_bits(0.0009765625f)), 0);  // 2^-10: tie to zero
    // Rust: numeric::tests::e4m3_digest_of_the_first_matrix_values.
    u64 h = 0;
    for (u64 i = 0; i < 1000; ++i) {
        h += kiln_digest_term(i, kiln_f32_to_e4m3_bits(kiln_f32_bits(kiln_matrix_value_f32(1, 0, i))));
    }
    CHECK_EQ(h, 0x1e70c27fc78186cbull);
    std::printf("host_check: e4m3 conversions agree on %llu values\n", (unsigned long long)n);
}

static void check_patterns() {
    // Rust: memtest::Pattern::word at indices 0, 1, 1000.
    const struct {
        u32 kind;
        u64 param;
        u64 w0, w1, w1000;
    } cases[] = {
        {KILN_PATTERN_FIXED, 0xdeadbeef, 0xdeadbeef, 0xdeadbeef, 0xdeadbeef},
        {KILN_PATTERN_RANDOM, 5, 0xa53475c13bd48a80ull, 0xe0b486e752114e17ull,
         0x09c89843d2d41652ull},
        {KILN_PATTERN_RANDOM | KILN_PATTERN_INVERT, 5, 0x5acb8a3ec42b757full,
         0x1f4b7918adeeb1e8ull, 0xf63767bc2d2be9adull},
        {KILN_PATTERN_ADDRESS, 0, 0, 1, 1000},
        {KILN_PATTERN_ADDRESS | KILN_PATTERN_INVERT, 0, ~0ull, ~1ull, ~1000ull},
        {KILN_PATTERN_FIXED | KILN_PATTERN_INVERT, 1, ~1ull, ~1ull, ~1ull},
    };
    for (const auto& c : cases) {
        KilnPattern p = kiln_pattern(c.kind, c.param);
        CHECK_EQ(kiln_pattern_word(p, 0), c.w0);
        CHECK_EQ(kiln_pattern_word(p, 1), c.w1);
        CHECK_EQ(kiln_pattern_word(p, 1000), c.w1000);
    }
    for (u64 i = 0; i < 1000; ++i) {
        u64 n = kiln_random_u64(8, 8, i) >> (i % 64);
        u64 d = (kiln_random_u64(8, 9, i) >> (i % 61)) | 1;
        u64 r;
        u64 q = kiln_udivmod64(n, d, &r);
        if (q != n / d || r != n % d) {
            CHECK_EQ(q, n / d);
            CHECK_EQ(r, n % d);
            break;
        }
    }
}

// Header of HashJob::from_seed(seed, ..): bytes 0..76 from random_u64(seed,
// 5, i) little-endian, nonce bytes zero.
static void job_header(u64 seed, unsigned char* h) {
    std::memset(h, 0, 80);
    for (int i = 0; i < 10; ++i) {
        u64 w = kiln_random_u64(seed, 5, (u64)i);
        for (int b = 0; b < 8 && 8 * i + b < 76; ++b) {
            h[8 * i + b] = (unsigned char)(w >> (8 * b));
        }
    }
}

static void midstate_of(const unsigned char* h, u32* mid) {
    const u32 iv[8] = {KILN_IV0, KILN_IV1, KILN_IV2, KILN_IV3,
                       KILN_IV4, KILN_IV5, KILN_IV6, KILN_IV7};
    u32 w[16];
    for (int i = 0; i < 16; ++i) {
        w[i] = be_word(h + 4 * i);
    }
    std::memcpy(mid, iv, sizeof iv);
    kiln_sha256_compress(mid, w);
}

static KilnShaJob sha_job(const unsigned char* h) {
    u32 mid[8];
    midstate_of(h, mid);
    return kiln_sha_job(mid, be_word(h + 64), be_word(h + 68), be_word(h + 72));
}

// The scan kernel's algorithm, replayed serially: per-block contiguous runs
// of steps, per-step listing in nonce order, then the collect merge.
struct Scan {
    u64 hit_count = 0;
    u32 fold[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    std::vector<u32> hits;
    u64 samples = 0;
};

static Scan replay_scan(const KilnShaJob& j, u32 target, u32 every, u32 start, u32 count,
                        u32 grid, u32 block, u32 npt) {
    const u64 lo = start;
    const u64 end = std::min<u64>(lo + count, 1ull << 32);
    const u64 step = (u64)block * npt;
    const u64 steps = (end - lo + step - 1) / step;
    const u64 per = (steps + grid - 1) / grid;
    std::vector<std::vector<u32>> lists(grid);
    Scan s;
    for (u32 b = 0; b < grid; ++b) {
        u64 s_lo = std::min(per * b, steps), s_hi = std::min(per * b + per, steps);
        u32 listed = 0;
        for (u64 st = s_lo; st < s_hi; ++st) {
            // Hits of the step in (k, thread) order, i.e. nonce order.
            std::vector<u32> step_hits;
            for (u32 k = 0; k < npt; ++k) {
                for (u32 t = 0; t < block; ++t) {
                    u64 n = lo + st * step + t + (u64)k * block;
                    if (n >= end) {
                        continue;
                    }
                    u32 d[8];
                    kiln_sha256d_nonce(j, (u32)n, d);
                    for (int i = 0; i < 8; ++i) {
                        s.fold[i] ^= d[i];
                    }
                    if (kiln_leading_zero_bits(d) >= target) {
                        ++s.hit_count;
                        step_hits.push_back((u32)n);
                    }
                    if (every != 0 && (u32)n % every == 0) {
                        ++s.samples;
                    }
                }
            }
            if (listed < 64) {
                for (u32 n : step_hits) {
                    if (listed < 64) {
                        lists[b].push_back(n);
                    }
                    ++listed;
                }
            }
        }
    }
    for (u32 b = 0; b < grid; ++b) {
        for (u32 n : lists[b]) {
            if (s.hits.size() < 64) {
                s.hits.push_back(n);
            }
        }
    }
    return s;
}

static void check_sha256() {
    // FIPS 180-4 "abc", one block.
    {
        u32 st[8] = {KILN_IV0, KILN_IV1, KILN_IV2, KILN_IV3,
                     KILN_IV4, KILN_IV5, KILN_IV6, KILN_IV7};
        u32 w[16] = {0x61626380u, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 24};
        kiln_sha256_compress(st, w);
        check_str(digest_hex(st),
                  "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", __LINE__);
    }
    // The Bitcoin genesis block: its hash, displayed reversed, is
    // 000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f.
    {
        unsigned char h[80] = {0};
        h[0] = 1;
        const char* merkle = "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b";
        for (int i = 0; i < 32; ++i) {
            unsigned v;
            std::sscanf(merkle + 2 * i, "%2x", &v);
            h[36 + 31 - i] = (unsigned char)v;  // stored reversed
        }
        const u32 time = 1231006505u, bits = 0x1d00ffffu, nonce = 2083236893u;
        for (int i = 0; i < 4; ++i) {
            h[68 + i] = (unsigned char)(time >> (8 * i));
            h[72 + i] = (unsigned char)(bits >> (8 * i));
        }
        KilnShaJob j = sha_job(h);  // nonce bytes 76..80 are zero here
        u32 d[8];
        kiln_sha256d_nonce(j, nonce, d);
        unsigned char rev[32];
        for (int i = 0; i < 8; ++i) {
            for (int b = 0; b < 4; ++b) {
                rev[31 - (4 * i + b)] = (unsigned char)(d[i] >> (24 - 8 * b));
            }
        }
        check_str(hex(rev, 32),
                  "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f", __LINE__);
        CHECK_EQ(kiln_leading_zero_bits(d), 43);
        kiln_sha256d_nonce(j, 0, d);
        ++checks;
        if (kiln_leading_zero_bits(d) >= 40) {
            ++failures;
            std::printf("FAIL: genesis header with nonce 0 is a hit\n");
        }
    }
    // Rust: HashJob::from_seed(2024, 8, 1000), midstate and double_sha256.
    unsigned char h[80];
    job_header(2024, h);
    CHECK_EQ(be_word(h + 64), 0x79ebe494u);
    CHECK_EQ(be_word(h + 68), 0x1048b702u);
    CHECK_EQ(be_word(h + 72), 0x6c0c79c3u);
    u32 mid[8];
    midstate_of(h, mid);
    const u32 want_mid[8] = {0x7e956e69u, 0x280031eeu, 0x356443fdu, 0x23e403b8u,
                             0xf6fb3a23u, 0x3794205fu, 0xe8f6ff97u, 0x0fb2be51u};
    for (int i = 0; i < 8; ++i) {
        CHECK_EQ(mid[i], want_mid[i]);
    }
    KilnShaJob j = sha_job(h);
    const struct {
        u32 nonce;
        const char* digest;
        u32 lzb;
    } ds[] = {
        {0, "2446595598c19b464cceae7fc7ff3b14a68c8fb79e2f6d1a7782789a837efb5d", 1},
        {1, "91e2c872dd5f865235163bedd639449a98f2ed32ec90eb2414979051ed5d07e3", 0},
        {12345, "cb0f1bcbdc1260eeeaf3f6b8c301855f9a6438670fccc5b949906a05ae9aa0fa", 0},
        {0xffffffffu, "b46331eccac18130453d0fed0e2e7e65827f4cd894ed99f17ad5e1a72f2c1056", 1},
    };
    for (const auto& c : ds) {
        u32 d[8];
        kiln_sha256d_nonce(j, c.nonce, d);
        check_str(digest_hex(d), c.digest, __LINE__);
        CHECK_EQ(kiln_leading_zero_bits(d), c.lzb);
    }
    // Rust: hash::scan_range(&job, &mid, 5, 4096) with targets 8 and 4,
    // replayed with the kernel's partition at a few launch shapes.
    const u32 want_hits8[] = {98, 109, 575, 615, 2113, 2224, 2234, 2320, 2875, 3341, 3636};
    const u32 want_fold[8] = {0x154b9ee3u, 0x3db19208u, 0xc19a5dbcu, 0xf2a4a4a5u,
                              0x8afede56u, 0xc695c9b0u, 0x4af75294u, 0x4f29fc7bu};
    const u32 want_hits4[] = {27,  31,  92,  98,  100, 103, 109, 116, 123, 129, 138,
                              200, 222, 286, 308, 326, 338, 404, 407, 415, 440, 447,
                              448, 455, 476, 477, 489, 509, 519, 575, 583, 584, 615,
                              656, 681, 690, 711, 722, 739, 768, 774, 780, 819, 830,
                              846, 849, 859, 864, 890, 907, 910, 947, 977, 981, 994,
                              1002, 1004, 1008, 1035, 1050, 1070, 1082, 1093, 1103};
    const u32 shapes[][3] = {{1, 32, 4}, {3, 64, 4}, {7, 32, 2}, {40, 256, 4}};
    for (const auto& sh : shapes) {
        Scan s = replay_scan(j, 8, 1000, 5, 4096, sh[0], sh[1], sh[2]);
        CHECK_EQ(s.hit_count, 11);
        CHECK_EQ(s.hits.size(), 11);
        for (size_t i = 0; i < s.hits.size() && i < 11; ++i) {
            CHECK_EQ(s.hits[i], want_hits8[i]);
        }
        for (int i = 0; i < 8; ++i) {
            CHECK_EQ(s.fold[i], want_fold[i]);
        }
        CHECK_EQ(s.samples, 4);
        Scan s4 = replay_scan(j, 4, 0, 5, 4096, sh[0], sh[1], sh[2]);
        CHECK_EQ(s4.hit_count, 253);
        CHECK_EQ(s4.hits.size(), 64);
        for (size_t i = 0; i < s4.hits.size() && i < 64; ++i) {
            CHECK_EQ(s4.hits[i], want_hits4[i]);
        }
    }
}

// memtest.cu's keep-lowest scheme, replayed: blocks own ordered runs of
// tiles, walk them up or down, record bad words in walk order (ascending:
// the first `keep`; descending: a ring of `keep` slots), and collect takes
// the concatenation in block order. It must equal the `keep` lowest bad
// indices of the whole buffer.
static void check_memtest_keep() {
    const u64 words = 10007;
    std::vector<u64> bad_idx;
    for (u64 i = 0; i < words; ++i) {
        if (kiln_random_u64(77, 1, i) % 13 == 0 || (i > 5000 && i < 5100)) {
            bad_idx.push_back(i);
        }
    }
    std::vector<bool> is_bad(words, false);
    for (u64 i : bad_idx) {
        is_bad[i] = true;
    }
    const u32 shapes[][2] = {{1, 32}, {5, 64}, {13, 32}, {64, 256}};
    const u32 keeps[] = {1, 3, 64, 1000};
    for (const auto& sh : shapes) {
        for (u32 keep : keeps) {
            for (int desc = 0; desc < 2; ++desc) {
                const u32 grid = sh[0], block = sh[1], unroll = 4;
                const u64 tile_words = 2ull * unroll * block;
                const u64 tiles = (words + tile_words - 1) / tile_words;
                const u64 per = (tiles + grid - 1) / grid;
                std::vector<u64> counts(grid, 0), slots((u64)grid * keep, ~0ull);
                for (u32 b = 0; b < grid; ++b) {
                    u64 t_lo = std::min(per * b, tiles), t_hi = std::min(per * b + per, tiles);
                    u64 recorded = 0;
                    for (u64 k = t_lo; k < t_hi; ++k) {
                        u64 t = desc ? t_hi - 1 - (k - t_lo) : k;
                        // Walk order within the tile: u, thread, half, reversed
                        // when descending; i.e. index order.
                        std::vector<u64> met;
                        for (u64 w = t * tile_words; w < std::min((t + 1) * tile_words, words);
                             ++w) {
                            if (is_bad[w]) {
                                met.push_back(w);
                            }
                        }
                        if (desc) {
                            std::reverse(met.begin(), met.end());
                        }
                        if (!desc && recorded >= keep) {
                            counts[b] += met.size();
                            continue;
                        }
                        const u64 total = met.size();
                        for (u64 q = 0; q < total; ++q) {
                            u64 p = recorded + q;
                            if (!desc ? p < keep : p + keep >= recorded + total) {
                                u64 r;
                                kiln_udivmod64(p, keep, &r);
                                slots[(u64)b * keep + (desc ? r : p)] = met[q];
                            }
                        }
                        recorded += total;
                        counts[b] += total;
                    }
                }
                // kiln_mt_collect.
                std::vector<u64> got;
                for (u32 b = 0; b < grid && got.size() < keep; ++b) {
                    const u64 c = counts[b], kept = std::min<u64>(c, keep);
                    for (u64 r = 0; r < kept && got.size() < keep; ++r) {
                        u64 slot = r;
                        if (desc) {
                            kiln_udivmod64(c - 1 - r, keep, &slot);
                        }
                        got.push_back(slots[(u64)b * keep + slot]);
                    }
                }
                std::vector<u64> want(bad_idx.begin(),
                                      bad_idx.begin() + std::min<size_t>(keep, bad_idx.size()));
                ++checks;
                if (got != want) {
                    ++failures;
                    std::printf("FAIL memtest keep: grid %u block %u keep %u desc %d\n", grid,
                                block, keep, desc);
                }
            }
        }
    }
}

int main() {
    check_generator();
    check_half_conversions();
    check_e4m3();
    check_patterns();
    check_sha256();
    check_memtest_keep();
    if (failures != 0) {
        std::printf("host_check: %d of %d checks FAILED\n", failures, checks);
        return 1;
    }
    std::printf("host_check: all %d checks passed\n", checks);
    return 0;
}

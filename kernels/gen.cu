// Input generation on the device: every element is a pure function of
// (seed, stream, index) (src/reference/gen.rs), so every GPU builds identical
// inputs without host transfers and the host can recompute any element.
//
// Launch: any 1-D grid and block (grid-stride loops), no shared memory.
// The generator is not timed; it needs no tuning.
#include "common.cuh"

// Element p of the output, for a rows x cols matrix whose value index is
// r * cols + c (row-major numbering, as in gen::matrix_value's callers).
// col_major == 0: out[r * cols + c]; col_major != 0: out[c * rows + r]
// (the transposed, column-major storage the mma kernel wants for B).
__device__ __forceinline__ u64 kiln_value_index(u64 p, u64 rows, u64 cols, u32 col_major) {
    if (!col_major) {
        return p;
    }
    u64 c = p / rows;
    u64 r = p - c * rows;
    return r * cols + c;
}

extern "C" __global__ void kiln_gen_matrix_f64(double* out, u64 rows, u64 cols, u64 seed,
                                               u64 stream, u32 col_major) {
    const u64 len = rows * cols;
    for (u64 p = kiln_thread_id(); p < len; p += kiln_thread_count()) {
        out[p] = kiln_matrix_value(seed, stream, kiln_value_index(p, rows, cols, col_major));
    }
}

extern "C" __global__ void kiln_gen_matrix_f32(float* out, u64 rows, u64 cols, u64 seed,
                                               u64 stream, u32 col_major) {
    const u64 len = rows * cols;
    for (u64 p = kiln_thread_id(); p < len; p += kiln_thread_count()) {
        out[p] = kiln_matrix_value_f32(seed, stream, kiln_value_index(p, rows, cols, col_major));
    }
}

// bf16 bits of matrix_value rounded to nearest even (the f32 value is exact,
// so this is the single rounding of the f64 value).
extern "C" __global__ void kiln_gen_matrix_bf16(u16* out, u64 rows, u64 cols, u64 seed,
                                                u64 stream, u32 col_major) {
    const u64 len = rows * cols;
    for (u64 p = kiln_thread_id(); p < len; p += kiln_thread_count()) {
        float v = kiln_matrix_value_f32(seed, stream, kiln_value_index(p, rows, cols, col_major));
        out[p] = kiln_f32_to_bf16_bits(kiln_f32_bits(v));
    }
}

// IEEE binary16 bits of matrix_value rounded to nearest even (values below
// 2^-14 in magnitude become subnormal halves).
extern "C" __global__ void kiln_gen_matrix_f16(u16* out, u64 rows, u64 cols, u64 seed,
                                               u64 stream, u32 col_major) {
    const u64 len = rows * cols;
    for (u64 p = kiln_thread_id(); p < len; p += kiln_thread_count()) {
        float v = kiln_matrix_value_f32(seed, stream, kiln_value_index(p, rows, cols, col_major));
        out[p] = kiln_f32_to_f16_bits(kiln_f32_bits(v));
    }
}

// fp8 e4m3 bits of matrix_value rounded to nearest even (the values lie in
// [-1, 1): no saturation; below 2^-6 they become subnormal).
extern "C" __global__ void kiln_gen_matrix_e4m3(unsigned char* out, u64 rows, u64 cols, u64 seed,
                                                u64 stream, u32 col_major) {
    const u64 len = rows * cols;
    for (u64 p = kiln_thread_id(); p < len; p += kiln_thread_count()) {
        float v = kiln_matrix_value_f32(seed, stream, kiln_value_index(p, rows, cols, col_major));
        out[p] = kiln_f32_to_e4m3_bits(kiln_f32_bits(v));
    }
}

// Bandwidth input: out[i] = gen::stream_value(seed, i).
extern "C" __global__ void kiln_gen_stream_f64(double* out, u64 len, u64 seed) {
    for (u64 i = kiln_thread_id(); i < len; i += kiln_thread_count()) {
        out[i] = kiln_stream_value(seed, i);
    }
}

// out[i] = value for every 8-byte word: zeroes an f64 or u64 buffer
// (value 0), or fills an f64 buffer with the bits of a constant.
extern "C" __global__ void kiln_fill_u64(u64* out, u64 len, u64 value) {
    for (u64 i = kiln_thread_id(); i < len; i += kiln_thread_count()) {
        out[i] = value;
    }
}

//! Counter-based generator for workload inputs.
//!
//! Every input element is a pure function of (seed, stream, index), so any
//! backend (a CPU thread, a CUDA kernel) builds identical inputs without
//! transfers, and the host can recompute any single element to verify an
//! output. The mixer is the SplitMix64 finaliser (Steele, Lea and Flood,
//! "Fast splittable pseudorandom number generators", OOPSLA 2014); it is not
//! cryptographic and does not need to be.

/// Odd constant of the golden ratio, 2^64 / phi.
pub const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;
const STREAM_MUL: u64 = 0xD1B5_4A32_D192_ED03;

/// The SplitMix64 finaliser: a bijection on u64 with good avalanche.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The `index`-th random word of `stream` under `seed`.
#[inline]
pub fn random_u64(seed: u64, stream: u64, index: u64) -> u64 {
    mix64(seed ^ stream.wrapping_mul(STREAM_MUL) ^ index.wrapping_mul(GOLDEN))
}

/// A matrix input in [-1, 1) with 24 significant bits, so it is exactly
/// representable in f32 and f64 and both precisions multiply the same numbers.
#[inline]
pub fn matrix_value(seed: u64, stream: u64, index: u64) -> f64 {
    let k = random_u64(seed, stream, index) >> 40; // 24 bits
    (k as f64) / f64::from(1u32 << 23) - 1.0
}

/// A bandwidth input: an integer in 0..=255. Sums of up to 2^45 of them are
/// exact in f64, so bandwidth outputs are verified exactly.
#[inline]
pub fn stream_value(seed: u64, index: u64) -> f64 {
    (random_u64(seed, 3, index) >> 56) as f64
}

/// One element's contribution to an order-independent buffer hash: the sum
/// (wrapping) over all elements of `digest_term(index, bits)`. A flipped bit
/// or a misplaced element changes it; the order of summation does not.
#[inline]
pub fn digest_term(index: u64, bits: u64) -> u64 {
    mix64(bits ^ index.wrapping_mul(GOLDEN))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix_values_are_exact_in_f32_and_in_range() {
        for i in 0..10_000 {
            let v = matrix_value(42, 0, i);
            assert!((-1.0..1.0).contains(&v));
            assert_eq!(f64::from(v as f32), v);
        }
    }

    #[test]
    fn stream_values_are_small_integers() {
        for i in 0..10_000 {
            let v = stream_value(7, i);
            assert_eq!(v.fract(), 0.0);
            assert!((0.0..=255.0).contains(&v));
        }
    }

    #[test]
    fn streams_and_seeds_differ() {
        assert_ne!(random_u64(1, 0, 5), random_u64(1, 1, 5));
        assert_ne!(random_u64(1, 0, 5), random_u64(2, 0, 5));
        assert_eq!(random_u64(9, 2, 77), random_u64(9, 2, 77));
    }

    #[test]
    fn digest_term_sees_a_single_bit() {
        assert_ne!(digest_term(3, 0x10), digest_term(3, 0x11));
        assert_ne!(digest_term(3, 0x10), digest_term(4, 0x10));
    }
}

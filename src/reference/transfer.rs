//! The source pattern of every copy: what each copied word is, the checksum
//! a correct copy has, and the word-by-word check of copied data.
//!
//! Every word is a pure function of (seed, stream, index) ([`word`]), so a
//! backend fills a source and checks a destination without a second copy of
//! the data; the workload (src/workload/transfer.rs) times and reports the
//! copies.

use rayon::prelude::*;

use crate::reference::gen;

/// Generator stream of the host-to-device source.
pub const H2D_STREAM: u64 = 12;
/// Generator stream of the device-to-host source.
pub const D2H_STREAM: u64 = 13;
/// Generator stream of the peer-copy source.
pub const P2P_STREAM: u64 = 14;

/// Word `index` of a copy source.
#[inline]
pub fn word(seed: u64, stream: u64, index: u64) -> u64 {
    gen::random_u64(seed, stream, index)
}

/// Wrapping sum over i < words of `digest_term(i, word(seed, stream, i))`:
/// the checksum a correct copy of the source has (the verify kernels'
/// `kiln_checksum_u64` over the destination).
pub fn expected_checksum(seed: u64, stream: u64, words: usize) -> u64 {
    (0..words as u64)
        .into_par_iter()
        .map(|i| gen::digest_term(i, word(seed, stream, i)))
        .reduce(|| 0, u64::wrapping_add)
}

/// Checks copied words against the source pattern.
pub fn check_words(seed: u64, stream: u64, data: &[u64]) -> CopyCheck {
    let (errors, first) = data
        .par_iter()
        .enumerate()
        .filter(|&(i, &w)| w != word(seed, stream, i as u64))
        .map(|(i, _)| (1u64, i as u64))
        .reduce(|| (0, u64::MAX), |a, b| (a.0 + b.0, a.1.min(b.1)));
    CopyCheck {
        checked: data.len() as u64,
        errors,
        first_bad: (errors > 0).then_some(first),
    }
}

/// What a check of copied data found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CopyCheck {
    /// 64-bit words checked.
    pub checked: u64,
    /// Words that differ from the source.
    pub errors: u64,
    /// Index of the first bad word, when there is one and it is known.
    pub first_bad: Option<u64>,
}

/// `256 MiB`, `128 KiB`.
pub fn size_text(bytes: usize) -> String {
    if bytes >= 1 << 20 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{} KiB", bytes >> 10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checksum_sees_one_bit_and_matches_its_definition() {
        let want: u64 = (0..1000u64)
            .map(|i| gen::digest_term(i, word(3, H2D_STREAM, i)))
            .fold(0, u64::wrapping_add);
        assert_eq!(expected_checksum(3, H2D_STREAM, 1000), want);
        assert_ne!(
            expected_checksum(3, H2D_STREAM, 1000),
            expected_checksum(3, P2P_STREAM, 1000)
        );
    }
}

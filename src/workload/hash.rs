//! The hashing workload: a double SHA-256 nonce search over an 80-byte block
//! header, the scheme Bitcoin mining uses.
//!
//! Why it exists: matmul and bandwidth exercise floating point units and the
//! memory system; this workload keeps a device's integer pipelines (32-bit
//! adds, rotates, boolean logic) saturated with a dependency-heavy instruction
//! stream whose every output bit depends on every input bit. A single flipped
//! bit anywhere in the computation changes the digest completely, so silent
//! corruption under load becomes visible.
//!
//! The job, the scan and the SHA-256 implementations are pure definitions in
//! [`crate::reference::hash`]; this file is the workload's part: the check of
//! a device's [`ScanResult`] against the independent reference digest.

use crate::reference::hash::{
    clamped_range, leading_zero_bits, reference_digest, HashJob, ScanResult, MAX_HITS,
};

/// The outcome of [`verify_scan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashCheck {
    /// Digests recomputed with [`reference_digest`].
    pub checked: u64,
    /// Problems found (bad digests, bad hits, missing or extra samples,
    /// inconsistent counts), each counted once.
    pub errors: u64,
    /// Empty when clean; otherwise the first problem, naming the nonce, e.g.
    /// "nonce 131072: digest differs from SHA-256 reference".
    pub detail: String,
}

impl HashCheck {
    /// True when no problem was found.
    pub fn passed(&self) -> bool {
        self.errors == 0
    }

    fn fail(&mut self, detail: impl FnOnce() -> String) {
        self.errors += 1;
        if self.detail.is_empty() {
            self.detail = detail();
        }
    }
}

/// Verifies a device's [`ScanResult`] for `[start, start + count)` (clamped
/// like [`scan_range`]) without rehashing the whole range:
/// 1. the nonce count equals the range length;
/// 2. hits are strictly ascending, inside the range, and there are
///    min(hit_count, [`MAX_HITS`]) of them, with hit_count <= nonces;
/// 3. every reported hit, recomputed with [`reference_digest`], meets the
///    target;
/// 4. the samples are exactly the nonces of the range that are multiples of
///    `sample_every`, ascending, each digest equal to [`reference_digest`];
///    and a sample that is a hit appears in the hit list whenever the list
///    must contain it (it is not full, or the sample lies below its last
///    entry), which catches dropped hits.
///
/// The fold cannot be checked without rehashing the range; callers compare
/// folds between repeated scans instead.
///
/// [`scan_range`]: crate::reference::hash::scan_range
pub fn verify_scan(job: &HashJob, start: u32, count: u32, result: &ScanResult) -> HashCheck {
    let (lo, hi) = clamped_range(start, count);
    let mut check = HashCheck {
        checked: 0,
        errors: 0,
        detail: String::new(),
    };

    if result.nonces != hi - lo {
        check.fail(|| {
            format!(
                "nonce count {} differs from the {} nonces of range [{lo}, {hi})",
                result.nonces,
                hi - lo
            )
        });
    }
    if result.hit_count > result.nonces {
        check.fail(|| {
            format!(
                "hit count {} exceeds the {} nonces hashed",
                result.hit_count, result.nonces
            )
        });
    }
    let expected_hits = result.hit_count.min(MAX_HITS as u64);
    if result.hits.len() as u64 != expected_hits {
        check.fail(|| {
            format!(
                "{} hits listed, expected {expected_hits} for a hit count of {}",
                result.hits.len(),
                result.hit_count
            )
        });
    }

    let mut previous: Option<u32> = None;
    for &nonce in &result.hits {
        if !(lo..hi).contains(&u64::from(nonce)) {
            check.fail(|| format!("nonce {nonce}: reported hit outside range [{lo}, {hi})"));
        } else if previous.is_some_and(|p| nonce <= p) {
            check.fail(|| format!("nonce {nonce}: hits not strictly ascending"));
        } else {
            check.checked += 1;
            let zeros = leading_zero_bits(&reference_digest(job, nonce));
            if zeros < job.target_zero_bits {
                check.fail(|| {
                    format!(
                        "nonce {nonce}: reported hit has {zeros} leading zero bits, target is {}",
                        job.target_zero_bits
                    )
                });
            }
        }
        previous = Some(nonce);
    }

    verify_samples(job, lo, hi, result, &mut check);
    check
}

/// Part 4 of [`verify_scan`]: walks the expected and the reported sample
/// nonces together, both ascending.
fn verify_samples(job: &HashJob, lo: u64, hi: u64, result: &ScanResult, check: &mut HashCheck) {
    let every = u64::from(job.sample_every);
    // The next expected sample nonce, None once past the range.
    let mut expected = if every == 0 {
        None
    } else {
        Some(lo.div_ceil(every) * every).filter(|&n| n < hi)
    };
    let hits_full = result.hits.len() >= MAX_HITS;
    let last_hit = result.hits.last().copied();
    let mut previous: Option<u32> = None;
    for &(nonce, digest) in &result.samples {
        let n = u64::from(nonce);
        // Expected samples below this one were dropped: count them without
        // walking them one by one.
        if let Some(e) = expected.filter(|&e| e < n) {
            let limit = n.min(hi);
            let missing = (limit - e).div_ceil(every);
            check.errors += missing - 1;
            check.fail(|| format!("nonce {e}: sample missing"));
            expected = Some(e + missing * every).filter(|&m| m < hi);
        }
        if previous.is_some_and(|p| nonce <= p) {
            check.fail(|| format!("nonce {nonce}: samples not strictly ascending"));
        } else if expected != Some(n) {
            check.fail(|| format!("nonce {nonce}: unexpected sample"));
        } else {
            check.checked += 1;
            let reference = reference_digest(job, nonce);
            if digest != reference {
                check.fail(|| format!("nonce {nonce}: digest differs from SHA-256 reference"));
            } else if leading_zero_bits(&reference) >= job.target_zero_bits
                && (!hits_full || last_hit.is_some_and(|l| nonce < l))
                && result.hits.binary_search(&nonce).is_err()
            {
                check.fail(|| format!("nonce {nonce}: sampled hit missing from hit list"));
            }
            expected = Some(n + every).filter(|&m| m < hi);
        }
        previous = Some(previous.map_or(nonce, |p| p.max(nonce)));
    }
    if let Some(e) = expected {
        let missing = (hi - e).div_ceil(every);
        check.errors += missing - 1;
        check.fail(|| format!("nonce {e}: sample missing"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::hash::tests::{genesis_header, hex32, impls, scanned_digest};
    use crate::reference::hash::{
        double_sha256, midstate, scan_parallel, scan_parallel_with, scan_range, scan_range_with,
        sha256, HashImpl, PARALLEL_CHUNK,
    };

    #[test]
    fn bitcoin_genesis_block_hash() {
        let header = genesis_header();
        let nonce = 2_083_236_893;
        // Start from a header whose nonce bytes are wrong: double_sha256
        // writes the nonce itself.
        let mut zeroed = header;
        zeroed[76..].fill(0);
        let mid = midstate(&zeroed);
        let mut digest = double_sha256(&mid, &zeroed, nonce);
        let job = HashJob {
            header: zeroed,
            target_zero_bits: 40,
            sample_every: 0,
        };
        assert_eq!(digest, reference_digest(&job, nonce));
        assert_eq!(leading_zero_bits(&digest), 43);
        assert!(leading_zero_bits(&digest) >= 40);
        // Nonce 0 of the same header is no block.
        assert!(leading_zero_bits(&double_sha256(&mid, &zeroed, 0)) < 40);
        digest.reverse();
        assert_eq!(
            digest,
            hex32("000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f")
        );
        // The whole header through the generic sha256 twice gives the same.
        let mut twice = sha256(&sha256(&header));
        twice.reverse();
        assert_eq!(twice, digest);
        // A one-nonce scan finds it as a hit, with every implementation.
        digest.reverse();
        for imp in impls() {
            let r = scan_range_with(imp, &job, &mid, nonce, 1);
            assert_eq!((r.hit_count, r.hits.clone()), (1, vec![nonce]), "{imp:?}");
            assert!(verify_scan(&job, nonce, 1, &r).passed());
            assert_eq!(scanned_digest(imp, &job, &mid, nonce), digest, "{imp:?}");
            // A range around it finds it and nothing else.
            let r = scan_range_with(imp, &job, &mid, nonce - 2, 5);
            assert_eq!((r.hit_count, r.hits.clone()), (1, vec![nonce]), "{imp:?}");
        }
    }

    #[test]
    fn parallel_scan_equals_serial_scan() {
        let job = HashJob::from_seed(77, 8, 4096);
        let start = 1000;
        let count = 3 * PARALLEL_CHUNK + 777;
        let serial = scan_range_with(HashImpl::Scalar, &job, &midstate(&job.header), start, count);
        for imp in impls() {
            assert_eq!(
                scan_parallel_with(imp, &job, start, count),
                serial,
                "{}",
                imp.name()
            );
        }
        let parallel = scan_parallel(&job, start, count);
        assert_eq!(parallel, serial);
        assert_eq!(parallel.nonces, u64::from(count));
        assert!(parallel.hit_count > MAX_HITS as u64);
        assert_eq!(parallel.hits.len(), MAX_HITS);
        assert!(parallel.samples.windows(2).all(|w| w[0].0 < w[1].0));
        assert_ne!(parallel.fold, [0; 8]);
        assert!(verify_scan(&job, start, count, &parallel).passed());
        assert_eq!(scan_parallel(&job, start, 0), ScanResult::default());
    }

    #[test]
    fn range_is_clamped_at_the_top_of_the_nonce_space() {
        let job = HashJob::from_seed(9, 0, 2);
        let mid = midstate(&job.header);
        for imp in impls() {
            let r = scan_range_with(imp, &job, &mid, u32::MAX - 5, 100);
            assert_eq!(r.nonces, 6);
            assert_eq!(r.hit_count, 6); // target 0: every nonce is a hit
            assert_eq!(*r.hits.last().expect("six hits"), u32::MAX);
            assert_eq!(r.samples.len(), 3);
            assert_eq!(r, scan_parallel_with(imp, &job, u32::MAX - 5, 100));
            let check = verify_scan(&job, u32::MAX - 5, 100, &r);
            assert!(check.passed(), "{}: {}", imp.name(), check.detail);
            assert_eq!(check.checked, 9);
            // An odd count at the very top.
            let r = scan_range_with(imp, &job, &mid, u32::MAX, 7);
            assert_eq!((r.nonces, r.hits.clone()), (1, vec![u32::MAX]));
            assert!(verify_scan(&job, u32::MAX, 7, &r).passed());
        }
    }

    /// A clean result with samples, hits below MAX_HITS and its check.
    fn clean() -> (HashJob, u32, u32, ScanResult) {
        let job = HashJob::from_seed(31, 12, 512);
        let (start, count) = (3, 1 << 16);
        let r = scan_parallel(&job, start, count);
        assert!(r.hit_count > 2 && r.hit_count < MAX_HITS as u64);
        let check = verify_scan(&job, start, count, &r);
        assert_eq!(check.errors, 0, "{}", check.detail);
        assert_eq!(check.detail, "");
        assert_eq!(check.checked, r.hit_count + r.samples.len() as u64);
        (job, start, count, r)
    }

    #[test]
    fn verify_catches_a_flipped_sample_bit() {
        let (job, start, count, mut r) = clean();
        let nonce = r.samples[7].0;
        r.samples[7].1[13] ^= 0x04;
        let check = verify_scan(&job, start, count, &r);
        assert_eq!(check.errors, 1);
        assert_eq!(
            check.detail,
            format!("nonce {nonce}: digest differs from SHA-256 reference")
        );
    }

    #[test]
    fn verify_catches_a_fake_hit() {
        let (job, start, count, mut r) = clean();
        let fake = (start..start + count)
            .find(|&n| {
                leading_zero_bits(&reference_digest(&job, n)) < job.target_zero_bits
                    && !r.hits.contains(&n)
            })
            .expect("most nonces miss");
        r.hits.push(fake);
        r.hits.sort_unstable();
        r.hit_count += 1;
        let check = verify_scan(&job, start, count, &r);
        assert!(check.errors > 0);
        assert!(
            check.detail.contains(&format!("nonce {fake}:")),
            "{}",
            check.detail
        );
    }

    #[test]
    fn verify_catches_a_dropped_sample() {
        let (job, start, count, mut r) = clean();
        let dropped = r.samples.remove(20).0;
        let check = verify_scan(&job, start, count, &r);
        assert_eq!(check.errors, 1);
        assert_eq!(check.detail, format!("nonce {dropped}: sample missing"));
        // Runs of dropped samples count one error each, in the middle and
        // at the end.
        let (_, _, _, mut r) = clean();
        let first = r.samples[10].0;
        r.samples.drain(10..13);
        r.samples.truncate(r.samples.len() - 2);
        let check = verify_scan(&job, start, count, &r);
        assert_eq!(check.errors, 5);
        assert_eq!(check.detail, format!("nonce {first}: sample missing"));
        // An extra sample is caught too.
        let (_, _, _, mut r) = clean();
        let extra = r.samples[4].0 + 1;
        r.samples.insert(5, (extra, reference_digest(&job, extra)));
        let check = verify_scan(&job, start, count, &r);
        assert!(check.errors > 0);
        assert!(
            check.detail.contains(&format!("nonce {extra}:")),
            "{}",
            check.detail
        );
    }

    #[test]
    fn verify_catches_a_wrong_nonce_count() {
        let (job, start, count, mut r) = clean();
        r.nonces -= 1;
        let check = verify_scan(&job, start, count, &r);
        assert_eq!(check.errors, 1);
        assert!(
            check.detail.contains(&format!("nonce count {}", count - 1)),
            "{}",
            check.detail
        );
        assert!(check
            .detail
            .contains(&format!("[{start}, {})", start + count)));
    }

    #[test]
    fn verify_catches_hit_list_inconsistencies() {
        let (job, start, count, r) = clean();
        // A hit dropped from the list with the count kept.
        let mut dropped = r.clone();
        dropped.hits.remove(1);
        let check = verify_scan(&job, start, count, &dropped);
        assert!(check.errors > 0);
        // A hit outside the range.
        let mut outside = r.clone();
        let beyond = start + count + 10;
        *outside.hits.last_mut().expect("hits") = beyond;
        let check = verify_scan(&job, start, count, &outside);
        assert!(
            check.detail.contains(&format!("nonce {beyond}:")),
            "{}",
            check.detail
        );
        // A hit dropped together with its count is found through a sample
        // when sampling covers it.
        let every = HashJob {
            sample_every: 1,
            ..job.clone()
        };
        let mut full = scan_range(&every, &midstate(&every.header), start, 1 << 14);
        assert!(full.hits.len() > 1);
        let lost2 = full.hits.remove(0);
        full.hit_count -= 1;
        let check = verify_scan(&every, start, 1 << 14, &full);
        assert_eq!(check.errors, 1);
        assert_eq!(
            check.detail,
            format!("nonce {lost2}: sampled hit missing from hit list")
        );
    }
}

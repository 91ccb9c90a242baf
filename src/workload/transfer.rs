//! Transfers: host to device and device to host through pinned memory, and
//! device to device between every pair of peers in the run.
//!
//! Counted: bytes moved one way per second (GB/s, 10^9 bytes/s), one copy of
//! the whole buffer per timed iteration, timed on the device (CUDA events)
//! around the copy alone.
//!
//! Verified: every copied word is a pure function of (seed, stream, index)
//! ([`word`]), so the destination is checked without a second copy of the
//! data: host-to-device and peer copies by a checksum computed on the
//! destination device ([`expected_checksum`]; on a mismatch the backend
//! finds the bad words), device-to-host copies word by word on the host
//! ([`check_words`]). These definitions of the source pattern are in
//! [`crate::reference::transfer`], below the backends that use them.
//!
//! [`word`]: crate::reference::transfer::word
//! [`expected_checksum`]: crate::reference::transfer::expected_checksum
//! [`check_words`]: crate::reference::transfer::check_words
//!
//! Peers: in a run of N devices, device p copies at step s (1 .. N-1) to the
//! device s places after it in the run's order. Each step is a permutation,
//! so while every device runs the same step at about the same time no
//! device receives from two senders at once. A pair without direct peer
//! access (no NVLink, no PCIe P2P) is skipped with a note: a copy staged
//! through the host would not measure a peer link. `p2p_gpuJ` is the
//! bandwidth to device J; `p2p` is the slowest of them, so one bad link
//! fails the device.

use crate::device::{Device, Direction, PeerLink};
use crate::reference::transfer::{size_text, CopyCheck, D2H_STREAM, H2D_STREAM};
use crate::workload::{seconds, Context, Integrity, WorkloadError, WorkloadKind};

/// The generator stream of a direction's source.
pub fn stream_of(dir: Direction) -> u64 {
    match dir {
        Direction::HostToDevice => H2D_STREAM,
        Direction::DeviceToHost => D2H_STREAM,
    }
}

/// The order in which the device at `index` copies to the others of `run`
/// (every device index of the run, itself included): the device s places
/// after it at step s.
pub fn peer_order(index: usize, run: &[usize]) -> Vec<usize> {
    let mut all = run.to_vec();
    all.sort_unstable();
    all.dedup();
    let Some(p) = all.iter().position(|&d| d == index) else {
        return Vec::new();
    };
    (1..all.len()).map(|s| all[(p + s) % all.len()]).collect()
}

/// A link class in words.
fn link_words(link: PeerLink) -> &'static str {
    match link {
        PeerLink::Nvlink => "NVLink",
        PeerLink::Pcie => "PCIe",
        PeerLink::Unknown => "a link of unknown kind (no NVML)",
    }
}

fn detail_of(what: &str, c: &CopyCheck) -> String {
    match (c.errors, c.first_bad) {
        (0, _) => String::new(),
        (n, Some(i)) => format!(
            "{what}: {n} of {} words differ from the source, the first at byte offset {:#x}",
            c.checked,
            i * 8
        ),
        (n, None) => format!("{what}: {n} of {} words differ from the source", c.checked),
    }
}

/// Runs and verifies the host/device copies, then the peer copies.
pub(crate) fn execute(
    device: &mut dyn Device,
    words: usize,
    warmup: u32,
    iterations: u32,
    run: &[usize],
    ctx: &mut Context<'_>,
) -> Result<(), WorkloadError> {
    let simulated = device.info().simulated;
    let index = device.info().index;
    let bytes = (words * 8) as f64;
    let size = format!("{} per copy", size_text(words * 8));
    match device.transfer(words, ctx.seed) {
        Err(e) if e.unsupported => ctx.skipped(WorkloadKind::Transfer, e.message),
        Err(e) => return Err(e.into()),
        Ok(mut op) => {
            for (di, dir) in Direction::ALL.into_iter().enumerate() {
                for _ in 0..warmup {
                    ctx.check_stop()?;
                    op.run(dir)?;
                }
                let mut rates = Vec::new();
                for it in 0..iterations {
                    ctx.check_stop()?;
                    let done = (di as f64 + f64::from(it) / f64::from(iterations.max(1))) / 3.0;
                    (ctx.progress)(done, dir.name());
                    let t = op.run(dir)?;
                    ctx.busy(t);
                    rates.push(bytes / seconds(t) / 1e9);
                }
                let check = op.check(dir)?;
                let counted = format!(
                    "bytes copied one way per second, pinned host memory, {size} ({} words)",
                    words
                );
                ctx.metric(
                    WorkloadKind::Transfer,
                    dir.name(),
                    "GB/s",
                    counted,
                    &rates,
                    simulated,
                );
                let detail = detail_of(dir.name(), &check);
                ctx.send_integrity(Integrity {
                    workload: WorkloadKind::Transfer,
                    check: dir.name().to_string(),
                    checked: check.checked,
                    errors: check.errors,
                    detail,
                    first_bad_offsets: check.first_bad.map(|i| i * 8).into_iter().collect(),
                    checksum: None,
                    cycle: 0,
                });
            }
        }
    }
    let order = peer_order(index, run);
    if order.is_empty() {
        return Ok(());
    }
    let mut op = match device.peer(words, ctx.seed, &order) {
        Err(e) if e.unsupported => {
            ctx.skipped(WorkloadKind::Transfer, e.message);
            return Ok(());
        }
        Err(e) => return Err(e.into()),
        Ok(op) => op,
    };
    let (reachable, unreachable) = op.targets();
    for (t, why) in unreachable {
        ctx.skipped(
            WorkloadKind::Transfer,
            format!("p2p to device {t} skipped: {why}"),
        );
    }
    let targets: Vec<usize> = order
        .into_iter()
        .filter(|t| reachable.contains(t))
        .collect();
    // The slowest peer of all, and of each link class.
    let mut slowest: Option<(usize, Vec<f64>, f64)> = None;
    let mut slowest_by: Vec<(PeerLink, usize, Vec<f64>, f64, usize)> = Vec::new();
    let mut total = CopyCheck::default();
    let mut detail = String::new();
    for (ti, &target) in targets.iter().enumerate() {
        for _ in 0..warmup {
            ctx.check_stop()?;
            op.run(target)?;
        }
        let mut rates = Vec::new();
        for it in 0..iterations {
            ctx.check_stop()?;
            let done = (2.0
                + (ti as f64 + f64::from(it) / f64::from(iterations.max(1)))
                    / targets.len() as f64)
                / 3.0;
            (ctx.progress)(done, "p2p");
            let t = op.run(target)?;
            ctx.busy(t);
            rates.push(bytes / seconds(t) / 1e9);
        }
        let check = op.check(target)?;
        total.checked += check.checked;
        total.errors += check.errors;
        if detail.is_empty() {
            detail = detail_of(&format!("p2p to device {target}"), &check);
        }
        let link = op.link(target);
        ctx.metric(
            WorkloadKind::Transfer,
            &format!("p2p_gpu{target}"),
            "GB/s",
            format!(
                "bytes copied one way per second from device {index} to device {target} over {}, {size}",
                link_words(link)
            ),
            &rates,
            simulated,
        );
        let median = crate::stats::median(&rates).unwrap_or(f64::INFINITY);
        match slowest_by.iter_mut().find(|s| s.0 == link) {
            Some(s) => {
                s.4 += 1;
                if median < s.3 {
                    (s.1, s.2, s.3) = (target, rates.clone(), median);
                }
            }
            None => slowest_by.push((link, target, rates.clone(), median, 1)),
        }
        if slowest.as_ref().is_none_or(|s| median < s.2) {
            slowest = Some((target, rates, median));
        }
    }
    // Each link class against its own floor: NVLink peers move ten times
    // what PCIe peers do, so one floor for both would fail every PCIe peer
    // or pass a broken NVLink.
    slowest_by.sort_by_key(|s| s.0);
    for (link, target, rates, _, count) in slowest_by {
        if link == PeerLink::Unknown {
            continue;
        }
        ctx.metric(
            WorkloadKind::Transfer,
            &format!("p2p_{}", link.name()),
            "GB/s",
            format!(
                "bytes copied one way per second to {} over {} (device {target}), {size}",
                if count == 1 {
                    "the only peer".to_string()
                } else {
                    format!("the slowest of {count} peers")
                },
                link_words(link)
            ),
            &rates,
            simulated,
        );
    }
    if let Some((target, rates, _)) = slowest {
        ctx.metric(
            WorkloadKind::Transfer,
            "p2p",
            "GB/s",
            format!(
                "bytes copied one way per second to the slowest of {} peers (device {target}), {size}",
                targets.len()
            ),
            &rates,
            simulated,
        );
        ctx.send_integrity(Integrity {
            workload: WorkloadKind::Transfer,
            check: "p2p".into(),
            checked: total.checked,
            errors: total.errors,
            detail,
            first_bad_offsets: Vec::new(),
            checksum: None,
            cycle: 0,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::cpu::CpuDevice;
    use crate::device::{
        DeviceInfo, DeviceResult, HashOp, MatmulOp, MatmulShape, MemtestOp, PeerOp, Seconds,
        StreamOp, TransferOp,
    };
    use crate::reference::hash::HashJob;
    use crate::reference::transfer::{check_words, word, P2P_STREAM};
    use crate::workload::Record;

    /// A device with a fake host link and peers: peer 3 is unreachable, the
    /// copy to peer 2 is slow, and the copy to peer 5 lands with a flipped
    /// bit.
    struct Links {
        cpu: CpuDevice,
    }

    struct FakePeer {
        peers: Vec<usize>,
        last: usize,
    }

    impl PeerOp for FakePeer {
        fn targets(&self) -> (Vec<usize>, Vec<(usize, String)>) {
            let ok = self.peers.iter().copied().filter(|&p| p != 3).collect();
            (ok, vec![(3, "no NVLink to GPU 3".into())])
        }
        fn run(&mut self, target: usize) -> DeviceResult<Seconds> {
            self.last = target;
            // 1 MiB in 10 us = 105 GB/s, or a quarter of that to peer 2.
            Ok(if target == 2 { 40e-6 } else { 10e-6 })
        }
        fn check(&mut self, target: usize) -> DeviceResult<CopyCheck> {
            let mut data: Vec<u64> = (0..1 << 17).map(|i| word(1, P2P_STREAM, i)).collect();
            if target == 5 {
                data[100] ^= 4;
            }
            Ok(check_words(1, P2P_STREAM, &data))
        }
        /// Peer 5 is reached over PCIe, the others over NVLink.
        fn link(&self, target: usize) -> PeerLink {
            if target == 5 {
                PeerLink::Pcie
            } else {
                PeerLink::Nvlink
            }
        }
    }

    impl Device for Links {
        fn info(&self) -> &DeviceInfo {
            self.cpu.info()
        }
        fn matmul(&mut self, s: MatmulShape) -> DeviceResult<Box<dyn MatmulOp + '_>> {
            self.cpu.matmul(s)
        }
        fn stream(&mut self, l: usize, s: u64) -> DeviceResult<Box<dyn StreamOp + '_>> {
            self.cpu.stream(l, s)
        }
        fn hasher(&mut self, j: &HashJob) -> DeviceResult<Box<dyn HashOp + '_>> {
            self.cpu.hasher(j)
        }
        fn memtest(&mut self, w: usize) -> DeviceResult<Box<dyn MemtestOp + '_>> {
            self.cpu.memtest(w)
        }
        fn peer(
            &mut self,
            _words: usize,
            _seed: u64,
            peers: &[usize],
        ) -> DeviceResult<Box<dyn PeerOp + '_>> {
            Ok(Box::new(FakePeer {
                peers: peers.to_vec(),
                last: 0,
            }))
        }
        fn transfer(&mut self, w: usize, s: u64) -> DeviceResult<Box<dyn TransferOp + '_>> {
            self.cpu.transfer(w, s)
        }
    }

    #[test]
    fn p2p_is_the_slowest_peer_and_every_problem_is_said() {
        let mut dev = Links {
            cpu: CpuDevice::new(0),
        };
        let stop = std::sync::atomic::AtomicBool::new(false);
        let mut records = Vec::new();
        let mut sink = |r: Record| records.push(r);
        let mut progress = |_: f64, _: &str| {};
        let mut ctx = Context {
            stop: &stop,
            sink: &mut sink,
            progress: &mut progress,
            cycle: 0,
            seed: 1,
            busy_s: 0.0,
            sustain_s: 0.0,
        };
        execute(&mut dev, 1 << 17, 1, 3, &[0, 2, 3, 5], &mut ctx).expect("runs");
        let metric = |name: &str| {
            records.iter().find_map(|r| match r {
                Record::Metric(m) if m.name == name => Some(m.value),
                _ => None,
            })
        };
        let fast = (8 << 17) as f64 / 10e-6 / 1e9;
        assert_eq!(metric("p2p_gpu5"), Some(fast));
        assert_eq!(metric("p2p_gpu2"), Some(fast / 4.0));
        assert_eq!(metric("p2p_gpu3"), None, "unreachable");
        assert_eq!(metric("p2p"), Some(fast / 4.0), "the slowest peer");
        // Each link class has its own slowest peer (device 0 copies to 2
        // and 5; 3 is unreachable): NVLink peer 2, PCIe peer 5.
        assert_eq!(metric("p2p_nvlink"), Some(fast / 4.0));
        assert_eq!(metric("p2p_pcie"), Some(fast));
        let counted = |name: &str| {
            records.iter().find_map(|r| match r {
                Record::Metric(m) if m.name == name => Some(m.counted.clone()),
                _ => None,
            })
        };
        let c = counted("p2p_nvlink").unwrap_or_default();
        assert!(c.contains("the only peer over NVLink (device 2)"), "{c}");
        let c = counted("p2p_gpu5").unwrap_or_default();
        assert!(c.contains("to device 5 over PCIe"), "{c}");
        let notes: Vec<&String> = records
            .iter()
            .filter_map(|r| match r {
                Record::Skipped { reason, .. } => Some(reason),
                _ => None,
            })
            .collect();
        // The CPU has no host link (skipped), peer 3 has no direct path.
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[1].contains("p2p to device 3 skipped: no NVLink"));
        let p2p = records
            .iter()
            .find_map(|r| match r {
                Record::Integrity(i) if i.check == "p2p" => Some(i.clone()),
                _ => None,
            })
            .expect("p2p checked");
        assert_eq!(p2p.errors, 1);
        assert!(p2p.detail.contains("p2p to device 5"), "{}", p2p.detail);
    }

    #[test]
    fn peer_order_is_a_permutation_at_every_step() {
        let run = [0, 2, 3, 5];
        let orders: Vec<Vec<usize>> = run.iter().map(|&d| peer_order(d, &run)).collect();
        assert_eq!(orders[0], [2, 3, 5]);
        assert_eq!(orders[3], [0, 2, 3]);
        for step in 0..3 {
            let mut receivers: Vec<usize> = orders.iter().map(|o| o[step]).collect();
            receivers.sort_unstable();
            assert_eq!(receivers, run, "step {step}: every device receives once");
        }
        assert!(peer_order(1, &run).is_empty(), "not in the run");
        assert!(peer_order(4, &[4]).is_empty(), "alone");
    }

    #[test]
    fn a_clean_copy_passes_and_a_flipped_bit_is_found() {
        let mut data: Vec<u64> = (0..10_000).map(|i| word(7, D2H_STREAM, i)).collect();
        assert_eq!(
            check_words(7, D2H_STREAM, &data),
            CopyCheck {
                checked: 10_000,
                errors: 0,
                first_bad: None,
            }
        );
        data[4321] ^= 1 << 17;
        data[9000] ^= 1;
        let c = check_words(7, D2H_STREAM, &data);
        assert_eq!((c.errors, c.first_bad), (2, Some(4321)));
        assert!(
            detail_of("d2h", &c).contains("0x8708"),
            "{}",
            detail_of("d2h", &c)
        );
    }
}

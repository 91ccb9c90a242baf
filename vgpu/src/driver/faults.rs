//! What a GPU's configured faults do to the driver's calls, acting where a
//! real GPU acts (the NVML side of the same faults is in `crate::nvml`; both
//! read one clock, [`crate::clock::fault_time_s`]).
//!
//! - **Off the bus** (`lost_at_s`, or XID 79 at `xid_at_s`): the first call
//!   on the GPU's context at or after that time fails with
//!   CUDA_ERROR_LAUNCH_FAILED, and so does every later one, creating a
//!   context included. Device queries (name, attributes) still answer: the
//!   driver has them cached.
//! - **Uncorrectable ECC** (`ecc_uncorrectable_at_s`, or XID 48, 94 or 95):
//!   the next synchronisation (cuStreamSynchronize, cuCtxSynchronize,
//!   cuEventSynchronize, cuStreamQuery, cuEventQuery, a blocking copy)
//!   returns CUDA_ERROR_ECC_UNCORRECTABLE, and every context of the GPU is
//!   poisoned with it, as on hardware.
//! - **Other XIDs that kill the work in flight**: 13 (graphics engine
//!   exception) and 43 (GPU stopped processing) surface as
//!   CUDA_ERROR_LAUNCH_FAILED, 31 (MMU fault) as CUDA_ERROR_ILLEGAL_ADDRESS,
//!   at the next synchronisation, poisoning the GPU's contexts. Other XIDs
//!   (63 and 64 row remapping, 74 NVLink, 92 high single-bit rate, ...) are
//!   NVML events only.
//! - **A kernel that never finishes** (`hang_at_s`, `hang_kernel`): see
//!   [`State::hangs_now`]; the stream never completes.
//! - **A weak bit** (`bitflip`): [`stored`], called by every store.
//! - **Low clocks, a slow PCIe link, NVLinks down**: [`effective_timing`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{MutexGuard, OnceLock};
use std::time::Duration;

use super::heap::Data;
use super::log;
use super::result::*;
use super::state::{State, R};
use crate::clock::fault_time_s;
use crate::config::{BitFlip, Faults, Gpu, Timing};

/// What has happened to a GPU so far, for its faults that happen once.
#[derive(Debug, Default)]
pub struct Happened {
    /// The "off the bus" line was logged.
    pub lost_logged: std::cell::Cell<bool>,
    /// The asynchronous error (ECC or XID) was delivered.
    pub async_delivered: bool,
    /// The hanging kernel was launched.
    pub hung: bool,
}

/// PCIe payload rate per lane of generation `g`, in GB/s (2.5, 5, 8, 16
/// and 32 GT/s; 8b/10b encoding up to Gen2, 128b/130b after).
fn lane_gbps(g: u32) -> f64 {
    match g {
        1 => 0.25,
        2 => 0.5,
        3 => 0.985,
        4 => 1.969,
        _ => 3.938,
    }
}

/// NVLinks per GPU (NVLink 4, H100 SXM).
const NVLINKS: u32 = 18;

/// The timing a GPU with these faults shows: under `clocks_low` every
/// throughput of the SMs (fp32, fp64, tensor, integer) scales by the factor
/// (memory bandwidth does not: the memory clock is not the SM clock); a
/// PCIe link trained at generation G and width W moves `pcie_gbps` x (G's
/// lane rate / Gen5's) x (W / 16); NVLinks down take their share of
/// `peer_gbps` with them.
pub fn effective_timing(g: &Gpu) -> Timing {
    let f = &g.faults;
    let mut t = g.timing.clone();
    if let Some(c) = f.clocks_low {
        t.fp32_tflops *= c;
        t.fp64_tflops *= c;
        t.tensor_tflops *= c;
        t.int_tops *= c;
    }
    let gen = f.pcie_gen.unwrap_or(5);
    let width = f.pcie_width.unwrap_or(16);
    t.pcie_gbps *= lane_gbps(gen) / lane_gbps(5) * f64::from(width) / 16.0;
    let down = f.nvlink_down.len() as u32;
    if down > 0 {
        let up = NVLINKS.saturating_sub(down).max(1);
        t.peer_gbps *= f64::from(up) / f64::from(NVLINKS);
    }
    t
}

/// When GPU `f` fell off the bus, if it has by `now`.
fn lost_at(f: &Faults, now: f64) -> Option<f64> {
    let xid = (f.xid == Some(79)).then_some(f.xid_at_s);
    [f.lost_at_s, xid]
        .into_iter()
        .flatten()
        .filter(|t| *t <= now)
        .reduce(f64::min)
}

/// The asynchronous error GPU `f` has raised by `now`: when, the code a
/// synchronisation returns, and why.
fn async_error(f: &Faults, now: f64) -> Option<(f64, CUresult, String)> {
    let mut out: Vec<(f64, CUresult, String)> = Vec::new();
    if let Some(t) = f.ecc_uncorrectable_at_s.filter(|t| *t <= now) {
        out.push((
            t,
            CUDA_ERROR_ECC_UNCORRECTABLE,
            format!("an uncorrectable ECC error in device memory at {t:.1} s (faults.ecc_uncorrectable_at_s)"),
        ));
    }
    if let Some(x) = f.xid.filter(|_| f.xid_at_s <= now) {
        let code = match x {
            48 | 94 | 95 => Some(CUDA_ERROR_ECC_UNCORRECTABLE),
            13 | 43 => Some(CUDA_ERROR_LAUNCH_FAILED),
            31 => Some(CUDA_ERROR_ILLEGAL_ADDRESS),
            _ => None,
        };
        if let Some(code) = code {
            out.push((
                f.xid_at_s,
                code,
                format!("XID {x} at {:.1} s (faults.xid)", f.xid_at_s),
            ));
        }
    }
    out.into_iter().min_by(|a, b| a.0.total_cmp(&b.0))
}

impl State {
    /// Whether GPU `d` has fallen off the bus; the first time a call finds
    /// it so, one log line names the call.
    pub fn lost(&self, d: usize, call: &str) -> bool {
        let Some(dev) = self.devices.get(d) else {
            return false;
        };
        let Some(t) = lost_at(&dev.config.faults, fault_time_s()) else {
            return false;
        };
        if !dev.happened.lost_logged.replace(true) {
            log(&format!(
                "{}: {call}: GPU {d} fell off the bus at {t:.1} s (faults.lost_at_s or XID 79): this call and every later one on it fail",
                name(CUDA_ERROR_LAUNCH_FAILED)
            ));
        }
        true
    }

    /// A synchronisation on context `ctx`: delivers GPU's asynchronous
    /// error, once it has happened, poisoning every context of the GPU.
    pub fn sync_point(&mut self, ctx: u64, call: &str) -> R<()> {
        let d = self.ctx_device(ctx);
        let Some(dev) = self.devices.get(d) else {
            return Ok(());
        };
        if dev.happened.async_delivered {
            return Ok(());
        }
        let Some((_, code, why)) = async_error(&dev.config.faults, fault_time_s()) else {
            return Ok(());
        };
        self.devices[d].happened.async_delivered = true;
        let ids: Vec<u64> = self
            .contexts
            .iter()
            .filter(|(_, c)| c.device == d)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.poison(id, code);
        }
        super::state::refuse(
            code,
            format!("{call}: GPU {d}: {why}; every context of the GPU is unusable from now on"),
        )
    }

    /// Whether kernel `kernel`, launched now on GPU `d`, is the one that
    /// never finishes (at most one per GPU).
    pub fn hangs_now(&mut self, d: usize, kernel: &str) -> bool {
        let Some(dev) = self.devices.get_mut(d) else {
            return false;
        };
        let f = &dev.config.faults;
        let due = f.hang_at_s.is_some_and(|t| fault_time_s() >= t)
            && f.hang_kernel
                .as_ref()
                .is_none_or(|k| kernel.contains(k.as_str()));
        if !due || dev.happened.hung {
            return false;
        }
        dev.happened.hung = true;
        log(&format!(
            "GPU {d}: {kernel} launched at {:.1} s never finishes (faults.hang_at_s): its stream never completes and nothing queued behind it runs",
            fault_time_s()
        ));
        true
    }
}

/// The calling thread waits for work that never finishes: the state's lock
/// is released first, so that the node's other GPUs carry on.
pub fn block_forever(s: MutexGuard<'static, State>, call: &str, what: &str) -> ! {
    drop(s);
    log(&format!(
        "{call}: waits for {what}, which never finishes (faults.hang_at_s): this thread blocks for good"
    ));
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// A device's weak bit and how often it was written.
struct WeakBit {
    cfg: BitFlip,
    writes: AtomicU64,
    flips: AtomicU64,
}

static WEAK: OnceLock<Vec<Option<WeakBit>>> = OnceLock::new();

/// Installs the weak bits of the node's CUDA devices (once, at cuInit).
pub fn install(gpus: &[Gpu]) {
    let _ = WEAK.set(
        gpus.iter()
            .map(|g| {
                g.faults.bitflip.clone().map(|cfg| WeakBit {
                    cfg,
                    writes: AtomicU64::new(0),
                    flips: AtomicU64::new(0),
                })
            })
            .collect(),
    );
}

/// After a store of `[off, off+len)` into `data`: if the device's weak bit
/// lies in that range, the write to it counts, and from its `nth_write`
/// (and `at_s`) on it is stored flipped.
pub fn stored(data: &mut Data, off: usize, len: usize) {
    let Some(Some(w)) = WEAK.get().and_then(|v| v.get(data.device)) else {
        return;
    };
    let Some(p) = data.phys else {
        return;
    };
    let cell = w.cfg.offset;
    let (lo, hi) = (p + off as u64, p + (off + len) as u64);
    if cell < lo || cell >= hi {
        return;
    }
    let n = w.writes.fetch_add(1, Ordering::Relaxed) + 1;
    if n < w.cfg.nth_write || fault_time_s() < w.cfg.at_s {
        return;
    }
    if w.cfg.once && w.flips.load(Ordering::Relaxed) > 0 {
        return;
    }
    let k = w.flips.fetch_add(1, Ordering::Relaxed) + 1;
    let i = (cell - p) as usize;
    if let Some(b) = data.bytes.get_mut(i) {
        *b ^= 1 << w.cfg.bit;
    }
    if k <= 3 || k.is_power_of_two() {
        log(&format!(
            "GPU {}: bit {} of physical byte {cell:#x} (byte {i} of an allocation) stored flipped: write {n} to it, flip {k} (faults.bitflip)",
            data.device, w.cfg.bit
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_link_and_low_clocks_scale_the_model() {
        let mut g = Gpu::default();
        g.faults.clocks_low = Some(0.5);
        g.faults.pcie_gen = Some(4);
        g.faults.pcie_width = Some(8);
        g.faults.nvlink_down = vec![0, 1, 2, 3, 4, 5, 6, 7, 8];
        let t = effective_timing(&g);
        let base = Timing::default();
        assert_eq!(t.fp32_tflops, base.fp32_tflops * 0.5);
        assert_eq!(t.tensor_tflops, base.tensor_tflops * 0.5);
        assert_eq!(t.hbm_gbps, base.hbm_gbps);
        let pcie = t.pcie_gbps / base.pcie_gbps;
        assert!((pcie - 0.25).abs() < 0.001, "{pcie}");
        assert_eq!(t.peer_gbps, base.peer_gbps * 0.5);
        assert_eq!(effective_timing(&Gpu::default()), base);
    }

    #[test]
    fn xids_surface_as_the_errors_they_cause() {
        let mut f = Faults {
            xid: Some(79),
            xid_at_s: 2.0,
            ..Faults::default()
        };
        assert_eq!(lost_at(&f, 1.0), None);
        assert_eq!(lost_at(&f, 2.5), Some(2.0));
        assert!(async_error(&f, 3.0).is_none());
        f.xid = Some(48);
        assert_eq!(
            async_error(&f, 3.0).map(|e| e.1),
            Some(CUDA_ERROR_ECC_UNCORRECTABLE)
        );
        f.xid = Some(31);
        assert_eq!(
            async_error(&f, 3.0).map(|e| e.1),
            Some(CUDA_ERROR_ILLEGAL_ADDRESS)
        );
        f.xid = Some(63);
        assert!(async_error(&f, 3.0).is_none());
        f.ecc_uncorrectable_at_s = Some(1.0);
        assert_eq!(
            async_error(&f, 3.0).map(|e| e.1),
            Some(CUDA_ERROR_ECC_UNCORRECTABLE)
        );
    }
}

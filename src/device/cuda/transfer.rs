//! [`TransferOp`] and [`PeerOp`] on a GPU: host/device copies through pinned
//! (page-locked, not write-combined) host memory, and copies to peer GPUs
//! with `cuMemcpyPeerAsync` after `cuCtxEnablePeerAccess`.
//!
//! Timing: CUDA events on the device's stream around the copy alone.
//!
//! Verification (`crate::workload::transfer`): a host-to-device or peer
//! copy is checked by `kiln_checksum_u64` over the destination (on the
//! destination device for host copies; a peer's buffer is first copied back
//! into a local scratch buffer, untimed) against the checksum of the source
//! pattern computed on the host once; on a mismatch the buffer is read back
//! and every word compared, to count and locate the bad words. A
//! device-to-host copy is checked word by word on the host.

use std::sync::Arc;

use cudarc::driver::{
    sys, CudaContext, CudaSlice, CudaStream, DevicePtr, DevicePtrMut, PinnedHostSlice,
};
use rayon::prelude::*;

use crate::device::cuda::gpu::{describe, Func, Gpu, Handle, Timer};
use crate::device::cuda::kernels::{grid, Kernel, BLOCK};
use crate::device::cuda::matmul::device_checksum;
use crate::device::{CopyCheck, DeviceResult, Direction, PeerOp, Seconds, TransferOp};
use crate::workload::transfer;

/// Pinned host memory of `words` u64, filled with `fill(i)`.
fn pinned(
    h: &Handle,
    words: usize,
    what: &str,
    fill: impl Fn(u64) -> u64 + Sync,
) -> DeviceResult<PinnedHostSlice<u64>> {
    h.check()?;
    let what = format!(
        "allocating {} of pinned host memory for {what}",
        transfer::size_text(words * 8)
    );
    // SAFETY: flags 0 is plain page-locked memory; it is written below
    // before anything reads it.
    let mut p = unsafe { h.ctx.alloc_pinned_with_flags::<u64>(words.max(1), 0) }
        .map_err(|e| h.fail(&what, e))?;
    let s = p.as_mut_slice().map_err(|e| h.fail(&what, e))?;
    s.par_chunks_mut(1 << 16).enumerate().for_each(|(c, ch)| {
        for (k, w) in ch.iter_mut().enumerate() {
            *w = fill(((c << 16) + k) as u64);
        }
    });
    Ok(p)
}

/// Checks copies of one source pattern on the device: the checksum kernel,
/// its partials and the checksum a correct copy has.
struct Verifier {
    f: Func,
    partial: CudaSlice<u64>,
    grid: u32,
    words: usize,
    seed: u64,
    stream: u64,
    expected: u64,
}

impl Verifier {
    /// For copies of `words` words of `transfer::word(seed, stream, _)`.
    fn new(gpu: &mut Gpu, words: usize, seed: u64, stream: u64) -> DeviceResult<Verifier> {
        let f = gpu.function(Kernel::ChecksumU64)?;
        let h = &gpu.h;
        let grid = grid(h.sms, words as u64, 4 * u64::from(BLOCK));
        Ok(Verifier {
            f,
            partial: h.alloc::<u64>(grid as usize, "checksum partials")?,
            grid,
            words,
            seed,
            stream,
            expected: transfer::expected_checksum(seed, stream, words),
        })
    }

    /// Checks `buf`: by checksum, then word by word when the checksum
    /// differs, to count and locate the bad words.
    fn check(&self, h: &Handle, buf: &CudaSlice<u64>) -> DeviceResult<CopyCheck> {
        let len = self.words as u64;
        let sum = device_checksum(h, &self.f, buf, len, &self.partial, self.grid)?;
        if sum == self.expected {
            return Ok(CopyCheck {
                checked: len,
                errors: 0,
                first_bad: None,
            });
        }
        let data = h.download(buf, self.words, "a copy whose checksum differs")?;
        let mut c = transfer::check_words(self.seed, self.stream, &data);
        if c.errors == 0 {
            // The words read back are right but the checksum was not: the
            // device computed it wrongly, which is corruption all the same.
            c.errors = 1;
        }
        Ok(c)
    }
}

/// Host/device copies on one GPU.
pub(crate) struct CudaTransfer {
    h: Handle,
    seed: u64,
    words: usize,
    host_src: PinnedHostSlice<u64>,
    host_dst: PinnedHostSlice<u64>,
    dev_src: CudaSlice<u64>,
    dev_dst: CudaSlice<u64>,
    h2d: Verifier,
    timer: Timer,
}

impl CudaTransfer {
    pub fn new(gpu: &mut Gpu, words: usize, seed: u64) -> DeviceResult<CudaTransfer> {
        let h2d = Verifier::new(gpu, words, seed, transfer::H2D_STREAM)?;
        let h = gpu.h.clone();
        let host_src = pinned(&h, words, "the host-to-device source", |i| {
            transfer::word(seed, transfer::H2D_STREAM, i)
        })?;
        let host_dst = pinned(&h, words, "the device-to-host destination", |_| 0)?;
        let d2h: Vec<u64> = (0..words as u64)
            .into_par_iter()
            .map(|i| transfer::word(seed, transfer::D2H_STREAM, i))
            .collect();
        let dev_src = h.upload(&d2h, "the device-to-host source")?;
        drop(d2h);
        let dev_dst = h.alloc::<u64>(words, "the host-to-device destination")?;
        let timer = h.timer()?;
        h.sync("preparing the transfer buffers")?;
        Ok(CudaTransfer {
            h,
            seed,
            words,
            host_src,
            host_dst,
            dev_src,
            dev_dst,
            h2d,
            timer,
        })
    }
}

impl TransferOp for CudaTransfer {
    fn words(&self) -> usize {
        self.words
    }

    fn run(&mut self, dir: Direction) -> DeviceResult<Seconds> {
        let h = &self.h;
        h.check()?;
        let what = format!("the {} copy", dir.name());
        let (host_src, host_dst) = (&self.host_src, &mut self.host_dst);
        let (dev_src, dev_dst) = (&self.dev_src, &mut self.dev_dst);
        self.timer.time(h, &what, || {
            let r = match dir {
                Direction::HostToDevice => h.stream.memcpy_htod(host_src, dev_dst),
                Direction::DeviceToHost => h.stream.memcpy_dtoh(dev_src, host_dst),
            };
            r.map_err(|e| h.fail(&format!("queueing {what}"), e))
        })
    }

    fn check(&mut self, dir: Direction) -> DeviceResult<CopyCheck> {
        let h = &self.h;
        match dir {
            Direction::HostToDevice => self.h2d.check(h, &self.dev_dst),
            Direction::DeviceToHost => {
                h.sync("the device-to-host copy")?;
                let data = self
                    .host_dst
                    .as_slice()
                    .map_err(|e| h.fail("reading the device-to-host copy", e))?;
                Ok(transfer::check_words(self.seed, transfer::D2H_STREAM, data))
            }
        }
    }
}

/// A peer this GPU can copy to directly.
struct Target {
    index: usize,
    ctx: Arc<CudaContext>,
    /// Keeps the stream the destination was allocated on alive.
    _stream: Arc<CudaStream>,
    dst: CudaSlice<u64>,
}

/// Copies from one GPU to its peers.
pub(crate) struct CudaPeer {
    h: Handle,
    words: usize,
    src: CudaSlice<u64>,
    scratch: CudaSlice<u64>,
    targets: Vec<Target>,
    unreachable: Vec<(usize, String)>,
    verifier: Verifier,
    timer: Timer,
}

/// Whether `from` can read and write `to`'s memory directly.
fn can_access(h: &Handle, to: usize) -> DeviceResult<bool> {
    let what = format!("asking whether GPU {to} is a peer");
    let peer = cudarc::driver::result::device::get(to as i32).map_err(|e| h.fail(&what, e))?;
    let mut can = 0i32;
    // SAFETY: both handles come from cuDeviceGet; `can` is a live int.
    unsafe { sys::cuDeviceCanAccessPeer(&mut can, h.ctx.cu_device(), peer) }
        .result()
        .map_err(|e| h.fail(&what, e))?;
    Ok(can != 0)
}

impl CudaPeer {
    /// `peers` are kiln indices, which are CUDA ordinals.
    pub fn new(gpu: &mut Gpu, words: usize, seed: u64, peers: &[usize]) -> DeviceResult<CudaPeer> {
        let verifier = Verifier::new(gpu, words, seed, transfer::P2P_STREAM)?;
        let h = gpu.h.clone();
        let pattern: Vec<u64> = (0..words as u64)
            .into_par_iter()
            .map(|i| transfer::word(seed, transfer::P2P_STREAM, i))
            .collect();
        let src = h.upload(&pattern, "the peer-copy source")?;
        drop(pattern);
        let scratch = h.alloc::<u64>(words, "the peer-copy check buffer")?;
        let mut targets = Vec::new();
        let mut unreachable = Vec::new();
        for &t in peers {
            if !can_access(&h, t)? {
                unreachable.push((
                    t,
                    format!("{} cannot access GPU {t} directly (cuDeviceCanAccessPeer = 0: no NVLink or PCIe peer path)", h.label),
                ));
                continue;
            }
            let what = format!("preparing copies to GPU {t}");
            let fail = |e| h.fail(&what, e);
            let ctx = CudaContext::new(t).map_err(fail)?;
            // SAFETY: the destination is allocated below, then synchronised;
            // after that only this device's stream touches it (copies in,
            // copies back), in program order. Without tracking, cudarc
            // records no event of the peer's context on this device's
            // stream, which CUDA would refuse (CUDA_ERROR_INVALID_HANDLE).
            unsafe { ctx.disable_event_tracking() };
            h.ctx.bind_to_thread().map_err(fail)?;
            // SAFETY: the current context is this GPU's; the peer context is
            // live. Already enabled (by an earlier run in this process) is
            // fine.
            let r = unsafe { sys::cuCtxEnablePeerAccess(ctx.cu_ctx(), 0) };
            if r != sys::CUresult::CUDA_SUCCESS
                && r != sys::CUresult::CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED
            {
                unreachable.push((
                    t,
                    format!(
                        "enabling peer access from {} failed: {}",
                        h.label,
                        describe(cudarc::driver::result::DriverError(r))
                    ),
                ));
                continue;
            }
            let stream = ctx.new_stream().map_err(fail)?;
            let dst = stream.alloc_zeros::<u64>(words.max(1)).map_err(fail)?;
            stream.synchronize().map_err(fail)?;
            targets.push(Target {
                index: t,
                ctx,
                _stream: stream,
                dst,
            });
        }
        h.ctx
            .bind_to_thread()
            .map_err(|e| h.fail("binding the context", e))?;
        let timer = h.timer()?;
        h.sync("preparing the peer-copy buffers")?;
        Ok(CudaPeer {
            h,
            words,
            src,
            scratch,
            targets,
            unreachable,
            verifier,
            timer,
        })
    }
}

/// Queues a copy of `bytes` between two contexts on `stream`.
fn peer_copy(
    stream: &Arc<CudaStream>,
    dst_ctx: &CudaContext,
    dst: &mut CudaSlice<u64>,
    src_ctx: &CudaContext,
    src: &CudaSlice<u64>,
    bytes: usize,
) -> Result<(), cudarc::driver::DriverError> {
    let (s, _rs) = src.device_ptr(stream);
    let (d, _rd) = dst.device_ptr_mut(stream);
    // SAFETY: both buffers are live and hold at least `bytes` bytes; the
    // contexts own them; the stream belongs to the current context.
    unsafe {
        cudarc::driver::result::memcpy_peer_async(
            dst_ctx.cu_ctx(),
            d,
            src_ctx.cu_ctx(),
            s,
            bytes,
            stream.cu_stream(),
        )
    }
}

impl PeerOp for CudaPeer {
    fn targets(&self) -> (Vec<usize>, Vec<(usize, String)>) {
        (
            self.targets.iter().map(|t| t.index).collect(),
            self.unreachable.clone(),
        )
    }

    fn run(&mut self, target: usize) -> DeviceResult<Seconds> {
        self.h.check()?;
        let bytes = self.words * 8;
        let h = self.h.clone();
        let src_ctx = h.ctx.clone();
        let what = format!("the copy to GPU {target}");
        let src = &self.src;
        let timer = &self.timer;
        let t = self
            .targets
            .iter_mut()
            .find(|t| t.index == target)
            .ok_or_else(|| h.failed(&what, "not a prepared peer"))?;
        timer.time(&h, &what, || {
            peer_copy(&h.stream, &t.ctx, &mut t.dst, &src_ctx, src, bytes)
                .map_err(|e| h.fail(&format!("queueing {what}"), e))
        })
    }

    fn check(&mut self, target: usize) -> DeviceResult<CopyCheck> {
        let bytes = self.words * 8;
        let h = &self.h;
        let what = format!("reading back the copy on GPU {target}");
        let t = self
            .targets
            .iter()
            .find(|t| t.index == target)
            .ok_or_else(|| h.failed(&what, "not a prepared peer"))?;
        peer_copy(&h.stream, &h.ctx, &mut self.scratch, &t.ctx, &t.dst, bytes)
            .map_err(|e| h.fail(&what, e))?;
        self.verifier.check(h, &self.scratch)
    }
}

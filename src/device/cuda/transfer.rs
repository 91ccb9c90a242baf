//! [`TransferOp`] and [`PeerOp`] on a GPU: host/device copies through pinned
//! (page-locked, not write-combined) host memory, and copies to peer GPUs
//! with `cuMemcpyPeerAsync` after `cuCtxEnablePeerAccess`.
//!
//! Timing: CUDA events on the device's stream around the copy alone.
//!
//! Verification (the source pattern of `crate::reference::transfer`): a
//! host-to-device or peer copy is checked by `kiln_checksum_u64` over the
//! destination (on the destination device for host copies; a peer's buffer
//! is first copied back into a local scratch buffer, untimed) against the
//! checksum of the source pattern computed on the host once; on a mismatch
//! the buffer is read back and every word compared, to count and locate the
//! bad words. A device-to-host copy is checked word by word on the host.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::driver::{
    sys, CudaContext, CudaSlice, CudaStream, DevicePtr, DevicePtrMut, PinnedHostSlice,
};
use rayon::prelude::*;

use crate::device::cuda::gpu::{describe, Func, Gpu, Handle, Timer};
use crate::device::cuda::kernels::{grid, Kernel, BLOCK};
use crate::device::cuda::matmul::device_checksum;
use crate::device::{DeviceResult, Direction, PeerLink, PeerOp, Seconds, TransferOp};
use crate::reference::transfer::{self, CopyCheck};

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
        self.timer.time_each(h, &what, || {
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

/// The primary context of every GPU that has been a peer in this process,
/// retained until the process ends: a peer's context must outlive every
/// buffer and copy that names it, and releasing the last reference would
/// destroy that GPU's context (and all its memory) under its own device.
fn peer_context(t: usize) -> Result<Arc<CudaContext>, cudarc::driver::DriverError> {
    static HELD: OnceLock<Mutex<HashMap<usize, Arc<CudaContext>>>> = OnceLock::new();
    let mut held = HELD
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(c) = held.get(&t) {
        return Ok(c.clone());
    }
    let c = CudaContext::new(t)?;
    held.insert(t, c.clone());
    Ok(c)
}

/// A copy destination in a peer's memory, from `cuMemAlloc`: peer access
/// (cuCtxEnablePeerAccess) covers such memory, while memory from the
/// stream-ordered pool (cudarc's allocations on a GPU that has pools) would
/// need cuMemPoolSetAccess, and without it a driver may copy through a
/// slower path, measuring `p2p` low.
///
/// Freed explicitly ([`PeerBuffer::release`]) with its own context bound,
/// never by whatever context happens to be current.
struct PeerBuffer {
    ctx: Arc<CudaContext>,
    ptr: sys::CUdeviceptr,
}

impl PeerBuffer {
    /// `bytes` of the peer's memory, zeroed. Leaves the peer's context
    /// current.
    fn new(ctx: Arc<CudaContext>, bytes: usize) -> Result<PeerBuffer, cudarc::driver::DriverError> {
        ctx.bind_to_thread()?;
        // SAFETY: the peer's context is current; the pointer is freed once,
        // by `release`, with that context bound again.
        let ptr = unsafe { cudarc::driver::result::malloc_sync(bytes.max(8))? };
        let buf = PeerBuffer { ctx, ptr };
        // SAFETY: `ptr` holds `bytes.max(8)` bytes.
        unsafe { cudarc::driver::result::memset_d8_sync(buf.ptr, 0, bytes.max(8))? };
        Ok(buf)
    }

    /// Frees the memory with its own context bound (which stays current:
    /// the caller binds its own again).
    fn release(&mut self) -> Result<(), cudarc::driver::DriverError> {
        if self.ptr == 0 {
            return Ok(());
        }
        self.ctx.bind_to_thread()?;
        let ptr = std::mem::replace(&mut self.ptr, 0);
        // SAFETY: allocated by `new` in this context, freed exactly once.
        unsafe { cudarc::driver::result::free_sync(ptr) }
    }
}

impl Drop for PeerBuffer {
    fn drop(&mut self) {
        // Normally released already by CudaPeer's Drop; this is the
        // safety net for an early return.
        let _ = self.release();
    }
}

/// A peer this GPU can copy to directly.
struct Target {
    index: usize,
    dst: PeerBuffer,
    /// What carries the copies, as NVML tells.
    link: PeerLink,
}

/// The PCI bus id of a CUDA device, as kiln writes bus ids.
fn bus_id_of(dev: sys::CUdevice) -> Option<String> {
    use cudarc::driver::sys::CUdevice_attribute as A;
    let attr = |a: A| {
        // SAFETY: `dev` comes from cuDeviceGet or a live context.
        unsafe { cudarc::driver::result::device::get_attribute(dev, a) }
            .ok()
            .and_then(|v| u32::try_from(v).ok())
    };
    Some(super::identity::format_bus_id(
        attr(A::CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID)?,
        attr(A::CU_DEVICE_ATTRIBUTE_PCI_BUS_ID)?,
        attr(A::CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID)?,
    ))
}

/// What carries copies from the device `from` to the device `to`: NVLink
/// when NVML's P2P status over NVLink is OK for the pair, PCIe when it is
/// not (the pair has direct access, so it is a PCIe peer path), unknown
/// without NVML.
fn link_between(from: sys::CUdevice, to: sys::CUdevice) -> PeerLink {
    let (Some(a), Some(b)) = (bus_id_of(from), bus_id_of(to)) else {
        return PeerLink::Unknown;
    };
    match crate::telemetry::nvml::nvlink_p2p(&a, &b) {
        Some(true) => PeerLink::Nvlink,
        Some(false) => PeerLink::Pcie,
        None => PeerLink::Unknown,
    }
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

impl Drop for CudaPeer {
    /// Frees every peer's buffer with that peer's context bound, then binds
    /// this GPU's context again, so that the rest of this op (freed by
    /// cudarc, which does not bind a context first) and every later call on
    /// this thread run in the right context.
    fn drop(&mut self) {
        for t in &mut self.targets {
            let _ = t.dst.release();
        }
        let _ = self.h.ctx.bind_to_thread();
    }
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
        // Whatever happens to the peers, this GPU's context is current again
        // afterwards (before `src` and `scratch` could be dropped).
        let prepared = prepare_targets(&h, words, peers);
        h.ctx
            .bind_to_thread()
            .map_err(|e| h.fail("binding the context", e))?;
        let (targets, unreachable) = prepared?;
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

/// Enables peer access to each of `peers` that this GPU can reach and
/// allocates its destination buffer; the others are listed with why. May
/// leave a peer's context current.
#[allow(clippy::type_complexity)]
fn prepare_targets(
    h: &Handle,
    words: usize,
    peers: &[usize],
) -> DeviceResult<(Vec<Target>, Vec<(usize, String)>)> {
    let mut targets = Vec::new();
    let mut unreachable = Vec::new();
    for &t in peers {
        if !can_access(h, t)? {
            unreachable.push((
                t,
                format!("{} cannot access GPU {t} directly (cuDeviceCanAccessPeer = 0: no NVLink or PCIe peer path)", h.label),
            ));
            continue;
        }
        let what = format!("preparing copies to GPU {t}");
        let fail = |e| h.fail(&what, e);
        // A peer whose context cannot be made (busy in another process, or
        // itself failing) is that peer's problem, not this GPU's: skip it
        // with the reason.
        let ctx = match peer_context(t) {
            Ok(c) => c,
            Err(e) => {
                unreachable.push((
                    t,
                    format!(
                        "GPU {t}'s context could not be created for the copies from {}: {}",
                        h.label,
                        describe(e)
                    ),
                ));
                continue;
            }
        };
        h.ctx.bind_to_thread().map_err(fail)?;
        // SAFETY: the current context is this GPU's; the peer context is
        // live (held for the whole process). Already enabled (by an earlier
        // op in this process) is fine.
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
        let link = link_between(h.ctx.cu_device(), ctx.cu_device());
        let dst = PeerBuffer::new(ctx, words * 8).map_err(fail)?;
        targets.push(Target {
            index: t,
            dst,
            link,
        });
    }
    Ok((targets, unreachable))
}

/// Queues a copy of `bytes` between two contexts on `stream`.
fn peer_copy(
    stream: &Arc<CudaStream>,
    dst_ctx: &CudaContext,
    dst: sys::CUdeviceptr,
    src_ctx: &CudaContext,
    src: sys::CUdeviceptr,
    bytes: usize,
) -> Result<(), cudarc::driver::DriverError> {
    // SAFETY: both buffers are live and hold at least `bytes` bytes; the
    // contexts own them; the stream belongs to the current context.
    unsafe {
        cudarc::driver::result::memcpy_peer_async(
            dst_ctx.cu_ctx(),
            dst,
            src_ctx.cu_ctx(),
            src,
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
        let (s, _guard) = src.device_ptr(&h.stream);
        timer.time_each(&h, &what, || {
            peer_copy(&h.stream, &t.dst.ctx, t.dst.ptr, &src_ctx, s, bytes)
                .map_err(|e| h.fail(&format!("queueing {what}"), e))
        })
    }

    fn link(&self, target: usize) -> PeerLink {
        self.targets
            .iter()
            .find(|t| t.index == target)
            .map_or(PeerLink::Unknown, |t| t.link)
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
        {
            let (d, _guard) = self.scratch.device_ptr_mut(&h.stream);
            peer_copy(&h.stream, &h.ctx, d, &t.dst.ctx, t.dst.ptr, bytes)
                .map_err(|e| h.fail(&what, e))?;
        }
        self.verifier.check(h, &self.scratch)
    }
}

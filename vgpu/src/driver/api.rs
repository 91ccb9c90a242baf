//! The exported driver API functions.
//!
//! Each is a thin `extern "C"` wrapper: it catches any panic (which must
//! never unwind into C callers; it becomes CUDA_ERROR_UNKNOWN with a log
//! line), checks the output pointers and calls into [`super::state`].
//! Signatures follow NVIDIA's CUDA driver API reference; handles are opaque
//! pointers, `CUdeviceptr` is a 64-bit integer.

#![allow(non_snake_case)]
#![allow(clippy::missing_safety_doc)]
#![allow(clippy::too_many_arguments)]

use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use super::faults::block_forever;
use super::heap::{Kind, Snapshot};
use super::log;
use super::result::*;
use super::state::{self, handle, heap, refuse, state, LaunchMemory, Tag, R};
use crate::ptx;

/// The CUDA version this driver reports (12.8), and the newest PTX ISA its
/// JIT accepts (8.7, as a 12.8 driver).
pub const DRIVER_VERSION: c_int = 12080;
pub const MAX_PTX_ISA: (u32, u32) = (8, 7);

type CUdeviceptr = u64;
type Handle = *mut c_void;

/// Runs `f`, turning a panic into CUDA_ERROR_UNKNOWN.
fn guard(call: &str, f: impl FnOnce() -> R<()>) -> CUresult {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => CUDA_SUCCESS,
        Ok(Err(code)) => code,
        Err(_) => {
            log(&format!("{call}: internal error (panic in vgpu)"));
            CUDA_ERROR_UNKNOWN
        }
    }
}

/// Writes `v` through an output pointer, refusing a null one.
unsafe fn put<T>(call: &str, p: *mut T, v: T) -> R<()> {
    if p.is_null() {
        return refuse(
            CUDA_ERROR_INVALID_VALUE,
            format!("{call}: null output pointer"),
        );
    }
    p.write(v);
    Ok(())
}

fn h(p: Handle) -> u64 {
    p as u64
}

fn ptr(v: u64) -> Handle {
    v as Handle
}

// ---- initialisation, version, errors -------------------------------------

#[no_mangle]
pub unsafe extern "C" fn cuInit(flags: c_uint) -> CUresult {
    guard("cuInit", || state::init(flags))
}

#[no_mangle]
pub unsafe extern "C" fn cuDriverGetVersion(v: *mut c_int) -> CUresult {
    guard("cuDriverGetVersion", || {
        put("cuDriverGetVersion", v, DRIVER_VERSION)
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuGetErrorName(code: CUresult, out: *mut *const c_char) -> CUresult {
    guard("cuGetErrorName", || {
        match TABLE.iter().find(|t| t.0 == code) {
            Some((_, n, _)) => put("cuGetErrorName", out, n.as_ptr().cast()),
            None => {
                let _ = put("cuGetErrorName", out, std::ptr::null());
                Err(CUDA_ERROR_INVALID_VALUE)
            }
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuGetErrorString(code: CUresult, out: *mut *const c_char) -> CUresult {
    guard("cuGetErrorString", || {
        match TABLE.iter().find(|t| t.0 == code) {
            Some((_, _, s)) => put("cuGetErrorString", out, s.as_ptr().cast()),
            None => {
                let _ = put("cuGetErrorString", out, std::ptr::null());
                Err(CUDA_ERROR_INVALID_VALUE)
            }
        }
    })
}

// ---- devices ---------------------------------------------------------------

#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetCount(n: *mut c_int) -> CUresult {
    guard("cuDeviceGetCount", || {
        let s = state()?;
        put("cuDeviceGetCount", n, s.devices.len() as c_int)
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuDeviceGet(dev: *mut c_int, ordinal: c_int) -> CUresult {
    guard("cuDeviceGet", || {
        let s = state()?;
        s.device(ordinal)?;
        put("cuDeviceGet", dev, ordinal)
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetName(name: *mut c_char, len: c_int, dev: c_int) -> CUresult {
    guard("cuDeviceGetName", || {
        let s = state()?;
        let d = s.device(dev)?;
        if name.is_null() || len <= 0 {
            return refuse(CUDA_ERROR_INVALID_VALUE, "cuDeviceGetName: no buffer");
        }
        let bytes = d.config.name.as_bytes();
        let n = bytes.len().min(len as usize - 1);
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), name.cast::<u8>(), n);
        *name.add(n) = 0;
        Ok(())
    })
}

fn uuid_of(s: &state::State, dev: c_int) -> R<[u8; 16]> {
    let d = s.device(dev)?;
    crate::config::parse_uuid(&d.config.uuid).ok_or(CUDA_ERROR_UNKNOWN)
}

#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetUuid(out: *mut [u8; 16], dev: c_int) -> CUresult {
    guard("cuDeviceGetUuid", || {
        let s = state()?;
        put("cuDeviceGetUuid", out, uuid_of(&s, dev)?)
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetUuid_v2(out: *mut [u8; 16], dev: c_int) -> CUresult {
    cuDeviceGetUuid(out, dev)
}

#[no_mangle]
pub unsafe extern "C" fn cuDeviceTotalMem_v2(bytes: *mut usize, dev: c_int) -> CUresult {
    guard("cuDeviceTotalMem_v2", || {
        let s = state()?;
        let d = s.device(dev)?;
        put(
            "cuDeviceTotalMem_v2",
            bytes,
            (d.config.memory_mib << 20) as usize,
        )
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetPCIBusId(out: *mut c_char, len: c_int, dev: c_int) -> CUresult {
    guard("cuDeviceGetPCIBusId", || {
        let s = state()?;
        let d = s.device(dev)?;
        // The driver API writes the domain with 8 digits as NVML does.
        let id = d.config.pci_bus_id.to_ascii_uppercase();
        if out.is_null() || (len as usize) < id.len() + 1 {
            return refuse(
                CUDA_ERROR_INVALID_VALUE,
                "cuDeviceGetPCIBusId: buffer too small",
            );
        }
        std::ptr::copy_nonoverlapping(id.as_ptr(), out.cast::<u8>(), id.len());
        *out.add(id.len()) = 0;
        Ok(())
    })
}

/// The value of device attribute `a` (the `CUdevice_attribute` numbers of
/// the driver API reference), or None for one the model does not define.
fn attribute(g: &crate::config::Gpu, a: c_int) -> Option<c_int> {
    let (domain, bus, device, _) = crate::config::parse_bus_id(&g.pci_bus_id)?;
    let [major, minor] = g.compute_capability;
    Some(match a {
        1 => 1024,             // MAX_THREADS_PER_BLOCK
        2 | 3 => 1024,         // MAX_BLOCK_DIM_X, Y
        4 => 64,               // MAX_BLOCK_DIM_Z
        5 => i32::MAX,         // MAX_GRID_DIM_X
        6 | 7 => 65535,        // MAX_GRID_DIM_Y, Z
        8 => 49152,            // MAX_SHARED_MEMORY_PER_BLOCK
        9 => 65536,            // TOTAL_CONSTANT_MEMORY
        10 => 32,              // WARP_SIZE
        12 => 65536,           // MAX_REGISTERS_PER_BLOCK
        13 => 1_980_000,       // CLOCK_RATE (kHz)
        14 => 512,             // TEXTURE_ALIGNMENT
        15 => 1,               // GPU_OVERLAP
        16 => g.sms as c_int,  // MULTIPROCESSOR_COUNT
        17 => 0,               // KERNEL_EXEC_TIMEOUT
        18 => 0,               // INTEGRATED
        19 => 1,               // CAN_MAP_HOST_MEMORY
        20 => 0,               // COMPUTE_MODE (default)
        31 => 1,               // CONCURRENT_KERNELS
        32 => 1,               // ECC_ENABLED
        33 => bus as c_int,    // PCI_BUS_ID
        34 => device as c_int, // PCI_DEVICE_ID (device number)
        36 => 2_619_000,       // MEMORY_CLOCK_RATE (kHz)
        37 => 5120,            // GLOBAL_MEMORY_BUS_WIDTH
        38 => 50 << 20,        // L2_CACHE_SIZE
        39 => 2048,            // MAX_THREADS_PER_MULTIPROCESSOR
        40 => 3,               // ASYNC_ENGINE_COUNT
        41 => 1,               // UNIFIED_ADDRESSING
        50 => domain as c_int, // PCI_DOMAIN_ID
        75 => major as c_int,  // COMPUTE_CAPABILITY_MAJOR
        76 => minor as c_int,  // COMPUTE_CAPABILITY_MINOR
        78 => 1,               // STREAM_PRIORITIES_SUPPORTED
        81 => 233_472,         // MAX_SHARED_MEMORY_PER_MULTIPROCESSOR
        82 => 65536,           // MAX_REGISTERS_PER_MULTIPROCESSOR
        83 => 0,               // MANAGED_MEMORY (not modelled)
        84 => 0,               // MULTI_GPU_BOARD
        86 => 0,               // HOST_NATIVE_ATOMIC_SUPPORTED
        87 => 2,               // SINGLE_TO_DOUBLE_PRECISION_PERF_RATIO
        88 => 0,               // PAGEABLE_MEMORY_ACCESS
        89 => 0,               // CONCURRENT_MANAGED_ACCESS
        90 => 1,               // COMPUTE_PREEMPTION_SUPPORTED
        95 => 0,               // COOPERATIVE_LAUNCH (not modelled)
        97 => 49152,           // MAX_SHARED_MEMORY_PER_BLOCK_OPTIN
        106 => 32,             // MAX_BLOCKS_PER_MULTIPROCESSOR
        115 => 1,              // MEMORY_POOLS_SUPPORTED
        _ => return None,
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetAttribute(out: *mut c_int, a: c_int, dev: c_int) -> CUresult {
    guard("cuDeviceGetAttribute", || {
        let s = state()?;
        let d = s.device(dev)?;
        match attribute(&d.config, a) {
            Some(v) => put("cuDeviceGetAttribute", out, v),
            None => refuse(
                CUDA_ERROR_NOT_SUPPORTED,
                format!("cuDeviceGetAttribute: attribute {a} is not modelled"),
            ),
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuDeviceCanAccessPeer(
    out: *mut c_int,
    dev: c_int,
    peer: c_int,
) -> CUresult {
    guard("cuDeviceCanAccessPeer", || {
        let s = state()?;
        // MIG instances have no peer-to-peer (NVIDIA's MIG user guide:
        // "CUDA IPC across GPU instances" and P2P are not supported).
        let (da, db) = (&s.device(dev)?.config, &s.device(peer)?.config);
        let a = da.peer_access && !da.mig_instance;
        let b = db.peer_access && !db.mig_instance;
        put(
            "cuDeviceCanAccessPeer",
            out,
            c_int::from(dev != peer && a && b),
        )
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetDefaultMemPool(pool: *mut Handle, dev: c_int) -> CUresult {
    guard("cuDeviceGetDefaultMemPool", || {
        let s = state()?;
        s.device(dev)?;
        put(
            "cuDeviceGetDefaultMemPool",
            pool,
            ptr(s.pool_handle(dev as usize)),
        )
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetMemPool(pool: *mut Handle, dev: c_int) -> CUresult {
    cuDeviceGetDefaultMemPool(pool, dev)
}

// ---- contexts --------------------------------------------------------------

#[no_mangle]
pub unsafe extern "C" fn cuDevicePrimaryCtxRetain(ctx: *mut Handle, dev: c_int) -> CUresult {
    guard("cuDevicePrimaryCtxRetain", || {
        let mut s = state()?;
        let id = s.retain_primary(dev)?;
        put(
            "cuDevicePrimaryCtxRetain",
            ctx,
            ptr(handle(Tag::Context, id)),
        )
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuDevicePrimaryCtxRelease_v2(dev: c_int) -> CUresult {
    guard("cuDevicePrimaryCtxRelease_v2", || {
        state()?.release_primary(dev)
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuDevicePrimaryCtxRelease(dev: c_int) -> CUresult {
    cuDevicePrimaryCtxRelease_v2(dev)
}

#[no_mangle]
pub unsafe extern "C" fn cuDevicePrimaryCtxGetState(
    dev: c_int,
    flags: *mut c_uint,
    active: *mut c_int,
) -> CUresult {
    guard("cuDevicePrimaryCtxGetState", || {
        let s = state()?;
        let d = s.device(dev)?;
        put("cuDevicePrimaryCtxGetState", flags, 0)?;
        put(
            "cuDevicePrimaryCtxGetState",
            active,
            c_int::from(d.primary.is_some()),
        )
    })
}

fn ctx_id(p: Handle, call: &str) -> R<u64> {
    state::unhandle(Tag::Context, h(p)).map_or_else(
        || {
            refuse(
                CUDA_ERROR_INVALID_CONTEXT,
                format!("{call}: {:#x} is not a context handle", h(p)),
            )
        },
        Ok,
    )
}

#[no_mangle]
pub unsafe extern "C" fn cuCtxSetCurrent(ctx: Handle) -> CUresult {
    guard("cuCtxSetCurrent", || {
        if ctx.is_null() {
            state::set_current(0);
            return Ok(());
        }
        let id = ctx_id(ctx, "cuCtxSetCurrent")?;
        let s = state()?;
        match s.contexts.get(&id) {
            Some(c) if c.alive => {
                state::set_current(id);
                Ok(())
            }
            Some(_) => refuse(
                CUDA_ERROR_CONTEXT_IS_DESTROYED,
                "cuCtxSetCurrent: the context was destroyed",
            ),
            None => refuse(
                CUDA_ERROR_INVALID_CONTEXT,
                "cuCtxSetCurrent: unknown context",
            ),
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuCtxGetCurrent(ctx: *mut Handle) -> CUresult {
    guard("cuCtxGetCurrent", || {
        let id = state::current();
        let v = if id == 0 {
            std::ptr::null_mut()
        } else {
            ptr(handle(Tag::Context, id))
        };
        put("cuCtxGetCurrent", ctx, v)
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuCtxGetDevice(dev: *mut c_int) -> CUresult {
    guard("cuCtxGetDevice", || {
        let s = state()?;
        let c = s.current_ctx("cuCtxGetDevice")?;
        put("cuCtxGetDevice", dev, s.ctx_device(c) as c_int)
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuCtxSynchronize() -> CUresult {
    guard("cuCtxSynchronize", || {
        let call = "cuCtxSynchronize";
        let mut s = state()?;
        let ctx = s.current_ctx(call)?;
        if s.ctx_hung(ctx) {
            block_forever(s, call, "a stream of the context");
        }
        s.sync_point(ctx, call)?;
        s.wait_context(ctx);
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuCtxEnablePeerAccess(peer: Handle, flags: c_uint) -> CUresult {
    guard("cuCtxEnablePeerAccess", || {
        let call = "cuCtxEnablePeerAccess";
        if flags != 0 {
            return refuse(CUDA_ERROR_INVALID_VALUE, format!("{call}: Flags must be 0"));
        }
        let mut s = state()?;
        let cur = s.current_ctx(call)?;
        let pid = ctx_id(peer, call)?;
        s.live_ctx(pid, call)?;
        let (d, p) = (s.ctx_device(cur), s.ctx_device(pid));
        if d == p {
            return refuse(
                CUDA_ERROR_INVALID_DEVICE,
                format!("{call}: GPU {d} cannot enable peer access to itself"),
            );
        }
        if !(s.devices[d].config.peer_access && s.devices[p].config.peer_access) {
            return refuse(
                CUDA_ERROR_PEER_ACCESS_UNSUPPORTED,
                format!("{call}: GPUs {d} and {p} have no peer link"),
            );
        }
        let c = s.contexts.get_mut(&cur).ok_or(CUDA_ERROR_INVALID_CONTEXT)?;
        if !c.peers.insert(p) {
            return Err(CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED);
        }
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuCtxDisablePeerAccess(peer: Handle) -> CUresult {
    guard("cuCtxDisablePeerAccess", || {
        let call = "cuCtxDisablePeerAccess";
        let mut s = state()?;
        let cur = s.current_ctx(call)?;
        let pid = ctx_id(peer, call)?;
        let p = s.ctx_device(pid);
        let c = s.contexts.get_mut(&cur).ok_or(CUDA_ERROR_INVALID_CONTEXT)?;
        if !c.peers.remove(&p) {
            return refuse(
                CUDA_ERROR_PEER_ACCESS_NOT_ENABLED,
                format!("{call}: peer access to GPU {p} was not enabled"),
            );
        }
        Ok(())
    })
}

// ---- streams and events ----------------------------------------------------

#[no_mangle]
pub unsafe extern "C" fn cuStreamCreate(stream: *mut Handle, flags: c_uint) -> CUresult {
    guard("cuStreamCreate", || {
        if flags & !1 != 0 {
            return refuse(
                CUDA_ERROR_INVALID_VALUE,
                format!("cuStreamCreate: unknown flags {flags:#x}"),
            );
        }
        let mut s = state()?;
        let id = s.create_stream("cuStreamCreate")?;
        put("cuStreamCreate", stream, ptr(id))
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuStreamCreateWithPriority(
    stream: *mut Handle,
    flags: c_uint,
    _priority: c_int,
) -> CUresult {
    cuStreamCreate(stream, flags)
}

#[no_mangle]
pub unsafe extern "C" fn cuStreamDestroy_v2(stream: Handle) -> CUresult {
    guard("cuStreamDestroy_v2", || state()?.destroy_stream(h(stream)))
}

#[no_mangle]
pub unsafe extern "C" fn cuStreamSynchronize(stream: Handle) -> CUresult {
    guard("cuStreamSynchronize", || {
        let call = "cuStreamSynchronize";
        let mut s = state()?;
        let (sid, ctx) = s.stream(h(stream), call)?;
        if s.hung(sid) {
            block_forever(s, call, "the stream");
        }
        s.sync_point(ctx, call)?;
        s.wait_stream(sid);
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuStreamQuery(stream: Handle) -> CUresult {
    guard("cuStreamQuery", || {
        let mut s = state()?;
        let (sid, ctx) = s.stream(h(stream), "cuStreamQuery")?;
        s.sync_point(ctx, "cuStreamQuery")?;
        if s.hung(sid) {
            return Err(CUDA_ERROR_NOT_READY);
        }
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuStreamWaitEvent(
    stream: Handle,
    event: Handle,
    flags: c_uint,
) -> CUresult {
    guard("cuStreamWaitEvent", || {
        let call = "cuStreamWaitEvent";
        if flags & !1 != 0 {
            return refuse(CUDA_ERROR_INVALID_VALUE, format!("{call}: unknown flags"));
        }
        let mut s = state()?;
        let (sid, _) = s.stream(h(stream), call)?;
        let e = s.event(h(event), call)?;
        // The event may belong to another context or device.
        let (recorded, never) = (s.events[&e].recorded, s.events[&e].never);
        if let Some(st) = s.streams.get_mut(&sid) {
            if let Some(t) = recorded {
                st.clock_ns = st.clock_ns.max(t);
            }
            // Waiting for an event that is never reached.
            st.hung |= never;
        }
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuEventCreate(event: *mut Handle, flags: c_uint) -> CUresult {
    guard("cuEventCreate", || {
        let id = state()?.create_event(flags)?;
        put("cuEventCreate", event, ptr(id))
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuEventDestroy_v2(event: Handle) -> CUresult {
    guard("cuEventDestroy_v2", || {
        let mut s = state()?;
        let e = s.event(h(event), "cuEventDestroy_v2")?;
        if let Some(e) = s.events.get_mut(&e) {
            e.alive = false;
        }
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuEventRecord(event: Handle, stream: Handle) -> CUresult {
    guard("cuEventRecord", || {
        state()?.record_event(h(event), h(stream))
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuEventRecordWithFlags(
    event: Handle,
    stream: Handle,
    _flags: c_uint,
) -> CUresult {
    cuEventRecord(event, stream)
}

#[no_mangle]
pub unsafe extern "C" fn cuEventSynchronize(event: Handle) -> CUresult {
    guard("cuEventSynchronize", || {
        event_wait(event, "cuEventSynchronize", true)
    })
}

/// cuEventSynchronize (`block`) or cuEventQuery.
fn event_wait(event: Handle, call: &str, block: bool) -> R<()> {
    let mut s = state()?;
    let e = s.event(h(event), call)?;
    let ctx = s.events[&e].ctx;
    s.live_ctx(ctx, call)?;
    s.sync_point(ctx, call)?;
    if s.events[&e].never {
        if block {
            block_forever(s, call, "the event");
        }
        return Err(CUDA_ERROR_NOT_READY);
    }
    if let (Some(t), Some(c)) = (s.events[&e].recorded, s.contexts.get_mut(&ctx)) {
        c.host_ns = c.host_ns.max(t);
    }
    Ok(())
}

#[no_mangle]
pub unsafe extern "C" fn cuEventQuery(event: Handle) -> CUresult {
    guard("cuEventQuery", || event_wait(event, "cuEventQuery", false))
}

#[no_mangle]
pub unsafe extern "C" fn cuEventElapsedTime(ms: *mut f32, start: Handle, end: Handle) -> CUresult {
    guard("cuEventElapsedTime", || {
        let v = state()?.elapsed(h(start), h(end))?;
        put("cuEventElapsedTime", ms, v)
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuEventElapsedTime_v2(
    ms: *mut f32,
    start: Handle,
    end: Handle,
) -> CUresult {
    cuEventElapsedTime(ms, start, end)
}

// ---- memory ----------------------------------------------------------------

fn alloc_on(call: &str, s: &state::State, ctx: u64, bytes: usize, kind: Kind) -> R<u64> {
    let d = s.ctx_device(ctx);
    let total = s.devices[d].config.memory_mib << 20;
    let mut hp = heap()?;
    if hp.used(d) + bytes as u64 > total {
        return refuse(
            CUDA_ERROR_OUT_OF_MEMORY,
            format!(
                "{call}: {bytes} bytes on GPU {d}, which has {} of {total} bytes free",
                total - hp.used(d)
            ),
        );
    }
    Ok(hp.alloc(d, ctx, bytes as u64, kind).base)
}

#[no_mangle]
pub unsafe extern "C" fn cuMemAlloc_v2(dptr: *mut CUdeviceptr, bytes: usize) -> CUresult {
    guard("cuMemAlloc_v2", || {
        let s = state()?;
        let ctx = s.current_ctx("cuMemAlloc_v2")?;
        if bytes == 0 {
            return refuse(CUDA_ERROR_INVALID_VALUE, "cuMemAlloc_v2: 0 bytes");
        }
        let base = alloc_on("cuMemAlloc_v2", &s, ctx, bytes, Kind::Plain)?;
        put("cuMemAlloc_v2", dptr, base)
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuMemAllocAsync(
    dptr: *mut CUdeviceptr,
    bytes: usize,
    stream: Handle,
) -> CUresult {
    guard("cuMemAllocAsync", || {
        let s = state()?;
        let (_, ctx) = s.stream(h(stream), "cuMemAllocAsync")?;
        let base = alloc_on("cuMemAllocAsync", &s, ctx, bytes, Kind::Pool)?;
        put("cuMemAllocAsync", dptr, base)
    })
}

fn free(call: &'static str, dptr: CUdeviceptr, stream: Option<Handle>) -> R<()> {
    let s = state()?;
    let ctx = match stream {
        Some(st) => s.stream(h(st), call)?.1,
        None => s.current_ctx(call)?,
    };
    let mut hp = heap()?;
    let d = s.ctx_device(ctx);
    match hp.get(dptr) {
        Some(a) if a.device != d => {
            return refuse(
                CUDA_ERROR_INVALID_CONTEXT,
                format!(
                    "{call}: {} belongs to GPU {}, but GPU {d}'s context is current (bind the owning context before freeing)",
                    a.describe(),
                    a.device
                ),
            )
        }
        Some(a) if a.kind == Kind::ModuleGlobal => {
            return refuse(
                CUDA_ERROR_INVALID_VALUE,
                format!("{call}: {} is a module global", a.describe()),
            )
        }
        _ => {}
    }
    match hp.free(dptr, call) {
        Ok(_) => Ok(()),
        Err(why) => refuse(CUDA_ERROR_INVALID_VALUE, format!("{call}: {why}")),
    }
}

#[no_mangle]
pub unsafe extern "C" fn cuMemFree_v2(dptr: CUdeviceptr) -> CUresult {
    guard("cuMemFree_v2", || free("cuMemFree_v2", dptr, None))
}

#[no_mangle]
pub unsafe extern "C" fn cuMemFreeAsync(dptr: CUdeviceptr, stream: Handle) -> CUresult {
    guard("cuMemFreeAsync", || {
        free("cuMemFreeAsync", dptr, Some(stream))
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuMemGetInfo_v2(free: *mut usize, total: *mut usize) -> CUresult {
    guard("cuMemGetInfo_v2", || {
        let s = state()?;
        let ctx = s.current_ctx("cuMemGetInfo_v2")?;
        let d = s.ctx_device(ctx);
        let t = s.devices[d].config.memory_mib << 20;
        let used = heap()?.used(d);
        put("cuMemGetInfo_v2", free, (t.saturating_sub(used)) as usize)?;
        put("cuMemGetInfo_v2", total, t as usize)
    })
}

const HOST_ALIGN: usize = 4096;

#[no_mangle]
pub unsafe extern "C" fn cuMemHostAlloc(
    p: *mut *mut c_void,
    bytes: usize,
    flags: c_uint,
) -> CUresult {
    guard("cuMemHostAlloc", || {
        let mut s = state()?;
        s.current_ctx("cuMemHostAlloc")?;
        if flags & !0xf != 0 {
            return refuse(CUDA_ERROR_INVALID_VALUE, "cuMemHostAlloc: unknown flags");
        }
        let layout = std::alloc::Layout::from_size_align(bytes.max(1), HOST_ALIGN)
            .map_err(|_| CUDA_ERROR_INVALID_VALUE)?;
        let m = std::alloc::alloc_zeroed(layout);
        if m.is_null() {
            return refuse(
                CUDA_ERROR_OUT_OF_MEMORY,
                format!("cuMemHostAlloc: {bytes} bytes of host memory"),
            );
        }
        s.host.insert(m as usize, bytes.max(1));
        put("cuMemHostAlloc", p, m.cast())
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuMemAllocHost_v2(p: *mut *mut c_void, bytes: usize) -> CUresult {
    cuMemHostAlloc(p, bytes, 0)
}

#[no_mangle]
pub unsafe extern "C" fn cuMemFreeHost(p: *mut c_void) -> CUresult {
    guard("cuMemFreeHost", || {
        let mut s = state()?;
        match s.host.remove(&(p as usize)) {
            Some(size) => {
                let layout = std::alloc::Layout::from_size_align(size, HOST_ALIGN)
                    .map_err(|_| CUDA_ERROR_INVALID_VALUE)?;
                std::alloc::dealloc(p.cast(), layout);
                Ok(())
            }
            None => refuse(
                CUDA_ERROR_INVALID_VALUE,
                format!("cuMemFreeHost: {p:?} is not pinned memory from cuMemHostAlloc (or was freed already)"),
            ),
        }
    })
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct CUmemAccessDesc {
    location_type: c_int,
    location_id: c_int,
    flags: c_int,
}

#[no_mangle]
pub unsafe extern "C" fn cuMemPoolSetAccess(
    pool: Handle,
    map: *const CUmemAccessDesc,
    count: usize,
) -> CUresult {
    guard("cuMemPoolSetAccess", || {
        let call = "cuMemPoolSetAccess";
        let mut s = state()?;
        let owner = s.pool_device(h(pool), call)?;
        if map.is_null() && count > 0 {
            return refuse(CUDA_ERROR_INVALID_VALUE, format!("{call}: null map"));
        }
        for i in 0..count {
            let d = *map.add(i);
            // CU_MEM_LOCATION_TYPE_DEVICE = 1; flags: 0 none, 1 read, 3 read+write.
            if d.location_type != 1
                || d.location_id < 0
                || d.location_id as usize >= s.devices.len()
            {
                return refuse(
                    CUDA_ERROR_INVALID_VALUE,
                    format!("{call}: entry {i} names no device"),
                );
            }
            let dev = d.location_id as usize;
            if dev == owner {
                continue;
            }
            match d.flags {
                0 => {
                    s.devices[owner].pool_access.remove(&dev);
                }
                3 => {
                    s.devices[owner].pool_access.insert(dev);
                }
                f => {
                    return refuse(
                        CUDA_ERROR_INVALID_VALUE,
                        format!(
                            "{call}: flags {f} (read-only pool access is not supported by CUDA)"
                        ),
                    )
                }
            }
        }
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuMemPoolSetAttribute(
    pool: Handle,
    attr: c_int,
    _value: *mut c_void,
) -> CUresult {
    guard("cuMemPoolSetAttribute", || {
        let s = state()?;
        s.pool_device(h(pool), "cuMemPoolSetAttribute")?;
        // Release threshold and reuse policies do not change behaviour here.
        if (1..=8).contains(&attr) {
            Ok(())
        } else {
            refuse(
                CUDA_ERROR_INVALID_VALUE,
                format!("cuMemPoolSetAttribute: unknown attribute {attr}"),
            )
        }
    })
}

/// Where a copy reads or writes.
#[derive(Clone, Copy)]
enum End {
    Host(*mut u8),
    Dev(u64),
}

/// A copy of `bytes` from `src` to `dst`, on `stream` (of the current
/// context), optionally naming the contexts of a peer copy.
fn copy(
    call: &str,
    stream: Handle,
    dst: End,
    src: End,
    bytes: usize,
    peer: Option<(u64, u64)>,
) -> R<()> {
    // A copy on the legacy default stream (what the synchronous cuMemcpy*
    // calls use) returns when it is done.
    let blocking = stream.is_null();
    let mut s = state()?;
    let (sid, ctx) = s.stream(h(stream), call)?;
    let d = s.ctx_device(ctx);
    if s.hung(sid) {
        // Queued behind a kernel that never finishes: it never runs.
        if blocking {
            block_forever(s, call, "the stream");
        }
        return Ok(());
    }
    if blocking {
        s.sync_point(ctx, call)?;
    }
    if bytes == 0 {
        return Ok(());
    }
    let hp = heap()?;
    // Device ends: live, in range, reachable from this device.
    let check = |addr: u64, want: Option<u64>, what: &str| -> R<(super::heap::Alloc, usize)> {
        let (a, off) = match hp.range(addr, bytes as u64) {
            Ok(x) => x,
            Err(why) => {
                return refuse(CUDA_ERROR_INVALID_VALUE, format!("{call}: {what}: {why}"));
            }
        };
        if let Some(c) = want {
            let cd = s.ctx_device(c);
            if a.device != cd {
                return refuse(
                    CUDA_ERROR_INVALID_VALUE,
                    format!(
                        "{call}: {what} {} is not memory of GPU {cd}, the context given for it",
                        a.describe()
                    ),
                );
            }
        }
        if let Some(why) = s.access_problem(d, a) {
            return refuse(
                CUDA_ERROR_PEER_ACCESS_NOT_ENABLED,
                format!("{call} on GPU {d}'s stream: {what}: {why}"),
            );
        }
        Ok((a.clone(), off as usize))
    };
    let (pd, ps) = peer.map_or((None, None), |(a, b)| (Some(a), Some(b)));
    let src_dev = match src {
        End::Dev(a) => Some(check(a, ps, "source")?),
        End::Host(_) => None,
    };
    let dst_dev = match dst {
        End::Dev(a) => Some(check(a, pd, "destination")?),
        End::Host(_) => None,
    };
    drop(hp);
    // Read the source.
    let mut buf = vec![0u8; bytes];
    match (src, &src_dev) {
        (End::Host(p), _) => unsafe { std::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), bytes) },
        (End::Dev(_), Some((a, off))) => {
            let data = a.lock();
            if !data.all_written(*off, bytes) {
                log(&format!(
                    "{call}: reads never-written bytes of {} at offset {off}",
                    a.describe()
                ));
            }
            buf.copy_from_slice(&data.bytes[*off..off + bytes]);
        }
        _ => return Err(CUDA_ERROR_UNKNOWN),
    }
    match (dst, &dst_dev) {
        (End::Host(p), _) => unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), p, bytes) },
        (End::Dev(_), Some((a, off))) => {
            let mut data = a.lock();
            data.bytes[*off..off + bytes].copy_from_slice(&buf);
            data.mark(*off, bytes);
        }
        _ => return Err(CUDA_ERROR_UNKNOWN),
    }
    // Modelled time.
    let t = s.timing(d).clone();
    let gbps = match (src, dst) {
        (End::Host(p), _) | (_, End::Host(p)) => {
            if s.is_pinned(p as usize, bytes) {
                t.pcie_gbps
            } else {
                t.pcie_gbps * t.pageable_factor
            }
        }
        (End::Dev(_), End::Dev(_)) => {
            let cross =
                src_dev.as_ref().map(|x| x.0.device) != dst_dev.as_ref().map(|x| x.0.device);
            if cross {
                // The slower end's links set the pace (an NVLink down on
                // either GPU).
                let ends = [&src_dev, &dst_dev].map(|e| {
                    e.as_ref()
                        .map_or(t.peer_gbps, |(a, _)| s.timing(a.device).peer_gbps)
                });
                t.peer_gbps.min(ends[0]).min(ends[1])
            } else {
                // A device-to-device copy reads and writes: 2 bytes per byte.
                t.hbm_gbps / 2.0
            }
        }
    };
    s.enqueue(sid, t.copy_latency_us * 1e3, bytes as f64 / gbps);
    if blocking {
        s.wait_stream(sid);
    }
    Ok(())
}

#[no_mangle]
pub unsafe extern "C" fn cuMemcpyHtoDAsync_v2(
    dst: CUdeviceptr,
    src: *const c_void,
    bytes: usize,
    stream: Handle,
) -> CUresult {
    guard("cuMemcpyHtoDAsync_v2", || {
        copy(
            "cuMemcpyHtoDAsync_v2",
            stream,
            End::Dev(dst),
            End::Host(src as *mut u8),
            bytes,
            None,
        )
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuMemcpyDtoHAsync_v2(
    dst: *mut c_void,
    src: CUdeviceptr,
    bytes: usize,
    stream: Handle,
) -> CUresult {
    guard("cuMemcpyDtoHAsync_v2", || {
        copy(
            "cuMemcpyDtoHAsync_v2",
            stream,
            End::Host(dst.cast()),
            End::Dev(src),
            bytes,
            None,
        )
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuMemcpyDtoDAsync_v2(
    dst: CUdeviceptr,
    src: CUdeviceptr,
    bytes: usize,
    stream: Handle,
) -> CUresult {
    guard("cuMemcpyDtoDAsync_v2", || {
        copy(
            "cuMemcpyDtoDAsync_v2",
            stream,
            End::Dev(dst),
            End::Dev(src),
            bytes,
            None,
        )
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuMemcpyHtoD_v2(
    dst: CUdeviceptr,
    src: *const c_void,
    bytes: usize,
) -> CUresult {
    cuMemcpyHtoDAsync_v2(dst, src, bytes, std::ptr::null_mut())
}

#[no_mangle]
pub unsafe extern "C" fn cuMemcpyDtoH_v2(
    dst: *mut c_void,
    src: CUdeviceptr,
    bytes: usize,
) -> CUresult {
    cuMemcpyDtoHAsync_v2(dst, src, bytes, std::ptr::null_mut())
}

#[no_mangle]
pub unsafe extern "C" fn cuMemcpyDtoD_v2(
    dst: CUdeviceptr,
    src: CUdeviceptr,
    bytes: usize,
) -> CUresult {
    cuMemcpyDtoDAsync_v2(dst, src, bytes, std::ptr::null_mut())
}

#[no_mangle]
pub unsafe extern "C" fn cuMemcpyPeerAsync(
    dst: CUdeviceptr,
    dst_ctx: Handle,
    src: CUdeviceptr,
    src_ctx: Handle,
    bytes: usize,
    stream: Handle,
) -> CUresult {
    guard("cuMemcpyPeerAsync", || {
        let call = "cuMemcpyPeerAsync";
        let (dc, sc) = (ctx_id(dst_ctx, call)?, ctx_id(src_ctx, call)?);
        {
            let s = state()?;
            s.live_ctx(dc, call)?;
            s.live_ctx(sc, call)?;
        }
        copy(
            call,
            stream,
            End::Dev(dst),
            End::Dev(src),
            bytes,
            Some((dc, sc)),
        )
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuMemcpyPeer(
    dst: CUdeviceptr,
    dst_ctx: Handle,
    src: CUdeviceptr,
    src_ctx: Handle,
    bytes: usize,
) -> CUresult {
    cuMemcpyPeerAsync(dst, dst_ctx, src, src_ctx, bytes, std::ptr::null_mut())
}

fn memset(call: &str, dst: u64, value: &[u8], count: usize, stream: Handle) -> R<()> {
    let mut s = state()?;
    let (sid, ctx) = s.stream(h(stream), call)?;
    let d = s.ctx_device(ctx);
    if s.hung(sid) {
        return Ok(());
    }
    let bytes = count * value.len();
    if !dst.is_multiple_of(value.len() as u64) {
        return refuse(
            CUDA_ERROR_INVALID_VALUE,
            format!("{call}: {dst:#x} is not aligned to {} bytes", value.len()),
        );
    }
    {
        let hp = heap()?;
        let (a, off) = match hp.range(dst, bytes as u64) {
            Ok(x) => x,
            Err(why) => return refuse(CUDA_ERROR_INVALID_VALUE, format!("{call}: {why}")),
        };
        if let Some(why) = s.access_problem(d, a) {
            return refuse(CUDA_ERROR_PEER_ACCESS_NOT_ENABLED, format!("{call}: {why}"));
        }
        let mut data = a.lock();
        let off = off as usize;
        for (i, b) in data.bytes[off..off + bytes].iter_mut().enumerate() {
            *b = value[i % value.len()];
        }
        data.mark(off, bytes);
    }
    let t = s.timing(d).clone();
    s.enqueue(sid, t.copy_latency_us * 1e3, bytes as f64 / t.hbm_gbps);
    Ok(())
}

#[no_mangle]
pub unsafe extern "C" fn cuMemsetD8Async(
    dst: CUdeviceptr,
    v: u8,
    n: usize,
    stream: Handle,
) -> CUresult {
    guard("cuMemsetD8Async", || {
        memset("cuMemsetD8Async", dst, &[v], n, stream)
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuMemsetD8_v2(dst: CUdeviceptr, v: u8, n: usize) -> CUresult {
    cuMemsetD8Async(dst, v, n, std::ptr::null_mut())
}

#[no_mangle]
pub unsafe extern "C" fn cuMemsetD32Async(
    dst: CUdeviceptr,
    v: c_uint,
    n: usize,
    stream: Handle,
) -> CUresult {
    guard("cuMemsetD32Async", || {
        memset("cuMemsetD32Async", dst, &v.to_le_bytes(), n, stream)
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuMemsetD32_v2(dst: CUdeviceptr, v: c_uint, n: usize) -> CUresult {
    cuMemsetD32Async(dst, v, n, std::ptr::null_mut())
}

// ---- modules and launches --------------------------------------------------

/// `.version X.Y` and `.target sm_NN[a]` of a PTX text, for the driver's
/// checks before parsing.
/// `.version` (major, minor) and `.target` (major, minor, arch-specific).
type Header = (Option<(u32, u32)>, Option<(u32, u32, bool)>);

fn header(text: &str) -> Header {
    let mut version = None;
    let mut target = None;
    for line in text.lines().take(200) {
        let l = line.trim();
        if let Some(v) = l.strip_prefix(".version") {
            let mut it = v.trim().split('.');
            if let (Some(a), Some(b)) = (it.next(), it.next()) {
                if let (Ok(a), Ok(b)) = (a.trim().parse(), b.trim().parse()) {
                    version = Some((a, b));
                }
            }
        } else if let Some(t) = l.strip_prefix(".target") {
            for part in t.split(',') {
                if let Some(sm) = part.trim().strip_prefix("sm_") {
                    let arch = sm.ends_with('a') || sm.ends_with('f');
                    let digits: String = sm.chars().take_while(char::is_ascii_digit).collect();
                    if let Ok(n) = digits.parse::<u32>() {
                        target = Some((n / 10, n % 10, arch));
                    }
                }
            }
        }
    }
    (version, target)
}

fn load_module(out: *mut Handle, image: *const c_void, call: &str) -> R<()> {
    if image.is_null() {
        return refuse(CUDA_ERROR_INVALID_VALUE, format!("{call}: null image"));
    }
    let head = unsafe { std::slice::from_raw_parts(image.cast::<u8>(), 4) };
    if head == b"\x7fELF" || head == [0x50, 0xed, 0x55, 0xba] {
        return refuse(
            CUDA_ERROR_INVALID_IMAGE,
            format!("{call}: a cubin or fatbin; the virtual GPU runs PTX text only"),
        );
    }
    let text = unsafe { CStr::from_ptr(image.cast()) };
    let Ok(text) = text.to_str() else {
        return refuse(
            CUDA_ERROR_INVALID_PTX,
            format!("{call}: the PTX is not UTF-8"),
        );
    };
    let mut s = state()?;
    let ctx = s.current_ctx(call)?;
    let d = s.ctx_device(ctx);
    let [major, minor] = s.devices[d].config.compute_capability;
    match header(text) {
        (None, _) => return refuse(CUDA_ERROR_INVALID_PTX, format!("{call}: no .version directive")),
        (Some(v), _) if v > MAX_PTX_ISA => {
            return refuse(
                CUDA_ERROR_UNSUPPORTED_PTX_VERSION,
                format!(
                    "{call}: PTX ISA {}.{} is newer than this driver's JIT ({}.{})",
                    v.0, v.1, MAX_PTX_ISA.0, MAX_PTX_ISA.1
                ),
            )
        }
        (_, None) => return refuse(CUDA_ERROR_INVALID_PTX, format!("{call}: no .target sm_XX directive")),
        (_, Some((a, b, arch))) if (a, b) > (major, minor) || (arch && (a, b) != (major, minor)) => {
            return refuse(
                CUDA_ERROR_NO_BINARY_FOR_GPU,
                format!(
                    "{call}: the PTX targets sm_{a}{b}{}, GPU {d} has compute capability {major}.{minor}",
                    if arch { "a" } else { "" }
                ),
            )
        }
        _ => {}
    }
    let module = match ptx::Module::parse(text) {
        Ok(m) => m,
        Err(e) => return refuse(CUDA_ERROR_INVALID_PTX, format!("{call}: PTX {e}")),
    };
    let mut globals = Vec::new();
    {
        let mut hp = heap()?;
        for g in module.globals() {
            let a = hp.alloc(d, ctx, g.size as u64, Kind::ModuleGlobal);
            let mut data = a.lock();
            data.bytes.copy_from_slice(&g.init);
            data.mark(0, g.size);
            drop(data);
            globals.push(a.base);
        }
    }
    let id = s.new_module(ctx, Arc::new(module), globals);
    unsafe { put(call, out, ptr(id)) }
}

#[no_mangle]
pub unsafe extern "C" fn cuModuleLoadData(module: *mut Handle, image: *const c_void) -> CUresult {
    guard("cuModuleLoadData", || {
        load_module(module, image, "cuModuleLoadData")
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuModuleLoadDataEx(
    module: *mut Handle,
    image: *const c_void,
    _n: c_uint,
    _options: *mut c_int,
    _values: *mut *mut c_void,
) -> CUresult {
    guard("cuModuleLoadDataEx", || {
        load_module(module, image, "cuModuleLoadDataEx")
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuModuleUnload(module: Handle) -> CUresult {
    guard("cuModuleUnload", || {
        let mut s = state()?;
        let m = s.module(h(module), "cuModuleUnload")?;
        let globals = s
            .modules
            .get(&m)
            .map(|m| m.globals.clone())
            .unwrap_or_default();
        if let Some(m) = s.modules.get_mut(&m) {
            m.alive = false;
        }
        let mut hp = heap()?;
        for g in globals {
            let _ = hp.free(g, "cuModuleUnload");
        }
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuModuleGetFunction(
    f: *mut Handle,
    module: Handle,
    name: *const c_char,
) -> CUresult {
    guard("cuModuleGetFunction", || {
        let call = "cuModuleGetFunction";
        if name.is_null() {
            return refuse(CUDA_ERROR_INVALID_VALUE, format!("{call}: null name"));
        }
        let name = CStr::from_ptr(name).to_string_lossy().into_owned();
        let mut s = state()?;
        let m = s.module(h(module), call)?;
        s.current_ctx(call)?;
        if s.modules[&m].module.kernel(&name).is_none() {
            return refuse(
                CUDA_ERROR_NOT_FOUND,
                format!("{call}: the module has no .entry {name:?}"),
            );
        }
        let id = s.new_function(m, name);
        put(call, f, ptr(id))
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuModuleGetGlobal_v2(
    dptr: *mut CUdeviceptr,
    bytes: *mut usize,
    module: Handle,
    name: *const c_char,
) -> CUresult {
    guard("cuModuleGetGlobal_v2", || {
        let call = "cuModuleGetGlobal_v2";
        if name.is_null() {
            return refuse(CUDA_ERROR_INVALID_VALUE, format!("{call}: null name"));
        }
        let name = CStr::from_ptr(name).to_string_lossy().into_owned();
        let s = state()?;
        let m = &s.modules[&s.module(h(module), call)?];
        match m.module.globals().iter().position(|g| g.name == name) {
            Some(i) => {
                if !dptr.is_null() {
                    *dptr = m.globals[i];
                }
                if !bytes.is_null() {
                    *bytes = m.module.globals()[i].size;
                }
                Ok(())
            }
            None => refuse(CUDA_ERROR_NOT_FOUND, format!("{call}: no global {name:?}")),
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn cuFuncGetAttribute(out: *mut c_int, attr: c_int, f: Handle) -> CUresult {
    guard("cuFuncGetAttribute", || {
        let call = "cuFuncGetAttribute";
        let s = state()?;
        let (fid, m) = s.function(h(f), call)?;
        let k = s.modules[&m]
            .module
            .kernel(&s.functions[&fid].name)
            .ok_or(CUDA_ERROR_NOT_FOUND)?;
        let max = k
            .maxntid
            .map_or(1024, |t| t.iter().product::<u32>().min(1024));
        let v = match attr {
            0 => max as c_int,                           // MAX_THREADS_PER_BLOCK
            1 => k.static_shared_bytes as c_int,         // SHARED_SIZE_BYTES
            2 => 0,                                      // CONST_SIZE_BYTES
            3 => k.local_bytes as c_int,                 // LOCAL_SIZE_BYTES
            4 => 32,                                     // NUM_REGS (not modelled)
            5 | 6 => 80,                                 // PTX_VERSION, BINARY_VERSION
            8 => 49152 - k.static_shared_bytes as c_int, // MAX_DYNAMIC_SHARED_SIZE_BYTES
            _ => {
                return refuse(
                    CUDA_ERROR_NOT_SUPPORTED,
                    format!("{call}: attribute {attr} is not modelled"),
                )
            }
        };
        put(call, out, v)
    })
}

const CU_LAUNCH_PARAM_END: usize = 0;
const CU_LAUNCH_PARAM_BUFFER_POINTER: usize = 1;
const CU_LAUNCH_PARAM_BUFFER_SIZE: usize = 2;

/// The parameter bytes of a launch: from `kernelParams` (one pointer per
/// declared parameter, read at its declared size, as a real driver does),
/// or from `extra`'s packed buffer, whose size is checked against the
/// signature.
unsafe fn params(
    k: &ptx::KernelInfo,
    kp: *mut *mut c_void,
    extra: *mut *mut c_void,
) -> R<Vec<Vec<u8>>> {
    let call = "cuLaunchKernel";
    if !kp.is_null() && !extra.is_null() {
        return refuse(
            CUDA_ERROR_INVALID_VALUE,
            format!("{call}: {}: both kernelParams and extra given", k.name),
        );
    }
    if !kp.is_null() {
        let mut out = Vec::with_capacity(k.params.len());
        for (i, p) in k.params.iter().enumerate() {
            let v = *kp.add(i);
            if v.is_null() {
                return refuse(
                    CUDA_ERROR_INVALID_VALUE,
                    format!("{call}: {}: kernelParams[{i}] ({}) is null", k.name, p.name),
                );
            }
            out.push(std::slice::from_raw_parts(v.cast::<u8>(), p.size).to_vec());
        }
        return Ok(out);
    }
    if extra.is_null() {
        if k.params.is_empty() {
            return Ok(Vec::new());
        }
        return refuse(
            CUDA_ERROR_INVALID_VALUE,
            format!(
                "{call}: {} takes {} parameters and none were given",
                k.name,
                k.params.len()
            ),
        );
    }
    let (mut buf, mut size): (*const u8, Option<usize>) = (std::ptr::null(), None);
    let mut i = 0;
    loop {
        let key = *extra.add(i) as usize;
        match key {
            CU_LAUNCH_PARAM_END => break,
            CU_LAUNCH_PARAM_BUFFER_POINTER => buf = (*extra.add(i + 1)).cast(),
            CU_LAUNCH_PARAM_BUFFER_SIZE => size = Some(*(*extra.add(i + 1)).cast::<usize>()),
            other => {
                return refuse(
                    CUDA_ERROR_INVALID_VALUE,
                    format!("{call}: unknown extra key {other}"),
                )
            }
        }
        i += 2;
    }
    let (Some(size), false) = (size, buf.is_null()) else {
        return refuse(
            CUDA_ERROR_INVALID_VALUE,
            format!("{call}: extra needs both CU_LAUNCH_PARAM_BUFFER_POINTER and _SIZE"),
        );
    };
    let mut out = Vec::new();
    let mut off = 0usize;
    for p in &k.params {
        off = off.div_ceil(p.align.max(1)) * p.align.max(1);
        out.push((off, p.size));
        off += p.size;
    }
    if size != off {
        return refuse(
            CUDA_ERROR_INVALID_VALUE,
            format!(
                "{call}: {}: the parameter buffer is {size} bytes, the .entry signature ({} parameters: {}) takes {off}",
                k.name,
                k.params.len(),
                k.params.iter().map(|p| format!("{} {}B", p.name, p.size)).collect::<Vec<_>>().join(", ")
            ),
        );
    }
    Ok(out
        .into_iter()
        .map(|(o, n)| std::slice::from_raw_parts(buf.add(o), n).to_vec())
        .collect())
}

#[no_mangle]
pub unsafe extern "C" fn cuLaunchKernel(
    f: Handle,
    gx: c_uint,
    gy: c_uint,
    gz: c_uint,
    bx: c_uint,
    by: c_uint,
    bz: c_uint,
    shared: c_uint,
    stream: Handle,
    kernel_params: *mut *mut c_void,
    extra: *mut *mut c_void,
) -> CUresult {
    guard("cuLaunchKernel", || {
        let call = "cuLaunchKernel";
        // Validate and gather under the state lock.
        let (module, name, globals, args, ctx, sid, d, mut mem) = {
            let mut s = state()?;
            let (fid, mid) = s.function(h(f), call)?;
            let (sid, ctx) = s.stream(h(stream), call)?;
            let m = &s.modules[&mid];
            let (module, globals) = (m.module.clone(), m.globals.clone());
            let name = s.functions[&fid].name.clone();
            if m.ctx != ctx {
                return refuse(
                    CUDA_ERROR_INVALID_CONTEXT,
                    format!(
                        "{call}: {name} was loaded in GPU {}'s context, launched in GPU {}'s",
                        s.ctx_device(m.ctx),
                        s.ctx_device(ctx)
                    ),
                );
            }
            let k = module.kernel(&name).ok_or(CUDA_ERROR_NOT_FOUND)?;
            let args = params(k, kernel_params, extra)?;
            let d = s.ctx_device(ctx);
            if s.hung(sid) {
                // Queued behind a kernel that never finishes.
                return Ok(());
            }
            if s.hangs_now(d, &name) {
                if let Some(st) = s.streams.get_mut(&sid) {
                    st.hung = true;
                }
                return Ok(());
            }
            let snapshot = {
                let hp = heap()?;
                Snapshot::new(&hp, |a| s.access_problem(d, a))
            };
            (
                module,
                name,
                globals,
                args,
                ctx,
                sid,
                d,
                LaunchMemory {
                    snapshot,
                    device: d,
                },
            )
        };
        let cfg = ptx::LaunchConfig {
            grid: [gx, gy, gz],
            block: [bx, by, bz],
            dynamic_shared_bytes: shared,
        };
        let result = ptx::launch(&module, &name, &cfg, &args, &globals, &mut mem);
        let mut s = state()?;
        match result {
            Ok(stats) => {
                for w in &stats.warnings {
                    log(&format!("GPU {d}: {name}: {w}"));
                }
                let t = s.timing(d);
                let bytes = (stats.global_bytes_read + stats.global_bytes_written) as f64;
                let work = [
                    bytes / t.hbm_gbps,
                    stats.fp32_flops as f64 / (t.fp32_tflops * 1e3),
                    stats.fp64_flops as f64 / (t.fp64_tflops * 1e3),
                    stats.tensor_flops as f64 / (t.tensor_tflops * 1e3),
                    stats.int_ops as f64 / (t.int_tops * 1e3),
                ]
                .into_iter()
                .fold(0.0, f64::max);
                let host = t.launch_latency_us * 1e3;
                s.enqueue(sid, host, work);
                Ok(())
            }
            Err(fault) => {
                use ptx::FaultKind as F;
                let (code, sticky) = match fault.kind {
                    F::InvalidValue => (CUDA_ERROR_INVALID_VALUE, false),
                    F::OutOfResources => (CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES, false),
                    F::IllegalAddress => (CUDA_ERROR_ILLEGAL_ADDRESS, true),
                    F::MisalignedAddress => (CUDA_ERROR_MISALIGNED_ADDRESS, true),
                    F::SharedRace => (CUDA_ERROR_LAUNCH_FAILED, true),
                    F::IllegalInstruction => (CUDA_ERROR_ILLEGAL_INSTRUCTION, true),
                };
                if sticky {
                    s.poison(ctx, code);
                }
                let what = if fault.kind == F::SharedRace {
                    "shared-memory race: "
                } else {
                    ""
                };
                refuse(code, format!("GPU {d}: {what}{}", fault.message))
            }
        }
    })
}

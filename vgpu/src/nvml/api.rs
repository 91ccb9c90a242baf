//! The exported NVML functions.
//!
//! Each is a thin `extern "C"` wrapper: it catches any panic (it becomes
//! NVML_ERROR_UNKNOWN with a log line), checks its handles and output
//! pointers and reads [`super::Node`]. Signatures and struct layouts are
//! nvml-wrapper-sys 0.10's bindings of `nvml.h`; return codes follow the
//! NVML API reference for each function (a null output pointer or a bad
//! handle: NVML_ERROR_INVALID_ARGUMENT; a GPU that fell off the bus:
//! NVML_ERROR_GPU_IS_LOST; a feature the GPU does not have:
//! NVML_ERROR_NOT_SUPPORTED).

#![allow(non_snake_case)]
#![allow(non_camel_case_types)]
#![allow(clippy::missing_safety_doc)]

use std::ffi::{c_char, c_int, c_uint, c_ulong, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use super::result::*;
use super::*;
use crate::clock::fault_time_s;
use crate::config::FabricProblem;
use crate::driver::log;

pub type nvmlDevice_t = *mut c_void;
pub type nvmlEventSet_t = *mut c_void;

/// nvml.h `nvmlPciInfo_t` (the `_v3` call's layout).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct nvmlPciInfo_t {
    pub busIdLegacy: [c_char; 16],
    pub domain: c_uint,
    pub bus: c_uint,
    pub device: c_uint,
    pub pciDeviceId: c_uint,
    pub pciSubSystemId: c_uint,
    pub busId: [c_char; 32],
}

/// nvml.h `nvmlUtilization_t`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct nvmlUtilization_t {
    pub gpu: c_uint,
    pub memory: c_uint,
}

/// nvml.h `nvmlEventData_t`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct nvmlEventData_t {
    pub device: nvmlDevice_t,
    pub eventType: u64,
    pub eventData: u64,
    pub gpuInstanceId: c_uint,
    pub computeInstanceId: c_uint,
}

/// nvml.h `nvmlValue_t`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union nvmlValue_t {
    pub dVal: f64,
    pub siVal: c_int,
    pub uiVal: c_uint,
    pub ulVal: c_ulong,
    pub ullVal: u64,
    pub sllVal: i64,
    pub usVal: u16,
}

/// nvml.h `nvmlFieldValue_t`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct nvmlFieldValue_t {
    pub fieldId: c_uint,
    pub scopeId: c_uint,
    pub timestamp: i64,
    pub latencyUsec: i64,
    pub valueType: c_uint,
    pub nvmlReturn: nvmlReturn_t,
    pub value: nvmlValue_t,
}

/// nvml.h `nvmlGpuFabricInfo_t` (unversioned).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct nvmlGpuFabricInfo_t {
    pub clusterUuid: [u8; 16],
    pub status: nvmlReturn_t,
    pub cliqueId: c_uint,
    pub state: u8,
}

/// nvml.h `nvmlGpuFabricInfo_v3_t` (`nvmlGpuFabricInfoV_t`); `_v2_t` is
/// the same without `healthSummary`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct nvmlGpuFabricInfo_v3_t {
    pub version: c_uint,
    pub clusterUuid: [u8; 16],
    pub status: nvmlReturn_t,
    pub cliqueId: c_uint,
    pub state: u8,
    pub healthMask: c_uint,
    pub healthSummary: u8,
}

/// nvml.h NVML_STRUCT_VERSION(GpuFabricInfo, 2) and (.., 3): the struct's
/// size with the version in the top byte.
pub const GPU_FABRIC_INFO_V2: c_uint =
    std::mem::offset_of!(nvmlGpuFabricInfo_v3_t, healthSummary) as c_uint | (2 << 24);
pub const GPU_FABRIC_INFO_V3: c_uint =
    std::mem::size_of::<nvmlGpuFabricInfo_v3_t>() as c_uint | (3 << 24);

/// nvml.h `nvmlValueType_t`.
const VALUE_UNSIGNED_INT: c_uint = 1;
const VALUE_UNSIGNED_LONG_LONG: c_uint = 3;

/// Runs `f`, turning a panic into NVML_ERROR_UNKNOWN.
fn guard(call: &str, f: impl FnOnce() -> R<()>) -> nvmlReturn_t {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => NVML_SUCCESS,
        Ok(Err(code)) => code,
        Err(_) => {
            log(&format!("{call}: internal error (panic in vgpu)"));
            NVML_ERROR_UNKNOWN
        }
    }
}

/// Writes `v` through an output pointer, refusing a null one.
unsafe fn put<T>(call: &str, p: *mut T, v: T) -> R<()> {
    if p.is_null() {
        return refuse(
            NVML_ERROR_INVALID_ARGUMENT,
            format!("{call}: null output pointer"),
        );
    }
    p.write(v);
    Ok(())
}

/// Writes `s` and its NUL into a caller's buffer of `len` bytes.
unsafe fn put_str(call: &str, p: *mut c_char, len: c_uint, s: &str) -> R<()> {
    if p.is_null() {
        return refuse(
            NVML_ERROR_INVALID_ARGUMENT,
            format!("{call}: null output pointer"),
        );
    }
    if (len as usize) < s.len() + 1 {
        return refuse(
            NVML_ERROR_INSUFFICIENT_SIZE,
            format!(
                "{call}: a buffer of {len} bytes for {} bytes and a NUL",
                s.len()
            ),
        );
    }
    std::ptr::copy_nonoverlapping(s.as_ptr(), p.cast::<u8>(), s.len());
    *p.add(s.len()) = 0;
    Ok(())
}

fn c_array<const N: usize>(s: &str) -> [c_char; N] {
    let mut out = [0 as c_char; N];
    for (o, b) in out.iter_mut().zip(s.bytes().take(N - 1)) {
        *o = b as c_char;
    }
    out
}

/// A query of GPU `dev` (not lost) whose answer goes to `out`.
unsafe fn query<T>(
    call: &str,
    dev: nvmlDevice_t,
    out: *mut T,
    f: impl FnOnce(&mut Node, usize) -> R<T>,
) -> nvmlReturn_t {
    guard(call, || {
        let mut n = node(call)?;
        let i = n.gpu(dev as usize, call)?;
        let v = f(&mut n, i)?;
        put(call, out, v)
    })
}

/// A string query of GPU `dev`.
unsafe fn query_str(
    call: &str,
    dev: nvmlDevice_t,
    out: *mut c_char,
    len: c_uint,
    f: impl FnOnce(&NvGpu) -> String,
) -> nvmlReturn_t {
    guard(call, || {
        let n = node(call)?;
        let i = n.gpu(dev as usize, call)?;
        put_str(call, out, len, &f(&n.gpus[i]))
    })
}

fn device(i: usize) -> nvmlDevice_t {
    device_handle(i) as nvmlDevice_t
}

fn pci_info(bus: (u32, u32, u32, u32), pci_id: u32) -> nvmlPciInfo_t {
    let (d, b, dev, f) = bus;
    nvmlPciInfo_t {
        busIdLegacy: c_array(&format!("{:04X}:{b:02X}:{dev:02X}.{f:X}", d & 0xffff)),
        domain: d,
        bus: b,
        device: dev,
        pciDeviceId: pci_id,
        // Subsystem: NVIDIA's board (vendor 0x10de in the low half).
        pciSubSystemId: (0x16c1 << 16) | VENDOR_ID,
        busId: c_array(&format!("{d:08X}:{b:02X}:{dev:02X}.{f:X}")),
    }
}

// ---- initialisation, versions, errors --------------------------------------

#[no_mangle]
pub unsafe extern "C" fn nvmlInit_v2() -> nvmlReturn_t {
    guard("nvmlInit_v2", || init("nvmlInit_v2"))
}

/// nvml.h NVML_INIT_FLAG_NO_GPUS (1) and NVML_INIT_FLAG_NO_ATTACH (2).
#[no_mangle]
pub unsafe extern "C" fn nvmlInitWithFlags(flags: c_uint) -> nvmlReturn_t {
    guard("nvmlInitWithFlags", || {
        if flags & !3 != 0 {
            return refuse(
                NVML_ERROR_INVALID_ARGUMENT,
                format!("nvmlInitWithFlags: unknown flags {flags:#x} (NO_GPUS 1, NO_ATTACH 2)"),
            );
        }
        init("nvmlInitWithFlags")
    })
}

#[no_mangle]
pub unsafe extern "C" fn nvmlShutdown() -> nvmlReturn_t {
    guard("nvmlShutdown", shutdown)
}

#[no_mangle]
pub unsafe extern "C" fn nvmlErrorString(code: nvmlReturn_t) -> *const c_char {
    let text = TABLE
        .iter()
        .find(|t| t.0 == code)
        .map_or("Unknown Error\0", |t| t.2);
    text.as_ptr().cast()
}

#[no_mangle]
pub unsafe extern "C" fn nvmlSystemGetDriverVersion(out: *mut c_char, len: c_uint) -> nvmlReturn_t {
    guard("nvmlSystemGetDriverVersion", || {
        drop(node("nvmlSystemGetDriverVersion")?);
        put_str("nvmlSystemGetDriverVersion", out, len, DRIVER_VERSION)
    })
}

#[no_mangle]
pub unsafe extern "C" fn nvmlSystemGetNVMLVersion(out: *mut c_char, len: c_uint) -> nvmlReturn_t {
    guard("nvmlSystemGetNVMLVersion", || {
        put_str("nvmlSystemGetNVMLVersion", out, len, NVML_VERSION)
    })
}

#[no_mangle]
pub unsafe extern "C" fn nvmlSystemGetCudaDriverVersion(v: *mut c_int) -> nvmlReturn_t {
    guard("nvmlSystemGetCudaDriverVersion", || {
        put(
            "nvmlSystemGetCudaDriverVersion",
            v,
            crate::driver::api::DRIVER_VERSION,
        )
    })
}

#[no_mangle]
pub unsafe extern "C" fn nvmlSystemGetCudaDriverVersion_v2(v: *mut c_int) -> nvmlReturn_t {
    nvmlSystemGetCudaDriverVersion(v)
}

// ---- enumeration ------------------------------------------------------------

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetCount_v2(count: *mut c_uint) -> nvmlReturn_t {
    guard("nvmlDeviceGetCount_v2", || {
        let n = node("nvmlDeviceGetCount_v2")?;
        put("nvmlDeviceGetCount_v2", count, n.gpus.len() as c_uint)
    })
}

/// Handle `i`, refusing a lost GPU as the reference says.
unsafe fn handle_out(n: &Node, call: &str, i: usize, out: *mut nvmlDevice_t) -> R<()> {
    n.gpu(device_handle(i), call)?;
    put(call, out, device(i))
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetHandleByIndex_v2(
    index: c_uint,
    out: *mut nvmlDevice_t,
) -> nvmlReturn_t {
    let call = "nvmlDeviceGetHandleByIndex_v2";
    guard(call, || {
        let n = node(call)?;
        if index as usize >= n.gpus.len() {
            return refuse(
                NVML_ERROR_INVALID_ARGUMENT,
                format!(
                    "{call}: index {index}: the node has GPUs 0 to {}",
                    n.gpus.len() - 1
                ),
            );
        }
        handle_out(&n, call, index as usize, out)
    })
}

/// A bus id in one of the forms nvmlDeviceGetHandleByPciBusId_v2 accepts
/// (all hex): domain:bus:device.function, domain:bus:device,
/// bus:device.function.
fn parse_lookup_bus_id(s: &str) -> Option<(u32, u32, u32, u32)> {
    let hex = |t: &str| u32::from_str_radix(t, 16).ok();
    let parts: Vec<&str> = s.split(':').collect();
    let (domain, bus, rest) = match parts.as_slice() {
        [d, b, r] => (hex(d)?, hex(b)?, *r),
        [b, r] if r.contains('.') => (0, hex(b)?, *r),
        _ => return None,
    };
    let (dev, func) = match rest.split_once('.') {
        Some((d, f)) => (hex(d)?, hex(f)?),
        None => (hex(rest)?, 0),
    };
    Some((domain, bus, dev, func))
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetHandleByPciBusId_v2(
    id: *const c_char,
    out: *mut nvmlDevice_t,
) -> nvmlReturn_t {
    let call = "nvmlDeviceGetHandleByPciBusId_v2";
    guard(call, || {
        let n = node(call)?;
        if id.is_null() {
            return refuse(NVML_ERROR_INVALID_ARGUMENT, format!("{call}: null bus id"));
        }
        let text = CStr::from_ptr(id).to_string_lossy();
        let Some(bus) = parse_lookup_bus_id(text.trim()) else {
            return refuse(
                NVML_ERROR_INVALID_ARGUMENT,
                format!("{call}: {text:?} is not a PCI bus id (domain:bus:device.function in hex)"),
            );
        };
        match n.gpus.iter().position(|g| g.bus == bus) {
            Some(i) => handle_out(&n, call, i, out),
            None => refuse(NVML_ERROR_NOT_FOUND, format!("{call}: no GPU at {text}")),
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetHandleByUUID(
    uuid: *const c_char,
    out: *mut nvmlDevice_t,
) -> nvmlReturn_t {
    let call = "nvmlDeviceGetHandleByUUID";
    guard(call, || {
        let n = node(call)?;
        if uuid.is_null() {
            return refuse(NVML_ERROR_INVALID_ARGUMENT, format!("{call}: null UUID"));
        }
        let text = CStr::from_ptr(uuid).to_string_lossy();
        match n
            .gpus
            .iter()
            .position(|g| g.uuid_string().eq_ignore_ascii_case(text.trim()))
        {
            Some(i) => handle_out(&n, call, i, out),
            None => refuse(NVML_ERROR_NOT_FOUND, format!("{call}: no GPU {text}")),
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetIndex(dev: nvmlDevice_t, out: *mut c_uint) -> nvmlReturn_t {
    query("nvmlDeviceGetIndex", dev, out, |_, i| Ok(i as c_uint))
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetMinorNumber(
    dev: nvmlDevice_t,
    out: *mut c_uint,
) -> nvmlReturn_t {
    query("nvmlDeviceGetMinorNumber", dev, out, |_, i| Ok(i as c_uint))
}

// ---- identity ---------------------------------------------------------------

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetUUID(
    dev: nvmlDevice_t,
    out: *mut c_char,
    len: c_uint,
) -> nvmlReturn_t {
    query_str("nvmlDeviceGetUUID", dev, out, len, NvGpu::uuid_string)
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetName(
    dev: nvmlDevice_t,
    out: *mut c_char,
    len: c_uint,
) -> nvmlReturn_t {
    query_str("nvmlDeviceGetName", dev, out, len, |g| {
        g.config.name.clone()
    })
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetSerial(
    dev: nvmlDevice_t,
    out: *mut c_char,
    len: c_uint,
) -> nvmlReturn_t {
    query_str("nvmlDeviceGetSerial", dev, out, len, NvGpu::serial)
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetVbiosVersion(
    dev: nvmlDevice_t,
    out: *mut c_char,
    len: c_uint,
) -> nvmlReturn_t {
    query_str("nvmlDeviceGetVbiosVersion", dev, out, len, |_| {
        VBIOS_VERSION.into()
    })
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetPciInfo_v3(
    dev: nvmlDevice_t,
    out: *mut nvmlPciInfo_t,
) -> nvmlReturn_t {
    query("nvmlDeviceGetPciInfo_v3", dev, out, |n, i| {
        let g = &n.gpus[i];
        Ok(pci_info(
            g.bus,
            (u32::from(g.config.pci_device_id) << 16) | VENDOR_ID,
        ))
    })
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetCudaComputeCapability(
    dev: nvmlDevice_t,
    major: *mut c_int,
    minor: *mut c_int,
) -> nvmlReturn_t {
    let call = "nvmlDeviceGetCudaComputeCapability";
    guard(call, || {
        let n = node(call)?;
        let i = n.gpu(dev as usize, call)?;
        let [a, b] = n.gpus[i].config.compute_capability;
        put(call, major, a as c_int)?;
        put(call, minor, b as c_int)
    })
}

// ---- sensors ------------------------------------------------------------------

/// nvml.h NVML_TEMPERATURE_GPU, the one sensor of nvmlTemperatureSensors_t.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetTemperature(
    dev: nvmlDevice_t,
    sensor: c_uint,
    out: *mut c_uint,
) -> nvmlReturn_t {
    let call = "nvmlDeviceGetTemperature";
    query(call, dev, out, |n, i| {
        if sensor != 0 {
            return refuse(
                NVML_ERROR_INVALID_ARGUMENT,
                format!("{call}: sensor {sensor} (NVML_TEMPERATURE_GPU is 0, the only one)"),
            );
        }
        Ok(n.sense(i).sensor.temp_c.round() as c_uint)
    })
}

/// Milliwatts, as the reference says.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetPowerUsage(
    dev: nvmlDevice_t,
    out: *mut c_uint,
) -> nvmlReturn_t {
    query("nvmlDeviceGetPowerUsage", dev, out, |n, i| {
        Ok((n.sense(i).sensor.power_w * 1000.0).round() as c_uint)
    })
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetEnforcedPowerLimit(
    dev: nvmlDevice_t,
    out: *mut c_uint,
) -> nvmlReturn_t {
    query("nvmlDeviceGetEnforcedPowerLimit", dev, out, |_, _| {
        Ok(POWER_LIMIT_MW)
    })
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetPowerManagementLimit(
    dev: nvmlDevice_t,
    out: *mut c_uint,
) -> nvmlReturn_t {
    query("nvmlDeviceGetPowerManagementLimit", dev, out, |_, _| {
        Ok(POWER_LIMIT_MW)
    })
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetPowerManagementDefaultLimit(
    dev: nvmlDevice_t,
    out: *mut c_uint,
) -> nvmlReturn_t {
    query(
        "nvmlDeviceGetPowerManagementDefaultLimit",
        dev,
        out,
        |_, _| Ok(POWER_LIMIT_MW),
    )
}

/// nvml.h nvmlClockType_t: 0 GRAPHICS, 1 SM, 2 MEM, 3 VIDEO.
fn clock(call: &str, g: &NvGpu, ty: c_uint, max: bool) -> R<c_uint> {
    match ty {
        0 | 1 if max => Ok(SM_BOOST_MHZ as c_uint),
        0 | 1 => Ok(g.sm_mhz()),
        2 => Ok(MEM_MHZ),
        3 => Ok(VIDEO_MHZ),
        _ => refuse(
            NVML_ERROR_INVALID_ARGUMENT,
            format!("{call}: clock type {ty} (0 graphics, 1 SM, 2 memory, 3 video)"),
        ),
    }
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetClockInfo(
    dev: nvmlDevice_t,
    ty: c_uint,
    out: *mut c_uint,
) -> nvmlReturn_t {
    let call = "nvmlDeviceGetClockInfo";
    query(call, dev, out, |n, i| clock(call, n.sense(i), ty, false))
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetMaxClockInfo(
    dev: nvmlDevice_t,
    ty: c_uint,
    out: *mut c_uint,
) -> nvmlReturn_t {
    let call = "nvmlDeviceGetMaxClockInfo";
    query(call, dev, out, |n, i| clock(call, &n.gpus[i], ty, true))
}

/// Not supported on a GPU in MIG mode (the reference's note).
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetUtilizationRates(
    dev: nvmlDevice_t,
    out: *mut nvmlUtilization_t,
) -> nvmlReturn_t {
    let call = "nvmlDeviceGetUtilizationRates";
    query(call, dev, out, |n, i| {
        let g = n.sense(i);
        if g.config.faults.mig_instances > 0 {
            return refuse(
                NVML_ERROR_NOT_SUPPORTED,
                format!(
                    "{call}: GPU {} is in MIG mode, where device utilisation is not supported",
                    g.bus_id()
                ),
            );
        }
        Ok(if g.sensor.busy() {
            nvmlUtilization_t {
                gpu: 100,
                memory: 50,
            }
        } else {
            nvmlUtilization_t::default()
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetCurrentClocksEventReasons(
    dev: nvmlDevice_t,
    out: *mut u64,
) -> nvmlReturn_t {
    query(
        "nvmlDeviceGetCurrentClocksEventReasons",
        dev,
        out,
        |n, i| Ok(n.sense(i).clock_reasons()),
    )
}

/// The deprecated name of nvmlDeviceGetCurrentClocksEventReasons.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetCurrentClocksThrottleReasons(
    dev: nvmlDevice_t,
    out: *mut u64,
) -> nvmlReturn_t {
    query(
        "nvmlDeviceGetCurrentClocksThrottleReasons",
        dev,
        out,
        |n, i| Ok(n.sense(i).clock_reasons()),
    )
}

/// The reasons this model can report.
const SUPPORTED_REASONS: u64 = 0x1 | 0x4 | 0x8 | 0x20 | 0x40 | 0x80 | 0x200 | 0x400;

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetSupportedClocksEventReasons(
    dev: nvmlDevice_t,
    out: *mut u64,
) -> nvmlReturn_t {
    query(
        "nvmlDeviceGetSupportedClocksEventReasons",
        dev,
        out,
        |_, _| Ok(SUPPORTED_REASONS),
    )
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetSupportedClocksThrottleReasons(
    dev: nvmlDevice_t,
    out: *mut u64,
) -> nvmlReturn_t {
    query(
        "nvmlDeviceGetSupportedClocksThrottleReasons",
        dev,
        out,
        |_, _| Ok(SUPPORTED_REASONS),
    )
}

// ---- memory errors ------------------------------------------------------------

/// nvml.h nvmlMemoryErrorType_t (0 corrected, 1 uncorrected) and
/// nvmlEccCounterType_t (0 volatile, 1 aggregate). Both counters start at
/// the node's start, so they agree.
fn ecc_count(call: &str, g: &NvGpu, error: c_uint, counter: c_uint) -> R<u64> {
    if counter > 1 {
        return refuse(
            NVML_ERROR_INVALID_ARGUMENT,
            format!("{call}: counter type {counter} (0 volatile, 1 aggregate)"),
        );
    }
    let now = fault_time_s();
    match error {
        0 => Ok(g.ecc_correctable(now)),
        1 => Ok(u64::from(g.ecc_uncorrectable(now))),
        _ => refuse(
            NVML_ERROR_INVALID_ARGUMENT,
            format!("{call}: error type {error} (0 corrected, 1 uncorrected)"),
        ),
    }
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetTotalEccErrors(
    dev: nvmlDevice_t,
    error: c_uint,
    counter: c_uint,
    out: *mut u64,
) -> nvmlReturn_t {
    let call = "nvmlDeviceGetTotalEccErrors";
    query(call, dev, out, |n, i| {
        ecc_count(call, &n.gpus[i], error, counter)
    })
}

/// nvml.h nvmlMemoryLocation_t: every error is in device memory (2).
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetMemoryErrorCounter(
    dev: nvmlDevice_t,
    error: c_uint,
    counter: c_uint,
    location: c_uint,
    out: *mut u64,
) -> nvmlReturn_t {
    let call = "nvmlDeviceGetMemoryErrorCounter";
    query(call, dev, out, |n, i| {
        let total = ecc_count(call, &n.gpus[i], error, counter)?;
        match location {
            2 => Ok(total),
            0..=7 => Ok(0),
            _ => refuse(
                NVML_ERROR_INVALID_ARGUMENT,
                format!("{call}: memory location {location} (0 to 7)"),
            ),
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetEccMode(
    dev: nvmlDevice_t,
    current: *mut c_uint,
    pending: *mut c_uint,
) -> nvmlReturn_t {
    let call = "nvmlDeviceGetEccMode";
    guard(call, || {
        let n = node(call)?;
        n.gpu(dev as usize, call)?;
        put(call, current, 1)?;
        put(call, pending, 1)
    })
}

/// One row remapping pending after the uncorrectable error; not supported
/// in MIG mode (the reference's note).
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetRemappedRows(
    dev: nvmlDevice_t,
    corr: *mut c_uint,
    unc: *mut c_uint,
    pending: *mut c_uint,
    failed: *mut c_uint,
) -> nvmlReturn_t {
    let call = "nvmlDeviceGetRemappedRows";
    guard(call, || {
        let n = node(call)?;
        let i = n.gpu(dev as usize, call)?;
        let g = &n.gpus[i];
        if g.config.faults.mig_instances > 0 {
            return refuse(
                NVML_ERROR_NOT_SUPPORTED,
                format!(
                    "{call}: GPU {} is in MIG mode, where remapped rows are not reported",
                    g.bus_id()
                ),
            );
        }
        let hit = c_uint::from(g.ecc_uncorrectable(fault_time_s()));
        put(call, corr, 0)?;
        put(call, unc, hit)?;
        put(call, pending, hit)?;
        put(call, failed, 0)
    })
}

// ---- PCIe -------------------------------------------------------------------

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetCurrPcieLinkGeneration(
    dev: nvmlDevice_t,
    out: *mut c_uint,
) -> nvmlReturn_t {
    query("nvmlDeviceGetCurrPcieLinkGeneration", dev, out, |n, i| {
        Ok(n.sense(i).pcie_gen())
    })
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetCurrPcieLinkWidth(
    dev: nvmlDevice_t,
    out: *mut c_uint,
) -> nvmlReturn_t {
    query("nvmlDeviceGetCurrPcieLinkWidth", dev, out, |n, i| {
        Ok(n.sense(i).pcie_width())
    })
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetMaxPcieLinkGeneration(
    dev: nvmlDevice_t,
    out: *mut c_uint,
) -> nvmlReturn_t {
    query("nvmlDeviceGetMaxPcieLinkGeneration", dev, out, |_, _| {
        Ok(PCIE_MAX_GEN)
    })
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetGpuMaxPcieLinkGeneration(
    dev: nvmlDevice_t,
    out: *mut c_uint,
) -> nvmlReturn_t {
    query("nvmlDeviceGetGpuMaxPcieLinkGeneration", dev, out, |_, _| {
        Ok(PCIE_MAX_GEN)
    })
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetMaxPcieLinkWidth(
    dev: nvmlDevice_t,
    out: *mut c_uint,
) -> nvmlReturn_t {
    query("nvmlDeviceGetMaxPcieLinkWidth", dev, out, |_, _| {
        Ok(PCIE_MAX_WIDTH)
    })
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetPcieReplayCounter(
    dev: nvmlDevice_t,
    out: *mut c_uint,
) -> nvmlReturn_t {
    query("nvmlDeviceGetPcieReplayCounter", dev, out, |_, _| Ok(0))
}

// ---- modes ------------------------------------------------------------------

/// nvml.h nvmlComputeMode_t: DEFAULT 0, EXCLUSIVE_PROCESS 3 (`faults.busy`).
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetComputeMode(
    dev: nvmlDevice_t,
    out: *mut c_uint,
) -> nvmlReturn_t {
    query("nvmlDeviceGetComputeMode", dev, out, |n, i| {
        Ok(if n.gpus[i].config.faults.busy { 3 } else { 0 })
    })
}

/// nvml.h nvmlEnableState_t.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetPersistenceMode(
    dev: nvmlDevice_t,
    out: *mut c_uint,
) -> nvmlReturn_t {
    query("nvmlDeviceGetPersistenceMode", dev, out, |n, i| {
        Ok(c_uint::from(!n.gpus[i].config.faults.persistence_off))
    })
}

/// nvml.h NVML_DEVICE_MIG_DISABLE 0, NVML_DEVICE_MIG_ENABLE 1; nothing is
/// pending, so the pending mode is the current one.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetMigMode(
    dev: nvmlDevice_t,
    current: *mut c_uint,
    pending: *mut c_uint,
) -> nvmlReturn_t {
    let call = "nvmlDeviceGetMigMode";
    guard(call, || {
        let n = node(call)?;
        let i = n.gpu(dev as usize, call)?;
        let on = c_uint::from(n.gpus[i].config.faults.mig_instances > 0);
        put(call, current, on)?;
        put(call, pending, on)
    })
}

// ---- NVLink and fabric --------------------------------------------------------

/// GPU `dev` and `link`, checked: the GPU has NVLinks, the link exists.
fn nvlink(n: &Node, dev: nvmlDevice_t, link: c_uint, call: &str) -> R<usize> {
    let i = n.gpu(dev as usize, call)?;
    if !n.has_nvlink(i) {
        return refuse(
            NVML_ERROR_NOT_SUPPORTED,
            format!(
                "{call}: GPU {} has no NVLinks (peer_access = false, or no peer and no NVSwitch)",
                n.gpus[i].bus_id()
            ),
        );
    }
    if link >= NVLINKS {
        return refuse(
            NVML_ERROR_INVALID_ARGUMENT,
            format!(
                "{call}: link {link}: the GPU has links 0 to {}",
                NVLINKS - 1
            ),
        );
    }
    Ok(i)
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetNvLinkState(
    dev: nvmlDevice_t,
    link: c_uint,
    out: *mut c_uint,
) -> nvmlReturn_t {
    let call = "nvmlDeviceGetNvLinkState";
    guard(call, || {
        let n = node(call)?;
        let i = nvlink(&n, dev, link, call)?;
        put(call, out, c_uint::from(n.gpus[i].link_up(link)))
    })
}

/// nvml.h nvmlNvLinkErrorCounter_t: 0 DL_REPLAY, 1 DL_RECOVERY,
/// 2 DL_CRC_FLIT, 3 DL_CRC_DATA, 4 DL_ECC_DATA.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetNvLinkErrorCounter(
    dev: nvmlDevice_t,
    link: c_uint,
    counter: c_uint,
    out: *mut u64,
) -> nvmlReturn_t {
    let call = "nvmlDeviceGetNvLinkErrorCounter";
    guard(call, || {
        let n = node(call)?;
        let i = nvlink(&n, dev, link, call)?;
        if counter > 4 {
            return refuse(
                NVML_ERROR_INVALID_ARGUMENT,
                format!("{call}: counter {counter} (0 replay, 1 recovery, 2 CRC flit, 3 CRC data, 4 ECC data)"),
            );
        }
        put(
            call,
            out,
            nvlink_errors(&n.gpus[i], link, counter, fault_time_s()),
        )
    })
}

/// The device at the far end of the link (an NVSwitch on an NVSwitch node,
/// else a peer GPU), whether the link is up or not.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetNvLinkRemotePciInfo_v2(
    dev: nvmlDevice_t,
    link: c_uint,
    out: *mut nvmlPciInfo_t,
) -> nvmlReturn_t {
    let call = "nvmlDeviceGetNvLinkRemotePciInfo_v2";
    guard(call, || {
        let n = node(call)?;
        let i = nvlink(&n, dev, link, call)?;
        let (bus, id) = n.remote(i, link);
        put(call, out, pci_info(bus, id))
    })
}

/// nvml.h nvmlIntNvLinkDeviceType_t of the far end: NVML_NVLINK_DEVICE_TYPE_GPU
/// 0 or NVML_NVLINK_DEVICE_TYPE_SWITCH 2.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetNvLinkRemoteDeviceType(
    dev: nvmlDevice_t,
    link: c_uint,
    out: *mut c_uint,
) -> nvmlReturn_t {
    let call = "nvmlDeviceGetNvLinkRemoteDeviceType";
    guard(call, || {
        let n = node(call)?;
        nvlink(&n, dev, link, call)?;
        put(call, out, if n.nvswitch { 2 } else { 0 })
    })
}

/// nvml.h nvmlGpuP2PStatus_t of capability `index` (nvmlGpuP2PCapsIndex_t:
/// READ 0, WRITE 1, NVLINK 2, ATOMICS 3, PCI 4) between two GPUs:
/// NVML_P2P_STATUS_OK 0 or NVML_P2P_STATUS_NOT_SUPPORTED 5.
///
/// In this model peers reach each other only over NVLink (`peer_access`):
/// every capability but PCI is OK for a pair whose NVLinks meet, through
/// the NVSwitch fabric (each with a link up) or, without switches, over a
/// link of the first that is up and ends on the second; PCI is never OK
/// (no PCIe peer path is modelled). A GPU is not its own peer, and index
/// UNKNOWN (5) or beyond is refused.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetP2PStatus(
    dev1: nvmlDevice_t,
    dev2: nvmlDevice_t,
    index: c_uint,
    out: *mut c_uint,
) -> nvmlReturn_t {
    let call = "nvmlDeviceGetP2PStatus";
    guard(call, || {
        let n = node(call)?;
        let a = n.gpu(dev1 as usize, call)?;
        let b = n.gpu(dev2 as usize, call)?;
        if a == b {
            return refuse(
                NVML_ERROR_INVALID_ARGUMENT,
                format!(
                    "{call}: device1 and device2 are both GPU {}: a GPU is not its own peer",
                    n.gpus[a].bus_id()
                ),
            );
        }
        if index > 4 {
            return refuse(
                NVML_ERROR_INVALID_ARGUMENT,
                format!("{call}: p2pIndex {index} (0 READ, 1 WRITE, 2 NVLINK, 3 ATOMICS, 4 PCI)"),
            );
        }
        let up = |i: usize| (0..NVLINKS).any(|l| n.gpus[i].link_up(l));
        let meet = n.has_nvlink(a)
            && n.has_nvlink(b)
            && if n.nvswitch {
                up(a) && up(b)
            } else {
                (0..NVLINKS).any(|l| n.gpus[a].link_up(l) && n.remote(a, l).0 == n.gpus[b].bus)
            };
        let ok = meet && index != 4;
        put(call, out, if ok { 0 } else { 5 })
    })
}

/// (state, status, health mask, health summary) of the fabric, for a GPU
/// on an NVSwitch node: registration complete when the fabric manager runs
/// (nvml.h NVML_GPU_FABRIC_STATE_COMPLETED 3), not started otherwise (1).
/// The health mask reports degraded bandwidth when a link is down, and no
/// route, timeout or configuration problem (NVML_GPU_FABRIC_HEALTH_MASK_*).
fn fabric(n: &Node, dev: nvmlDevice_t, call: &str) -> R<(u8, c_uint, u8)> {
    let i = n.gpu(dev as usize, call)?;
    if !n.nvswitch {
        return refuse(
            NVML_ERROR_NOT_SUPPORTED,
            format!("{call}: the node has no NVSwitch fabric ([node] nvswitch = false)"),
        );
    }
    let state = if n.fabric_manager { 3 } else { 1 };
    let degraded = !n.gpus[i].config.faults.nvlink_down.is_empty();
    let problem = n.gpus[i].config.faults.fabric_unhealthy;
    // Each field at its TRUE (1) value when it is the problem, else FALSE
    // (2); the configuration field NONE (1) or INSUFFICIENT_NVLINKS (5).
    let field = |p: FabricProblem| if problem == Some(p) { 1 } else { 2 };
    let mask = (if degraded { 1 } else { 2 }) // DEGRADED_BW, shift 0
        | (field(FabricProblem::RouteRecovery) << 2)
        | (field(FabricProblem::RouteUnhealthy) << 4)
        | (field(FabricProblem::AccessTimeoutRecovery) << 6)
        | ((if problem == Some(FabricProblem::IncorrectConfiguration) { 5 } else { 1 }) << 8);
    // HEALTH_SUMMARY: HEALTHY 1, UNHEALTHY 2, LIMITED_CAPACITY 3.
    let summary = match (problem, degraded) {
        (Some(_), _) => 2,
        (None, true) => 3,
        (None, false) => 1,
    };
    Ok((state, mask, summary))
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetGpuFabricInfo(
    dev: nvmlDevice_t,
    out: *mut nvmlGpuFabricInfo_t,
) -> nvmlReturn_t {
    let call = "nvmlDeviceGetGpuFabricInfo";
    guard(call, || {
        let n = node(call)?;
        let (state, _, _) = fabric(&n, dev, call)?;
        put(
            call,
            out,
            nvmlGpuFabricInfo_t {
                clusterUuid: [0; 16],
                status: NVML_SUCCESS,
                cliqueId: 0,
                state,
            },
        )
    })
}

/// The versioned call: `version` must be nvmlGpuFabricInfo_v2 or _v3.
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetGpuFabricInfoV(
    dev: nvmlDevice_t,
    out: *mut nvmlGpuFabricInfo_v3_t,
) -> nvmlReturn_t {
    let call = "nvmlDeviceGetGpuFabricInfoV";
    guard(call, || {
        let n = node(call)?;
        if out.is_null() {
            return refuse(
                NVML_ERROR_INVALID_ARGUMENT,
                format!("{call}: null output pointer"),
            );
        }
        let version = std::ptr::addr_of!((*out).version).read();
        if version != GPU_FABRIC_INFO_V2 && version != GPU_FABRIC_INFO_V3 {
            return refuse(
                NVML_ERROR_ARGUMENT_VERSION_MISMATCH,
                format!("{call}: version {version:#x}: expected nvmlGpuFabricInfo_v2 ({GPU_FABRIC_INFO_V2:#x}) or _v3 ({GPU_FABRIC_INFO_V3:#x})"),
            );
        }
        let (state, mask, summary) = fabric(&n, dev, call)?;
        std::ptr::addr_of_mut!((*out).clusterUuid).write([0; 16]);
        std::ptr::addr_of_mut!((*out).status).write(NVML_SUCCESS);
        std::ptr::addr_of_mut!((*out).cliqueId).write(0);
        std::ptr::addr_of_mut!((*out).state).write(state);
        std::ptr::addr_of_mut!((*out).healthMask).write(mask);
        if version == GPU_FABRIC_INFO_V3 {
            std::ptr::addr_of_mut!((*out).healthSummary).write(summary);
        }
        Ok(())
    })
}

// ---- field values -------------------------------------------------------------

/// One field's value (unsigned int or unsigned long long), or why not.
fn field(n: &mut Node, i: usize, id: c_uint, scope: c_uint) -> Result<(c_uint, u64), nvmlReturn_t> {
    let now = fault_time_s();
    let nvlink = n.has_nvlink(i);
    let g = n.sense(i);
    let mig = g.config.faults.mig_instances > 0;
    let ull = |v: u64| Ok((VALUE_UNSIGNED_LONG_LONG, v));
    let ui = |v: u64| Ok((VALUE_UNSIGNED_INT, v));
    let links_total = |counter: c_uint| -> u64 {
        (0..NVLINKS)
            .map(|l| nvlink_errors(g, l, counter, now))
            .sum()
    };
    // nvml.h NVML_FI_DEV_*.
    match id {
        3 | 5 => ull(g.ecc_correctable(now)), // ECC_SBE_VOL/AGG_TOTAL
        4 | 6 => ull(u64::from(g.ecc_uncorrectable(now))), // ECC_DBE_VOL/AGG_TOTAL
        82 => ui(g.sensor.mem_c.round() as u64), // MEMORY_TEMP
        94 => ui(0),                          // PCIE_REPLAY_COUNTER
        142..=145 if mig => Err(NVML_ERROR_NOT_SUPPORTED),
        142 | 145 => ui(0), // REMAPPED_COR, _FAILURE
        143 | 144 => ui(u64::from(g.ecc_uncorrectable(now))), // REMAPPED_UNC, _PENDING
        91 | 165 | 32..=59 if !nvlink => Err(NVML_ERROR_NOT_SUPPORTED),
        91 => ui(u64::from(NVLINKS)), // NVLINK_LINK_COUNT
        165 if scope >= NVLINKS => Err(NVML_ERROR_INVALID_ARGUMENT),
        165 => ui(u64::from(g.link_up(scope))), // NVLINK_GET_STATE, scopeId = link
        // CRC_FLIT L0..L5, TOTAL; CRC_DATA; REPLAY; RECOVERY (7 ids each).
        32..=59 => {
            let (counter, k) = match (id - 32) / 7 {
                0 => (2, (id - 32) % 7),
                1 => (3, (id - 39) % 7),
                2 => (0, (id - 46) % 7),
                _ => (1, (id - 53) % 7),
            };
            if k == 6 {
                ull(links_total(counter))
            } else {
                ull(nvlink_errors(g, k, counter, now))
            }
        }
        _ => Err(NVML_ERROR_NOT_SUPPORTED),
    }
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetFieldValues(
    dev: nvmlDevice_t,
    count: c_int,
    values: *mut nvmlFieldValue_t,
) -> nvmlReturn_t {
    let call = "nvmlDeviceGetFieldValues";
    guard(call, || {
        let mut n = node(call)?;
        let i = n.gpu(dev as usize, call)?;
        if values.is_null() || count < 0 {
            return refuse(
                NVML_ERROR_INVALID_ARGUMENT,
                format!("{call}: null values or a negative count"),
            );
        }
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64);
        for k in 0..count as usize {
            let v = values.add(k);
            let id = std::ptr::addr_of!((*v).fieldId).read();
            let scope = std::ptr::addr_of!((*v).scopeId).read();
            std::ptr::addr_of_mut!((*v).timestamp).write(stamp);
            std::ptr::addr_of_mut!((*v).latencyUsec).write(0);
            match field(&mut n, i, id, scope) {
                Ok((ty, x)) => {
                    std::ptr::addr_of_mut!((*v).valueType).write(ty);
                    std::ptr::addr_of_mut!((*v).nvmlReturn).write(NVML_SUCCESS);
                    let value = if ty == VALUE_UNSIGNED_INT {
                        nvmlValue_t { uiVal: x as c_uint }
                    } else {
                        nvmlValue_t { ullVal: x }
                    };
                    std::ptr::addr_of_mut!((*v).value).write(value);
                }
                Err(code) => {
                    log(&format!(
                        "{}: {call}: field {id} (scope {scope}) is not modelled for this GPU",
                        name(code)
                    ));
                    std::ptr::addr_of_mut!((*v).nvmlReturn).write(code);
                }
            }
        }
        Ok(())
    })
}

// ---- events -------------------------------------------------------------------

#[no_mangle]
pub unsafe extern "C" fn nvmlEventSetCreate(out: *mut nvmlEventSet_t) -> nvmlReturn_t {
    let call = "nvmlEventSetCreate";
    guard(call, || {
        let mut n = node(call)?;
        if out.is_null() {
            return refuse(
                NVML_ERROR_INVALID_ARGUMENT,
                format!("{call}: null output pointer"),
            );
        }
        let id = n.new_set();
        put(call, out, set_handle(id) as nvmlEventSet_t)
    })
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetSupportedEventTypes(
    dev: nvmlDevice_t,
    out: *mut u64,
) -> nvmlReturn_t {
    query("nvmlDeviceGetSupportedEventTypes", dev, out, |_, _| {
        Ok(SUPPORTED_EVENTS)
    })
}

/// Events of the types in `types` (nvml.h nvmlEventType*) that happen from
/// now on reach `set`; this model raises XID (0x8) and double-bit ECC (0x2)
/// events only, so any other type is NOT_SUPPORTED, as the reference says
/// for "some of requested event types".
#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceRegisterEvents(
    dev: nvmlDevice_t,
    types: u64,
    set: nvmlEventSet_t,
) -> nvmlReturn_t {
    let call = "nvmlDeviceRegisterEvents";
    guard(call, || {
        let mut n = node(call)?;
        let i = n.gpu(dev as usize, call)?;
        let id = n.set(set as usize, call)?;
        if types & !SUPPORTED_EVENTS != 0 || types == 0 {
            return refuse(
                NVML_ERROR_NOT_SUPPORTED,
                format!(
                    "{call}: event types {types:#x}: the virtual GPU raises XID (0x8) and double-bit ECC (0x2) events only"
                ),
            );
        }
        let since_s = fault_time_s();
        if let Some(s) = n.sets.get_mut(&id) {
            s.registrations.push(Registration {
                gpu: i,
                mask: types,
                since_s,
            });
        }
        Ok(())
    })
}

/// Delivers the earliest event due, or sleeps until one is (never longer
/// than `timeout_ms`): NVML_ERROR_TIMEOUT when none came.
#[no_mangle]
pub unsafe extern "C" fn nvmlEventSetWait_v2(
    set: nvmlEventSet_t,
    data: *mut nvmlEventData_t,
    timeout_ms: c_uint,
) -> nvmlReturn_t {
    let call = "nvmlEventSetWait_v2";
    let deadline = Instant::now() + Duration::from_millis(u64::from(timeout_ms));
    guard(call, || {
        if data.is_null() {
            return refuse(NVML_ERROR_INVALID_ARGUMENT, format!("{call}: null data"));
        }
        loop {
            let next = {
                let mut n = node(call)?;
                let id = n.set(set as usize, call)?;
                match n.take_event(id) {
                    Pending::Event(gpu, ty, d) => {
                        data.write(nvmlEventData_t {
                            device: device(gpu),
                            eventType: ty,
                            eventData: d,
                            // Not attributable to a MIG instance: 0xFFFFFFFF.
                            gpuInstanceId: c_uint::MAX,
                            computeInstanceId: c_uint::MAX,
                        });
                        return Ok(());
                    }
                    Pending::Lost => {
                        return refuse(
                            NVML_ERROR_GPU_IS_LOST,
                            format!("{call}: every GPU of the set fell off the bus"),
                        )
                    }
                    Pending::Later(next) => next,
                }
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(NVML_ERROR_TIMEOUT);
            }
            let until_next = next.map_or(left, |t| {
                Duration::from_secs_f64((t - fault_time_s()).max(0.0) + 0.001)
            });
            std::thread::sleep(left.min(until_next));
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn nvmlEventSetFree(set: nvmlEventSet_t) -> nvmlReturn_t {
    let call = "nvmlEventSetFree";
    guard(call, || {
        let mut n = node(call)?;
        let id = n.set(set as usize, call)?;
        n.sets.remove(&id);
        Ok(())
    })
}

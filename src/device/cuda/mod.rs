//! The CUDA backend: NVIDIA GPUs through the driver API (cudarc), loaded at
//! run time.
//!
//! - **One binary for every node.** libcuda is opened with dlopen when kiln
//!   runs (cudarc's `dynamic-loading`), so building needs no CUDA and a node
//!   without the driver falls back to the CPU with one line saying why.
//!   cudarc panics on the first call into a library it cannot open, so
//!   [`probe`] checks that libcuda is there first
//!   (`cudarc::driver::sys::is_culib_present`), and runs every first touch of
//!   the driver (the device query, each context's creation, cuBLASLt's
//!   handle) inside `catch_unwind` as well: belt and braces against a driver
//!   too old to export a symbol, which would otherwise abort the whole run
//!   (the panic message is still printed once by the default hook).
//! - **Identity** ([`identity`]): a device's index is its CUDA ordinal as this
//!   process sees it (after `CUDA_VISIBLE_DEVICES`, in `CUDA_DEVICE_ORDER`);
//!   every device also carries the PCI bus id and UUID the driver reports for
//!   that ordinal, so a subset or a reordering is never ambiguous.
//! - **Work**: each device retains its primary context (lazily, on its first
//!   workload, so `kiln list` allocates nothing) and queues everything on one
//!   stream of its own; kiln's kernels (`kernels/ptx`, embedded) are loaded
//!   once per module on first use and cached ([`gpu`]). Inputs are generated
//!   on the device from the seed, outputs verified on the device, and only
//!   counts, partial sums and sampled elements come back.
//! - **Timing**: CUDA events (timing enabled) around the timed launches
//!   only; the shared driver of the workload layer (`src/workload`) does
//!   warm-up, repetition and statistics.
//! - **Errors** name the device, the kernel and its PTX file and the driver's
//!   error; errors that leave the context unusable make the device lost
//!   ([`gpu::is_fatal`]).
//! - **Matmul**: bf16, fp16, tf32, fp8 (compute capability 8.9+), fp32 and
//!   fp64 through cuBLASLt ([`blaslt`]) when it loads, and bf16/fp16
//!   through kiln's own mma.sync kernel always; without cuBLASLt the library
//!   variants are skipped with one line each and everything else runs.

pub mod identity;
pub mod unusable;

mod blaslt;
mod gpu;
mod kernels;
mod matmul;
mod memtest;
mod sha;
mod stream;
mod transfer;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::device::{
    BackendKind, Device, DeviceError, DeviceInfo, DeviceResult, Engine, HashOp, MatmulOp,
    MatmulShape, MatmulVariant, MemtestOp, PeerOp, Precision, StreamOp, TransferOp,
};
use crate::reference::hash::HashJob;

use self::gpu::{describe, Gpu};
use self::identity::{format_bus_id, format_uuid, Identity, IdentityTable};

/// What [`probe`] says when the driver library is missing.
pub const NO_LIBCUDA: &str =
    "libcuda.so not found: the NVIDIA driver is not installed or not on the library path";

/// Why there are no CUDA devices to test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeError {
    /// One line.
    pub message: String,
    /// Set when a GPU node's state stops the test (the fabric manager is
    /// down, every GPU is in MIG mode): `--backend auto` must not quietly
    /// test the CPU of such a node instead.
    pub node_state: Option<&'static str>,
    /// What failed.
    pub cause: Cause,
}

/// What failed when [`probe`] found no device to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// libcuda.so is not there.
    NoLibrary,
    /// A driver call failed: its error name (`CUDA_ERROR_SYSTEM_DRIVER_MISMATCH`),
    /// None when the bindings panicked or the answers did not add up.
    Driver(Option<String>),
    /// The driver started and lists no device.
    NoDevice,
}

impl ProbeError {
    fn plain(message: impl Into<String>) -> ProbeError {
        ProbeError {
            message: message.into(),
            node_state: None,
            cause: Cause::Driver(None),
        }
    }

    /// A driver call that failed with `e`.
    fn driver(message: impl Into<String>, e: cudarc::driver::DriverError) -> ProbeError {
        ProbeError {
            message: message.into(),
            node_state: None,
            cause: Cause::Driver(Some(gpu::error_name(e))),
        }
    }
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// What [`probe`] found: the devices to test, and one line about GPUs left
/// out (in MIG mode) or about GPUs CUDA cannot use, if any.
pub struct Probed {
    pub devices: Vec<Box<dyn Device>>,
    pub note: Option<String>,
    /// Set when CUDA cannot be used and `devices` are the NVIDIA GPUs of the
    /// PCI bus, each untestable ([`unusable`]): why, in one line.
    pub unusable: Option<ProbeError>,
}

/// The CUDA devices of this node, one per visible ordinal (a GPU in MIG
/// mode is one device that cannot be tested, [`MIG_TODO`]). When CUDA
/// cannot be used (libcuda missing, cuInit or the enumeration failing) but
/// the PCI bus shows NVIDIA GPUs ([`crate::telemetry::pci`]), one device
/// per GPU that cannot be tested and says why ([`unusable`]); else one line
/// saying why there are none.
pub fn probe() -> Result<Probed, ProbeError> {
    let why = match probe_driver() {
        Ok(found) => return Ok(found),
        Err(why) => why,
    };
    let gpus = crate::telemetry::pci::nvidia_gpus();
    if !gpus.is_empty() && unusable::container_without_gpus() {
        let mut why = why;
        why.message.push_str(&format!(
            " (this container was given no GPU, NVIDIA_VISIBLE_DEVICES is not set; the {} NVIDIA GPU(s) its /sys shows are the host's: run it with the NVIDIA container runtime, e.g. docker run --gpus all, or a pod that requests nvidia.com/gpu)",
            gpus.len()
        ));
        return Err(why);
    }
    match unusable::placeholders(&gpus, &why) {
        Some(devices) => Ok(Probed {
            note: Some(unusable::note(&why, devices.len())),
            devices,
            unusable: Some(why),
        }),
        None => Err(why),
    }
}

/// The CUDA devices of this node as the driver lists them.
fn probe_driver() -> Result<Probed, ProbeError> {
    // SAFETY: only opens and closes the candidate library names; no symbol
    // is used.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(ProbeError {
            message: NO_LIBCUDA.into(),
            node_state: None,
            cause: Cause::NoLibrary,
        });
    }
    let (infos, note) = guarded(query_devices)
        .map_err(|p| ProbeError::plain(format!("the CUDA driver failed: {p}")))??;
    let devices = infos
        .into_iter()
        .map(|(mut info, capability, mig)| {
            // NVML knows what the driver API does not: serial and PCI device
            // id (which picks the baseline). Without NVML both stay unknown.
            let bus = info.pci_bus_id.clone().unwrap_or_default();
            if let Ok(id) = crate::telemetry::nvml::identity(&bus) {
                info.serial = id.serial;
                info.pci_device_id = id.pci_device_id;
            }
            info.simulated = identity::is_virtual(&info.name, info.pci_device_id);
            let sensor = crate::telemetry::nvml::NvmlSensor::for_bus_id(&bus)
                .ok()
                .map(|s| Arc::new(s) as Arc<dyn crate::telemetry::Sensor>);
            Box::new(CudaDevice {
                mig,
                ordinal: info.index,
                capability,
                info,
                gpu: None,
                sensor,
            }) as Box<dyn Device>
        })
        .collect::<Vec<_>>();
    // A GPU the PCI bus shows and CUDA does not list is never left out
    // quietly: it is a device of the run that says why it is missing.
    let listed: Vec<String> = devices
        .iter()
        .filter_map(|d| d.info().pci_bus_id.clone())
        .collect();
    let first = devices
        .iter()
        .map(|d| d.info().index + 1)
        .max()
        .unwrap_or(0);
    let missing = unusable::unlisted(&crate::telemetry::pci::nvidia_gpus(), &listed, first);
    let note = match (note, missing.len()) {
        (note, 0) => note,
        (note, n) => Some(
            note.into_iter()
                .chain(std::iter::once(format!(
                    "{n} NVIDIA GPU(s) on the PCI bus are not listed by CUDA: each is a device of this run that says why (devices {first} and on)"
                )))
                .collect::<Vec<_>>()
                .join("; "),
        ),
    };
    let mut devices = devices;
    devices.extend(missing);
    Ok(Probed {
        devices,
        note,
        unusable: None,
    })
}

/// The CUDA version the installed driver supports (e.g. "13.0"), when
/// there is a driver.
pub fn driver_cuda_version() -> Option<String> {
    // SAFETY: only opens and closes the candidate library names.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return None;
    }
    guarded(|| {
        let mut v = 0i32;
        // SAFETY: cuDriverGetVersion writes one int; it needs no cuInit.
        let rc = unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut v) };
        (rc == cudarc::driver::sys::CUresult::CUDA_SUCCESS)
            .then(|| format!("{}.{}", v / 1000, (v % 1000) / 10))
    })
    .ok()
    .flatten()
}

/// cuBLASLt for the library GEMMs, in one line: where it was found, or
/// why not and what happens then.
pub fn cublaslt_status() -> String {
    match blaslt::status() {
        Ok(path) => format!("cuBLASLt: {path}"),
        Err(why) => format!(
            "cuBLASLt: {why}; the library GEMMs will be skipped, kiln's mma kernel still runs"
        ),
    }
}

/// Runs `f`, turning a panic (cudarc's answer to a missing library or
/// symbol) into its message's first line.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
        let text = p
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| p.downcast_ref::<&str>().copied())
            .unwrap_or("panic in the CUDA bindings");
        text.lines().next().unwrap_or_default().to_string()
    })
}

/// `" (CUDA_VISIBLE_DEVICES=...)"` when it is set, for messages about
/// missing devices.
fn visible_note() -> String {
    std::env::var("CUDA_VISIBLE_DEVICES")
        .map(|v| format!(" (CUDA_VISIBLE_DEVICES={v:?})"))
        .unwrap_or_default()
}

/// `GPU 3 (00000000:5d:00.0)`: how messages name a device.
fn label(info: &DeviceInfo) -> String {
    match &info.pci_bus_id {
        Some(bus) => format!("GPU {} ({bus})", info.index),
        None => format!("GPU {}", info.index),
    }
}

/// A compute capability, (major, minor).
type Capability = (u32, u32);

/// A device as [`query_devices`] found it: identity, compute capability,
/// and for a GPU in MIG mode why it cannot be tested.
type Queried = (DeviceInfo, Capability, Option<String>);

/// What a technician does about a GPU in MIG mode.
pub const MIG_TODO: &str =
    "the GPU is in MIG mode, and kiln tests whole GPUs: disable MIG (nvidia-smi -i <gpu> -mig 0, then reset the GPU) and run again";

/// Initialises the driver and reads every visible device's identity and
/// compute capability (no context is created). GPUs in MIG mode are left
/// out, and named in the note.
#[allow(clippy::type_complexity)]
fn query_devices() -> Result<(Vec<Queried>, Option<String>), ProbeError> {
    use cudarc::driver::result::{self, device};
    use cudarc::driver::sys::CUdevice_attribute as A;
    result::init().map_err(|e| {
        let state = gpu::node_state(&gpu::error_name(e));
        ProbeError {
            message: format!(
                "cuInit failed: {}{}{}",
                describe(e),
                state
                    .map(|(_, todo)| format!(": {todo}"))
                    .unwrap_or_default(),
                visible_note()
            ),
            node_state: state.map(|(code, _)| code),
            cause: Cause::Driver(Some(gpu::error_name(e))),
        }
    })?;
    let count = device::get_count()
        .map_err(|e| ProbeError::driver(format!("cuDeviceGetCount failed: {}", describe(e)), e))?;
    if count <= 0 {
        return Err(ProbeError {
            message: format!("no CUDA device found{}", visible_note()),
            node_state: None,
            cause: Cause::NoDevice,
        });
    }
    let mut infos = Vec::new();
    let mut ids = Vec::new();
    for ordinal in 0..count {
        let fail = |call: &str, e| {
            ProbeError::driver(
                format!("CUDA device {ordinal}: {call} failed: {}", describe(e)),
                e,
            )
        };
        let dev = device::get(ordinal).map_err(|e| fail("cuDeviceGet", e))?;
        let name = device::get_name(dev).map_err(|e| fail("cuDeviceGetName", e))?;
        let uuid = device::get_uuid(dev).map_err(|e| fail("cuDeviceGetUuid", e))?;
        let attr = |a: A| -> Result<u32, ProbeError> {
            // SAFETY: `dev` was returned by cuDeviceGet.
            let v = unsafe { device::get_attribute(dev, a) }
                .map_err(|e| fail("cuDeviceGetAttribute", e))?;
            Ok(u32::try_from(v).unwrap_or(0))
        };
        let bus_id = format_bus_id(
            attr(A::CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID)?,
            attr(A::CU_DEVICE_ATTRIBUTE_PCI_BUS_ID)?,
            attr(A::CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID)?,
        );
        let sms = attr(A::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?;
        let capability = (
            attr(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?,
            attr(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?,
        );
        // SAFETY: `dev` was returned by cuDeviceGet.
        let memory = unsafe { device::total_mem(dev) }.map_err(|e| fail("cuDeviceTotalMem", e))?;
        let uuid = format_uuid(uuid.bytes.map(|b| b as u8));
        let ordinal = ordinal as usize;
        let simulated = identity::is_virtual(&name, None);
        ids.push(Identity {
            ordinal,
            bus_id: bus_id.clone(),
            uuid: uuid.clone(),
        });
        infos.push((
            DeviceInfo {
                index: ordinal,
                name,
                uuid: Some(uuid),
                serial: None,
                pci_bus_id: Some(bus_id),
                pci_device_id: None,
                memory_bytes: memory as u64,
                compute_units: sms,
                backend: BackendKind::Cuda,
                simulated,
            },
            capability,
        ));
    }
    let (mig, note) = identity::mig_instances(
        &infos
            .iter()
            .map(|(i, _)| {
                (
                    i.index,
                    i.name.clone(),
                    i.pci_bus_id.clone().unwrap_or_default(),
                )
            })
            .collect::<Vec<_>>(),
    );
    // A GPU in MIG mode stays, as one device (its first instance's ordinal)
    // that cannot be tested: a node state, reported and never a reject.
    let mut buses: Vec<String> = Vec::new();
    let mut kept = Vec::new();
    for (info, cap) in infos {
        let bus = info.pci_bus_id.clone().unwrap_or_default();
        if !mig.contains(&info.index) {
            kept.push((info, cap, None));
        } else if !buses.contains(&bus) {
            let why = format!(
                "{}: {MIG_TODO} ({})",
                label(&info),
                note.as_deref().unwrap_or("MIG instances share its bus id")
            );
            buses.push(bus);
            kept.push((info, cap, Some(why)));
        }
    }
    let ids: Vec<Identity> = ids
        .into_iter()
        .filter(|i| kept.iter().any(|(k, _, _)| k.index == i.ordinal))
        .collect();
    IdentityTable::new(ids).map_err(ProbeError::plain)?;
    Ok((kept, note))
}

/// One NVIDIA GPU.
pub struct CudaDevice {
    info: DeviceInfo,
    /// Set for a GPU in MIG mode: why it cannot be tested.
    mig: Option<String>,
    ordinal: usize,
    /// Compute capability (major, minor), e.g. (9, 0) for an H100.
    capability: (u32, u32),
    /// Context, stream and kernels, created on the first workload.
    gpu: Option<Gpu>,
    /// NVML sensors, matched by PCI bus id, when NVML is there.
    sensor: Option<Arc<dyn crate::telemetry::Sensor>>,
}

impl CudaDevice {
    /// The device's context, created on first use.
    fn gpu(&mut self) -> DeviceResult<&mut Gpu> {
        if let Some(why) = &self.mig {
            return Err(DeviceError::node_state("mig_enabled", why.clone()));
        }
        if self.gpu.is_none() {
            let label = label(&self.info);
            let (ordinal, sms) = (self.ordinal, self.info.compute_units);
            let virtual_gpu = self.info.simulated;
            let gpu = guarded(|| Gpu::open(ordinal, &label, sms, virtual_gpu)).map_err(|p| {
                DeviceError::failed(format!("{label}: creating the CUDA context failed: {p}"))
            })??;
            self.gpu = Some(gpu);
        }
        self.gpu
            .as_mut()
            .ok_or_else(|| DeviceError::failed("the CUDA context is missing"))
    }
}

impl Device for CudaDevice {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }

    fn sensor(&self) -> Option<Arc<dyn crate::telemetry::Sensor>> {
        self.sensor.clone()
    }

    /// The end-of-cycle check: everything queued has completed without a
    /// sticky error, and the ordinal still names the same GPU (its UUID).
    fn health(&mut self) -> DeviceResult<()> {
        let label = label(&self.info);
        if let Some(gpu) = &self.gpu {
            gpu.h.check()?;
            gpu.h
                .ctx
                .bind_to_thread()
                .map_err(|e| gpu.h.fail("the end-of-cycle check", e))?;
            gpu.h.sync("the end-of-cycle check")?;
        }
        let ordinal = self.ordinal as i32;
        let uuid = guarded(|| {
            cudarc::driver::result::device::get(ordinal)
                .and_then(cudarc::driver::result::device::get_uuid)
        })
        .map_err(|p| DeviceError::lost(format!("{label}: the end-of-cycle check failed: {p}")))?
        .map_err(|e| {
            gpu::classify(
                &label,
                "reading the GPU's identity at the end of the cycle",
                e,
            )
        })?;
        let now = format_uuid(uuid.bytes.map(|b| b as u8));
        match &self.info.uuid {
            Some(was) if *was != now => Err(DeviceError::lost(format!(
                "{label}: CUDA ordinal {} now names another GPU ({now}, was {was}): the GPU was lost or the node re-enumerated",
                self.ordinal
            ))),
            _ => Ok(()),
        }
    }

    fn sensor_inventory(&self) -> Vec<String> {
        match &self.sensor {
            Some(_) => vec!["NVML: temperature, power, clocks, throttle reasons, ECC, remapped rows, XID, PCIe link, NVLink endpoints, NVSwitch fabric, persistence and MIG modes".into()],
            None => vec![crate::telemetry::nvml::open()
                .err()
                .unwrap_or_else(|| "NVML has no entry for this GPU's bus id".into())],
        }
    }

    fn matmul(&mut self, shape: MatmulShape) -> DeviceResult<Box<dyn MatmulOp + '_>> {
        let label = label(&self.info);
        if let Some(why) = variant_problem(shape.variant, self.capability) {
            return Err(DeviceError::unsupported(format!("{label}: {why}")));
        }
        let gpu = self.gpu()?;
        let op = guarded(|| matmul::CudaMatmul::new(gpu, shape)).map_err(|p| {
            DeviceError::failed(format!("{label}: preparing the GEMM failed: {p}"))
        })??;
        Ok(Box::new(op))
    }

    fn stream(&mut self, len: usize, seed: u64) -> DeviceResult<Box<dyn StreamOp + '_>> {
        Ok(Box::new(stream::CudaStreamOp::new(self.gpu()?, len, seed)?))
    }

    fn hasher(&mut self, job: &HashJob) -> DeviceResult<Box<dyn HashOp + '_>> {
        Ok(Box::new(sha::CudaHashOp::new(self.gpu()?, job)?))
    }

    fn memtest(&mut self, words: usize) -> DeviceResult<Box<dyn MemtestOp + '_>> {
        Ok(Box::new(memtest::CudaMemtestOp::new(self.gpu()?, words)?))
    }

    fn memtest_capacity(&mut self) -> Option<u64> {
        let gpu = self.gpu().ok()?;
        gpu.h.ctx.bind_to_thread().ok()?;
        let (free, total) = guarded(cudarc::driver::result::mem_get_info).ok()?.ok()?;
        Some(memtest_share(free as u64, total as u64))
    }

    fn transfer(&mut self, words: usize, seed: u64) -> DeviceResult<Box<dyn TransferOp + '_>> {
        let label = label(&self.info);
        let gpu = self.gpu()?;
        let op = guarded(|| transfer::CudaTransfer::new(gpu, words, seed)).map_err(|p| {
            DeviceError::failed(format!("{label}: preparing the host transfers failed: {p}"))
        })??;
        Ok(Box::new(op))
    }

    fn peer(
        &mut self,
        words: usize,
        seed: u64,
        peers: &[usize],
    ) -> DeviceResult<Box<dyn PeerOp + '_>> {
        let label = label(&self.info);
        let gpu = self.gpu()?;
        let op = guarded(|| transfer::CudaPeer::new(gpu, words, seed, peers)).map_err(|p| {
            DeviceError::failed(format!("{label}: preparing the peer copies failed: {p}"))
        })??;
        Ok(Box::new(op))
    }
}

/// What the memory test may take of `free` bytes on a GPU of `total`: all
/// but a margin of a sixteenth of the memory, at least 1 GiB, for the
/// driver, the test's own scratch and other processes' growth.
pub(crate) fn memtest_share(free: u64, total: u64) -> u64 {
    let margin = (total / 16).max(1 << 30);
    free.saturating_sub(margin)
}

/// Why a GPU of compute capability `cc` cannot run a matmul variant, if it
/// cannot: tensor-core bf16, fp16 and tf32 (and kiln's mma.sync kernel)
/// need 8.0, fp8 needs 8.9.
pub(crate) fn variant_problem(v: MatmulVariant, cc: (u32, u32)) -> Option<String> {
    let need = match (v.engine, v.precision) {
        (_, Precision::Fp8) => (8, 9),
        (Engine::Mma, _) | (_, Precision::Bf16 | Precision::Tf32) => (8, 0),
        _ => (0, 0),
    };
    (cc < need).then(|| {
        format!(
            "the {} matmul needs compute capability {}.{} or later; this GPU has {}.{}",
            v.name(),
            need.0,
            need.1,
            cc.0,
            cc.1
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cublaslt_status_is_one_line() {
        let s = cublaslt_status();
        assert!(s.starts_with("cuBLASLt: ") && !s.contains('\n'), "{s}");
        if blaslt::status().is_err() {
            assert!(s.contains("will be skipped"), "{s}");
        }
    }

    #[test]
    fn the_memory_test_leaves_a_margin() {
        let gib = 1u64 << 30;
        // An idle H100: 79 GiB free of 80, 5 GiB margin.
        assert_eq!(memtest_share(79 * gib, 80 * gib), 74 * gib);
        // A small card keeps at least 1 GiB.
        assert_eq!(memtest_share(7 * gib, 8 * gib), 6 * gib);
        assert_eq!(memtest_share(gib / 2, 8 * gib), 0);
    }

    #[test]
    fn variants_follow_the_compute_capability() {
        let fp8 = MatmulVariant::library(Precision::Fp8);
        assert_eq!(variant_problem(fp8, (9, 0)), None);
        assert_eq!(variant_problem(fp8, (8, 9)), None);
        let why = variant_problem(fp8, (8, 0)).expect("A100 has no fp8");
        assert_eq!(
            why,
            "the fp8 matmul needs compute capability 8.9 or later; this GPU has 8.0"
        );
        assert!(variant_problem(MatmulVariant::mma(Precision::Bf16), (7, 5)).is_some());
        assert_eq!(
            variant_problem(MatmulVariant::mma(Precision::Fp16), (8, 0)),
            None
        );
        assert_eq!(
            variant_problem(MatmulVariant::library(Precision::Fp64), (7, 0)),
            None
        );
    }

    #[test]
    fn probe_answers_in_one_line_without_panicking() {
        // SAFETY: as in probe.
        let present = unsafe { cudarc::driver::sys::is_culib_present() };
        match probe() {
            Err(why) => {
                let why = why.message;
                assert!(!why.is_empty() && !why.contains('\n'), "{why:?}");
                if !present {
                    assert_eq!(why, NO_LIBCUDA);
                }
            }
            Ok(Probed {
                devices,
                unusable: Some(why),
                ..
            }) => {
                // The PCI bus shows GPUs CUDA cannot use: each says why.
                assert!(!devices.is_empty());
                assert_eq!(present, why.cause != Cause::NoLibrary);
                for d in &devices {
                    assert!(d.untestable().is_some_and(|e| e.node_state.is_some()));
                }
            }
            Ok(Probed { devices, .. }) => {
                assert!(present);
                for (k, d) in devices.iter().enumerate() {
                    let i = d.info();
                    assert_eq!(
                        (i.index, i.backend, i.simulated),
                        (
                            k,
                            BackendKind::Cuda,
                            identity::is_virtual(&i.name, i.pci_device_id)
                        )
                    );
                    assert!(i.uuid.as_deref().is_some_and(|u| u.starts_with("GPU-")));
                }
            }
        }
    }

    #[test]
    fn panics_in_the_bindings_become_one_line() {
        let r: Result<(), String> = guarded(|| panic!("Unable to load \"cuda\"\nsecond line"));
        assert_eq!(r.unwrap_err(), "Unable to load \"cuda\"");
        let owned = guarded(|| std::panic::panic_any(String::from("owned")));
        assert_eq!(owned.unwrap_err(), "owned");
        assert_eq!(guarded(|| 5), Ok(5));
    }

    #[test]
    fn labels_name_ordinal_and_bus() {
        let mut info = DeviceInfo {
            index: 3,
            name: "x".into(),
            uuid: None,
            serial: None,
            pci_bus_id: Some("00000000:5d:00.0".into()),
            pci_device_id: None,
            memory_bytes: 0,
            compute_units: 132,
            backend: BackendKind::Cuda,
            simulated: false,
        };
        assert_eq!(label(&info), "GPU 3 (00000000:5d:00.0)");
        info.pci_bus_id = None;
        assert_eq!(label(&info), "GPU 3");
    }
}

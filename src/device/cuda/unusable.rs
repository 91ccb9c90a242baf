//! NVIDIA GPUs that CUDA cannot use: the PCI bus shows them
//! ([`crate::telemetry::pci`]), but the driver is missing, bound to
//! something else, or fails. Each becomes one device that answers every
//! operation with a node state, so a run of such a node goes through the
//! whole pipeline and says "could not test" per GPU (exit 5), never PASS on
//! its CPU and never a reject.
//!
//! Reason codes: `driver_missing` (libcuda.so not found, or no driver or a
//! driver other than nvidia bound to the GPU), `driver_failed` (the driver
//! is there but cuInit or the enumeration fails for another reason), or the
//! node state cuInit itself names (`fabric_manager_down`, `gpu_busy`).

use super::{Cause, ProbeError};
use crate::device::{
    BackendKind, Device, DeviceError, DeviceInfo, DeviceResult, HashOp, MatmulOp, MatmulShape,
    MemtestOp, PeerOp, StreamOp, TransferOp,
};
use crate::reference::hash::HashJob;
use crate::telemetry::pci::PciGpu;

/// `driver_missing`: no usable NVIDIA driver for the GPU.
pub const DRIVER_MISSING: &str = "driver_missing";

/// `driver_failed`: the driver is there and fails.
pub const DRIVER_FAILED: &str = "driver_failed";

/// What to do when the whole driver is missing.
const INSTALL: &str = "install the NVIDIA driver (the distribution's nvidia-driver or cuda-drivers package), load it (modprobe nvidia), check that nvidia-smi lists the GPU, and read dmesg (NVRM lines) for why the module did not load";

/// A GPU that cannot be tested, and why.
pub struct UnusableGpu {
    info: DeviceInfo,
    code: &'static str,
    message: String,
    /// The driver is bound and works for the node's other GPUs, but not
    /// for this one: the GPU's problem (lost), not the node's.
    lost: bool,
}

impl UnusableGpu {
    /// The error every operation answers.
    fn error(&self) -> DeviceError {
        if self.lost {
            DeviceError::lost(self.message.clone()).with_code(self.code)
        } else {
            DeviceError::node_state(self.code, self.message.clone())
        }
    }
}

/// The identity of a GPU seen only on the PCI bus, as kiln's device `index`.
fn info_of(gpu: &PciGpu, index: usize) -> DeviceInfo {
    DeviceInfo {
        index,
        name: gpu.name(),
        uuid: None,
        serial: None,
        pci_bus_id: Some(gpu.bus_id.clone()),
        pci_device_id: Some(gpu.device_id),
        memory_bytes: 0,
        compute_units: 0,
        backend: BackendKind::Cuda,
        simulated: false,
    }
}

/// The GPUs of `gpus` (the PCI bus) that CUDA, which works, did not list
/// among `listed` (their bus ids), each a device numbered from `first`:
/// a GPU bound to another driver or to none could not be tested
/// (`driver_missing`); one the nvidia driver is bound to and did not bring
/// up, while it brought up the others, is lost (`device_lost`: the driver
/// could not initialise it, as dmesg's RmInitAdapter or Xid 79 lines say).
/// None when this process sees only some of the node's GPUs on purpose
/// ([`restricted_view`]).
pub fn unlisted(gpus: &[PciGpu], listed: &[String], first: usize) -> Vec<Box<dyn Device>> {
    unlisted_in(gpus, listed, first, restricted_view())
}

/// [`unlisted`], told whether the view is restricted.
fn unlisted_in(
    gpus: &[PciGpu],
    listed: &[String],
    first: usize,
    restricted: bool,
) -> Vec<Box<dyn Device>> {
    if restricted {
        return Vec::new();
    }
    let norm = |b: &str| b.trim().to_ascii_lowercase();
    let listed: Vec<String> = listed.iter().map(|b| norm(b)).collect();
    gpus.iter()
        .filter(|g| !listed.contains(&norm(&g.bus_id)))
        .enumerate()
        .map(|(k, gpu)| {
            let (code, todo, lost) = match foreign(gpu, false) {
                Some(why) => (DRIVER_MISSING, why, false),
                None => (
                    "device_lost",
                    format!(
                        "the nvidia driver is bound to this GPU and brought up the node's {} other GPU(s), but not this one: it could not initialise it (read dmesg: NVRM RmInitAdapter failed, Xid 79); reboot the node, and if it stays missing reseat the GPU, then RMA",
                        listed.len()
                    ),
                    true,
                ),
            };
            Box::new(UnusableGpu {
                info: info_of(gpu, first + k),
                code,
                message: format!("{}: {todo}", gpu.bus_id),
                lost,
            }) as Box<dyn Device>
        })
        .collect()
}

/// True when the GPUs CUDA lists are a chosen share of the node's, so that
/// the PCI bus's other GPUs are someone else's: `CUDA_VISIBLE_DEVICES`
/// (Slurm's gres, a user) or `NVIDIA_VISIBLE_DEVICES` (the NVIDIA container
/// runtime, the Kubernetes device plugin) is set, or kiln runs in a
/// container (`/.dockerenv`, `/run/.containerenv`, a Kubernetes pod),
/// whose /sys shows the host's every GPU while only the allocated ones are
/// mounted. A tree given with `KILN_SYSFS_PCI` is read as the whole node's.
fn restricted_view() -> bool {
    let set = |v: &str| std::env::var_os(v).is_some_and(|x| !x.is_empty());
    set("CUDA_VISIBLE_DEVICES") || set("NVIDIA_VISIBLE_DEVICES") || in_container()
}

/// One device per GPU of `gpus` (bus order), each saying why CUDA, which
/// failed with `why`, cannot test it; None when there is no GPU to speak of,
/// or when the driver lists no device because `CUDA_VISIBLE_DEVICES` hides
/// them all (the user's choice, not the node's state).
pub fn placeholders(gpus: &[PciGpu], why: &ProbeError) -> Option<Vec<Box<dyn Device>>> {
    if gpus.is_empty() || hidden(why) {
        return None;
    }
    Some(
        gpus.iter()
            .enumerate()
            .map(|(index, gpu)| {
                let (code, todo) = reason(gpu, why);
                Box::new(UnusableGpu {
                    info: info_of(gpu, index),
                    code,
                    message: format!("{}: {todo}", gpu.bus_id),
                    lost: false,
                }) as Box<dyn Device>
            })
            .collect(),
    )
}

/// True in a container that was given no GPU (`NVIDIA_VISIBLE_DEVICES`
/// unset, empty, `void` or `none`): its /sys shows the host's GPUs, which
/// are not its to test. A tree given with `KILN_SYSFS_PCI` is read as the
/// node's.
pub fn container_without_gpus() -> bool {
    no_gpus_given(
        in_container(),
        std::env::var("NVIDIA_VISIBLE_DEVICES").ok().as_deref(),
    )
}

/// [`container_without_gpus`] of a process `in_container` whose
/// `NVIDIA_VISIBLE_DEVICES` is `visible`.
fn no_gpus_given(in_container: bool, visible: Option<&str>) -> bool {
    in_container && visible.is_none_or(|v| matches!(v.trim(), "" | "void" | "none"))
}

/// True inside a container (`/.dockerenv`, `/run/.containerenv`, a
/// Kubernetes pod), unless `KILN_SYSFS_PCI` gives the tree to read.
fn in_container() -> bool {
    let set = |v: &str| std::env::var_os(v).is_some_and(|x| !x.is_empty());
    !set(crate::telemetry::pci::SYSFS_PCI_ENV)
        && (set("KUBERNETES_SERVICE_HOST")
            || ["/.dockerenv", "/run/.containerenv"]
                .iter()
                .any(|p| std::path::Path::new(p).exists()))
}

/// True when the driver answered "no device" while `CUDA_VISIBLE_DEVICES`
/// is set: it hides the GPUs on purpose.
fn hidden(why: &ProbeError) -> bool {
    let no_device = match &why.cause {
        Cause::NoDevice => true,
        Cause::Driver(Some(e)) => e == "CUDA_ERROR_NO_DEVICE",
        _ => false,
    };
    no_device && std::env::var_os("CUDA_VISIBLE_DEVICES").is_some()
}

/// The reason code and what to do for `gpu`, when CUDA failed with `why`.
pub fn reason(gpu: &PciGpu, why: &ProbeError) -> (&'static str, String) {
    match foreign(gpu, why.cause == Cause::NoLibrary) {
        Some(todo) => (DRIVER_MISSING, todo),
        None => bound(why),
    }
}

/// Why a GPU bound to no driver or to one other than nvidia cannot be used
/// (`no_library`: libcuda.so is not found either), and what to do; None
/// when nvidia is bound to it.
fn foreign(gpu: &PciGpu, no_library: bool) -> Option<String> {
    Some(match gpu.driver.as_deref() {
        None => format!(
            "no kernel driver is bound to this GPU{}: {INSTALL}",
            if no_library {
                " and libcuda.so is not found"
            } else {
                ""
            }
        ),
        Some("vfio-pci") => "the GPU is bound to vfio-pci (reserved for passthrough to a virtual machine), not to the nvidia driver: release it from vfio-pci (remove its id from vfio-pci.ids, or write the bus id to /sys/bus/pci/drivers/vfio-pci/unbind), load the nvidia driver (modprobe nvidia) and check that nvidia-smi lists it".into(),
        Some("nouveau") => "the GPU is bound to nouveau, the open-source driver, which CUDA cannot use: blacklist nouveau (modprobe.d), install the NVIDIA driver, rebuild the initramfs and reboot; then check that nvidia-smi lists it".into(),
        Some(other) if other != crate::telemetry::pci::NVIDIA_DRIVER => format!(
            "the GPU is bound to {other}, not to the nvidia driver: unbind it from {other}, load the nvidia driver (modprobe nvidia) and check that nvidia-smi lists it"
        ),
        Some(_) => return None,
    })
}

/// The reason for a GPU the nvidia driver is bound to.
fn bound(why: &ProbeError) -> (&'static str, String) {
    if let Some(code) = why.node_state {
        return (code, why.message.clone());
    }
    match &why.cause {
        Cause::NoLibrary => (
            DRIVER_MISSING,
            "the nvidia kernel module is bound to the GPU, but libcuda.so, the driver's user-space library, is not found: install the driver's user-space libraries of the same version as the module (libnvidia-compute, nvidia-driver-cuda or the driver's .run installer), or put their folder on the library path (ldconfig; in a container, the NVIDIA container toolkit); check with nvidia-smi".into(),
        ),
        Cause::Driver(Some(e)) if e == "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH" => (
            DRIVER_FAILED,
            format!(
                "{}: libcuda and the loaded nvidia kernel module are different versions, as after a driver upgrade without a reboot: reboot the node (or unload and reload the nvidia modules), then check with nvidia-smi",
                why.message
            ),
        ),
        Cause::NoDevice | Cause::Driver(_) => (
            DRIVER_FAILED,
            format!(
                "{}: the nvidia driver is bound to the GPU but CUDA cannot use it: check nvidia-smi and dmesg (NVRM and Xid lines), reinstall the driver (kernel module and libraries of one version) or reboot",
                why.message
            ),
        ),
    }
}

/// The one line of a run whose GPUs are placeholders: `n` GPU(s), why.
pub fn note(why: &ProbeError, n: usize) -> String {
    format!("CUDA cannot use this node's {n} NVIDIA GPU(s) on the PCI bus ({why}): each could not be tested, a node problem, not the GPU's")
}

impl Device for UnusableGpu {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }

    fn untestable(&self) -> Option<DeviceError> {
        Some(self.error())
    }

    fn matmul(&mut self, _shape: MatmulShape) -> DeviceResult<Box<dyn MatmulOp + '_>> {
        Err(self.error())
    }

    fn stream(&mut self, _len: usize, _seed: u64) -> DeviceResult<Box<dyn StreamOp + '_>> {
        Err(self.error())
    }

    fn hasher(&mut self, _job: &HashJob) -> DeviceResult<Box<dyn HashOp + '_>> {
        Err(self.error())
    }

    fn memtest(&mut self, _words: usize) -> DeviceResult<Box<dyn MemtestOp + '_>> {
        Err(self.error())
    }

    fn transfer(&mut self, _words: usize, _seed: u64) -> DeviceResult<Box<dyn TransferOp + '_>> {
        Err(self.error())
    }

    fn peer(
        &mut self,
        _words: usize,
        _seed: u64,
        _peers: &[usize],
    ) -> DeviceResult<Box<dyn PeerOp + '_>> {
        Err(self.error())
    }

    fn health(&mut self) -> DeviceResult<()> {
        Err(self.error())
    }

    fn sensor_inventory(&self) -> Vec<String> {
        vec![format!(
            "no sensors: the NVIDIA driver is not usable ({})",
            self.code
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu(driver: Option<&str>) -> PciGpu {
        PciGpu {
            bus_id: "00000000:18:00.0".into(),
            device_id: 0x2330,
            class: 0x030200,
            driver: driver.map(String::from),
        }
    }

    fn failed(cause: Cause, node_state: Option<&'static str>) -> ProbeError {
        ProbeError {
            message: "cuInit failed: X".into(),
            node_state,
            cause,
        }
    }

    #[test]
    fn a_missing_or_foreign_driver_is_driver_missing_and_says_which() {
        let none = failed(Cause::NoLibrary, None);
        let (code, why) = reason(&gpu(None), &none);
        assert_eq!(code, "driver_missing");
        assert!(
            why.contains("no kernel driver is bound") && why.contains("libcuda.so is not found"),
            "{why}"
        );
        assert!(
            why.contains("modprobe nvidia") && why.contains("nvidia-smi") && why.contains("dmesg"),
            "{why}"
        );
        // A foreign driver wins over whatever cuInit said.
        let mismatch = failed(
            Cause::Driver(Some("CUDA_ERROR_SYSTEM_DRIVER_MISMATCH".into())),
            None,
        );
        for (driver, says) in [
            ("vfio-pci", "bound to vfio-pci"),
            ("nouveau", "bound to nouveau"),
            ("pci-stub", "bound to pci-stub"),
        ] {
            let (code, why) = reason(&gpu(Some(driver)), &mismatch);
            assert_eq!(code, "driver_missing", "{driver}");
            assert!(why.contains(says) && why.contains("nvidia-smi"), "{why}");
        }
        // The module is loaded, its library is not.
        let (code, why) = reason(&gpu(Some("nvidia")), &none);
        assert_eq!(code, "driver_missing");
        assert!(
            why.contains("libcuda.so") && why.contains("user-space"),
            "{why}"
        );
    }

    #[test]
    fn a_failing_driver_is_driver_failed_and_node_states_keep_their_code() {
        let nvidia = gpu(Some("nvidia"));
        let mismatch = failed(
            Cause::Driver(Some("CUDA_ERROR_SYSTEM_DRIVER_MISMATCH".into())),
            None,
        );
        let (code, why) = reason(&nvidia, &mismatch);
        assert_eq!(code, "driver_failed");
        assert!(
            why.starts_with("cuInit failed: X: ") && why.contains("reboot"),
            "{why}"
        );
        let (code, why) = reason(&nvidia, &failed(Cause::NoDevice, None));
        assert_eq!(code, "driver_failed");
        assert!(why.contains("dmesg"), "{why}");
        let down = failed(
            Cause::Driver(Some("CUDA_ERROR_SYSTEM_NOT_READY".into())),
            Some("fabric_manager_down"),
        );
        assert_eq!(
            reason(&nvidia, &down),
            ("fabric_manager_down", "cuInit failed: X".into())
        );
    }

    #[test]
    fn every_operation_answers_the_node_state() {
        let why = failed(Cause::NoLibrary, None);
        let mut devices =
            placeholders(&[gpu(None), gpu(Some("vfio-pci"))], &why).expect("two GPUs");
        assert_eq!(devices.len(), 2);
        let d = &mut devices[1];
        let info = d.info().clone();
        assert_eq!(
            (info.index, info.backend, info.memory_bytes),
            (1, BackendKind::Cuda, 0)
        );
        assert_eq!(info.pci_bus_id.as_deref(), Some("00000000:18:00.0"));
        assert_eq!(
            (info.pci_device_id, info.name.as_str()),
            (Some(0x2330), "NVIDIA H100 80GB HBM3")
        );
        assert_eq!((info.uuid, info.serial), (None, None));
        let check = |e: DeviceError| {
            assert_eq!(e.node_state, Some("driver_missing"));
            assert!(!e.lost && !e.unsupported);
            assert!(
                e.message
                    .starts_with("00000000:18:00.0: the GPU is bound to vfio-pci"),
                "{}",
                e.message
            );
        };
        check(d.stream(8, 1).err().expect("an error"));
        check(d.memtest(8).err().expect("an error"));
        check(d.transfer(8, 1).err().expect("an error"));
        check(d.peer(8, 1, &[0]).err().expect("an error"));
        check(d.health().expect_err("an error"));
        check(d.untestable().expect("untestable"));
        assert!(placeholders(&[], &why).is_none());
    }

    #[test]
    fn gpus_a_working_cuda_does_not_list_are_lost_or_held_by_another_driver() {
        let at = |bus: &str, driver: Option<&str>| PciGpu {
            bus_id: bus.into(),
            ..gpu(driver)
        };
        let bus = [
            at("00000000:18:00.0", Some("nvidia")),
            at("00000000:2A:00.0", Some("nvidia")),
            at("00000000:3a:00.0", Some("vfio-pci")),
            at("00000000:5d:00.0", None),
        ];
        // CUDA lists the first (in lower case, as kiln writes bus ids).
        let extra = unlisted_in(&bus, &["00000000:18:00.0".into()], 1, false);
        assert_eq!(extra.len(), 3);
        let indices: Vec<usize> = extra.iter().map(|d| d.info().index).collect();
        assert_eq!(indices, [1, 2, 3]);
        let errors: Vec<DeviceError> = extra
            .iter()
            .map(|d| d.untestable().expect("untestable"))
            .collect();
        // Bound to nvidia and not brought up: the GPU is lost.
        assert!(errors[0].lost && errors[0].node_state.is_none());
        assert_eq!(errors[0].code, Some("device_lost"));
        assert!(
            errors[0].message.contains("RmInitAdapter"),
            "{}",
            errors[0].message
        );
        // Another driver, or none: could not test.
        assert_eq!(errors[1].node_state, Some("driver_missing"));
        assert!(
            errors[1].message.contains("vfio-pci"),
            "{}",
            errors[1].message
        );
        assert_eq!(errors[2].node_state, Some("driver_missing"));
        assert!(
            errors[2].message.contains("no kernel driver"),
            "{}",
            errors[2].message
        );
        // Every GPU listed (bus ids compared without case): nothing extra.
        let all: Vec<String> = bus.iter().map(|g| g.bus_id.to_lowercase()).collect();
        assert!(unlisted_in(&bus, &all, 4, false).is_empty());
        // A container given no GPU: the host's GPUs are not its own.
        assert!(no_gpus_given(true, None));
        assert!(no_gpus_given(true, Some("void")));
        assert!(!no_gpus_given(true, Some("all")));
        assert!(!no_gpus_given(true, Some("GPU-1234")));
        assert!(!no_gpus_given(false, None));
        // A share of the node's GPUs (a container, CUDA_VISIBLE_DEVICES):
        // the others are someone else's.
        assert!(unlisted_in(&bus, &["00000000:18:00.0".into()], 1, true).is_empty());
    }
}

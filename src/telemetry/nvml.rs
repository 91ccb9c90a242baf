//! GPU sensors through NVML (`libnvidia-ml.so`, loaded at run time by
//! `nvml-wrapper`): temperatures, power and its enforced limit, clocks,
//! utilisation, clock throttle (event) reasons decoded bit by bit, ECC
//! counters, remapped rows, XID events and the PCIe link. Each sensor is
//! matched to its CUDA device by PCI bus id.
//!
//! When the library is absent, [`open`] says so in one line and the run
//! continues with the checks it can do. A reading NVML refuses (not
//! supported on this board, no permission) is absent, never zero.

use std::sync::{Mutex, OnceLock};

use nvml_wrapper::bitmasks::event::EventTypes;
use nvml_wrapper::enum_wrappers::device::{Clock, EccCounter, MemoryError, TemperatureSensor};
use nvml_wrapper::event::EventSet;
use nvml_wrapper::Nvml;

use crate::telemetry::fabric::{self, Changed, Fabric, FabricState, LinkEnd};
use crate::telemetry::{Sample, Sensor};

/// NVML's clock throttle (event) reason bits, from nvml.h, with kiln's
/// names for them (the names baselines use in `tolerated_throttle`).
pub const THROTTLE_BITS: [(u64, &str); 11] = [
    (0x0000_0001, "gpu_idle"),
    (0x0000_0002, "applications_clocks_setting"),
    (0x0000_0004, "sw_power_cap"),
    (0x0000_0008, "hw_slowdown"),
    (0x0000_0010, "sync_boost"),
    (0x0000_0020, "sw_thermal_slowdown"),
    (0x0000_0040, "hw_thermal_slowdown"),
    (0x0000_0080, "hw_power_brake_slowdown"),
    (0x0000_0100, "display_clock_setting"),
    // Newer nvml.h: the board's own limit, and reliability (voltage,
    // silicon aging) limits.
    (0x0000_0200, "board_limit"),
    (0x0000_0400, "reliability"),
];

/// Decodes a throttle reason mask bit by bit (never by comparing whole
/// masks: several reasons are often active at once). Unknown bits are named
/// `bit_N` so they are never silently dropped.
pub fn decode_throttle(mask: u64) -> Vec<String> {
    let mut out: Vec<String> = THROTTLE_BITS
        .iter()
        .filter(|(bit, _)| mask & bit != 0)
        .map(|(_, name)| (*name).to_string())
        .collect();
    let known: u64 = THROTTLE_BITS.iter().map(|(b, _)| b).fold(0, |a, b| a | b);
    for bit in 0..64 {
        if mask & !known & (1 << bit) != 0 {
            out.push(format!("bit_{bit}"));
        }
    }
    out
}

/// NVML, opened once for the process and kept open (its handles borrow it).
pub fn open() -> Result<&'static Nvml, String> {
    static NVML: OnceLock<Result<&'static Nvml, String>> = OnceLock::new();
    NVML.get_or_init(|| {
        Nvml::init()
            .map(|n| &*Box::leak(Box::new(n)))
            .map_err(|e| format!("NVML unavailable ({e}); GPU telemetry (temperature, power, clocks, throttling, ECC, XID, PCIe) is skipped"))
    })
    .clone()
}

/// NVML's bus id form ("00000000:18:00.0") of a CUDA bus id, which may use
/// 4 or 8 domain digits and any case.
pub fn normalize_bus_id(bus: &str) -> String {
    let lower = bus.trim().to_ascii_lowercase();
    match lower.split_once(':') {
        Some((domain, rest)) if domain.len() < 8 => format!("{domain:0>8}:{rest}"),
        _ => lower,
    }
}

/// Identity details only NVML knows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NvmlIdentity {
    /// Board serial number.
    pub serial: Option<String>,
    /// PCI device id (upper 16 bits of NVML's combined id).
    pub pci_device_id: Option<u16>,
    /// VBIOS version.
    pub vbios: Option<String>,
    /// Driver version.
    pub driver: Option<String>,
}

/// Reads what NVML knows about the GPU at `bus_id`.
pub fn identity(bus_id: &str) -> Result<NvmlIdentity, String> {
    let nvml = open()?;
    let dev = nvml
        .device_by_pci_bus_id(normalize_bus_id(bus_id))
        .map_err(|e| format!("NVML has no GPU at {bus_id}: {e}"))?;
    Ok(NvmlIdentity {
        serial: dev.serial().ok(),
        pci_device_id: dev.pci_info().ok().map(|p| (p.pci_device_id >> 16) as u16),
        vbios: dev.vbios_version().ok(),
        driver: nvml.sys_driver_version().ok(),
    })
}

/// nvml.h nvmlGpuP2PCapsIndex_t NVML_P2P_CAPS_INDEX_NVLINK.
const P2P_CAPS_INDEX_NVLINK: u32 = 2;
/// nvml.h nvmlGpuP2PStatus_t NVML_P2P_STATUS_OK.
const P2P_STATUS_OK: u32 = 0;

/// Whether the GPUs at `from` and `to` (PCI bus ids) reach each other
/// peer to peer over NVLink, as NVML's P2P status for the NVLink
/// capability says (`nvmlDeviceGetP2PStatus`); `None` when NVML cannot
/// tell (no NVML, a GPU it does not know, an older driver without the
/// call).
pub fn nvlink_p2p(from: &str, to: &str) -> Option<bool> {
    let nvml = open().ok()?;
    let a = nvml.device_by_pci_bus_id(normalize_bus_id(from)).ok()?;
    let b = nvml.device_by_pci_bus_id(normalize_bus_id(to)).ok()?;
    let f = nvml.lib().nvmlDeviceGetP2PStatus.as_ref().ok()?;
    let mut status: u32 = u32::MAX;
    // SAFETY: both handles belong to the live, leaked NVML instance; the
    // index is one of nvml.h's; `status` is a live nvmlGpuP2PStatus_t
    // (a C enum, 32 bits).
    let rc = unsafe {
        f(
            a.handle(),
            b.handle(),
            P2P_CAPS_INDEX_NVLINK,
            (&mut status as *mut u32).cast(),
        )
    };
    (rc == 0).then_some(status == P2P_STATUS_OK)
}

/// The NVML sensors of one GPU.
pub struct NvmlSensor {
    nvml: &'static Nvml,
    bus_id: String,
    events: Mutex<Option<EventSet<'static>>>,
    /// The NVLink endpoints last journaled.
    links: Changed<Vec<LinkEnd>>,
}

impl NvmlSensor {
    /// The sensors of the GPU at `bus_id`, with XID events registered.
    pub fn for_bus_id(bus_id: &str) -> Result<Self, String> {
        let nvml = open()?;
        let bus_id = normalize_bus_id(bus_id);
        let dev = nvml
            .device_by_pci_bus_id(bus_id.as_str())
            .map_err(|e| format!("NVML has no GPU at {bus_id}: {e}"))?;
        let events = nvml.create_event_set().ok().and_then(|set| {
            dev.register_events(EventTypes::CRITICAL_XID_ERROR, set)
                .ok()
        });
        Ok(NvmlSensor {
            nvml,
            bus_id,
            events: Mutex::new(events),
            links: Changed::default(),
        })
    }

    fn xid_events(&self) -> Option<Vec<u32>> {
        let guard = self.events.lock().ok()?;
        let set = guard.as_ref()?;
        let mut out = Vec::new();
        // Drain what arrived since the last sample without blocking.
        while let Ok(e) = set.wait(0) {
            match e.event_data {
                Some(nvml_wrapper::enums::event::XidError::Value(v)) => {
                    out.push(u32::try_from(v).unwrap_or(u32::MAX));
                }
                // NVML's 999: an XID whose number it could not tell. Still
                // an XID: never dropped.
                Some(nvml_wrapper::enums::event::XidError::Unknown) => out.push(999),
                None => {}
            }
        }
        Some(out)
    }
}

impl Sensor for NvmlSensor {
    fn sample(&self, t_s: f64) -> Sample {
        let Ok(dev) = self.nvml.device_by_pci_bus_id(self.bus_id.as_str()) else {
            // A GPU that fell off the bus answers nothing, but the event set
            // registered before still holds the XID (79) that says why.
            return Sample {
                t_s,
                xid: self.xid_events(),
                ..Sample::default()
            };
        };
        let (pending, failed) = remapped_rows(self.nvml, &dev);
        let link = nvlinks(&dev);
        Sample {
            t_s,
            gpu_temp_c: dev.temperature(TemperatureSensor::Gpu).ok().map(f64::from),
            mem_temp_c: None,
            power_w: dev.power_usage().ok().map(|mw| f64::from(mw) / 1000.0),
            power_limit_w: dev
                .enforced_power_limit()
                .ok()
                .map(|mw| f64::from(mw) / 1000.0),
            power_avg_s: Some(POWER_AVERAGE_S),
            sm_clock_mhz: dev.clock_info(Clock::SM).ok().map(f64::from),
            mem_clock_mhz: dev.clock_info(Clock::Memory).ok().map(f64::from),
            util_pct: dev.utilization_rates().ok().map(|u| f64::from(u.gpu)),
            throttle: clock_event_reasons(self.nvml, &dev)
                .map(decode_throttle)
                .unwrap_or_default(),
            ecc_corrected: dev
                .total_ecc_errors(MemoryError::Corrected, EccCounter::Volatile)
                .ok(),
            ecc_uncorrected: dev
                .total_ecc_errors(MemoryError::Uncorrected, EccCounter::Volatile)
                .ok(),
            remapped_rows_pending: pending,
            remapped_rows_failed: failed,
            xid: self.xid_events(),
            pcie_gen: dev.current_pcie_link_gen().ok(),
            pcie_width: dev.current_pcie_link_width().ok(),
            pcie_max_gen: dev.max_pcie_link_gen().ok(),
            pcie_max_width: dev.max_pcie_link_width().ok(),
            nvlink_links: link.map(|l| l.links),
            nvlink_active: link.map(|l| l.active),
            nvlink_replay: link.and_then(|l| l.replay),
            nvlink_crc: link.and_then(|l| l.crc),
            fabric: fabric_info(self.nvml, &dev),
            nvlink_remote: link
                .and_then(|_| remote_ends(self.nvml, &dev))
                .and_then(|ends| self.links.report(ends)),
            persistence: dev.is_in_persistent_mode().ok(),
            mig: dev.mig_mode().ok().map(|m| m.current == 1),
        }
    }
}

/// NVML's most NVLinks per GPU (`NVML_NVLINK_MAX_LINKS`).
const NVLINK_MAX_LINKS: u32 = 18;

/// The window of NVML's power reading: nvmlDeviceGetPowerUsage returns
/// power averaged over 1 s on Ampere (but GA100) and later GPUs, and an
/// instantaneous reading before; kiln takes the longer for every GPU.
pub const POWER_AVERAGE_S: f64 = 1.0;

/// A GPU's NVLinks as one sample sees them.
#[derive(Debug, Clone, Copy)]
struct Links {
    links: u32,
    active: u32,
    replay: Option<u64>,
    crc: Option<u64>,
}

/// Every NVLink NVML answers for: how many, how many active, and the
/// replay + recovery and CRC counters summed over them (None when NVML
/// reads no counter). None when the GPU has no NVLink (NOT_SUPPORTED for
/// every link).
fn nvlinks(dev: &nvml_wrapper::Device<'_>) -> Option<Links> {
    use nvml_wrapper::enum_wrappers::nv_link::ErrorCounter;
    let mut out = Links {
        links: 0,
        active: 0,
        replay: None,
        crc: None,
    };
    for l in 0..NVLINK_MAX_LINKS {
        let w = dev.link_wrapper_for(l);
        let Ok(active) = w.is_active() else {
            continue;
        };
        out.links += 1;
        out.active += u32::from(active);
        let add = |sum: &mut Option<u64>, c: ErrorCounter| {
            if let Ok(v) = w.error_counter(c) {
                *sum = Some(sum.unwrap_or(0).saturating_add(v));
            }
        };
        add(&mut out.replay, ErrorCounter::DlReplay);
        add(&mut out.replay, ErrorCounter::DlRecovery);
        add(&mut out.crc, ErrorCounter::DlCrcFlit);
        add(&mut out.crc, ErrorCounter::DlCrcData);
    }
    (out.links > 0).then_some(out)
}

/// The raw clock-event (throttle) reason mask, every bit kept.
///
/// Through the raw library, not nvml-wrapper's `current_throttle_reasons`:
/// that one decodes with `from_bits_truncate`, which drops the bits it does
/// not name (so kiln's `bit_N` could never show a new reason), and calls the
/// deprecated `nvmlDeviceGetCurrentClocksThrottleReasons`. The current
/// `nvmlDeviceGetCurrentClocksEventReasons` (driver r535 and later) is used
/// when the library has it, the deprecated one otherwise.
fn clock_event_reasons(nvml: &Nvml, dev: &nvml_wrapper::Device<'_>) -> Option<u64> {
    let lib = nvml.lib();
    let f = lib
        .nvmlDeviceGetCurrentClocksEventReasons
        .as_ref()
        .or(lib.nvmlDeviceGetCurrentClocksThrottleReasons.as_ref())
        .ok()?;
    let mut mask = 0u64;
    // SAFETY: the handle belongs to the live, leaked NVML instance; `mask`
    // is a valid u64 for the duration of the call.
    let rc = unsafe { f(dev.handle(), &mut mask) };
    (rc == 0).then_some(mask)
}

/// (pending, failed) row remapping, through the raw NVML call (Ampere and
/// later; absent elsewhere).
fn remapped_rows(nvml: &Nvml, dev: &nvml_wrapper::Device<'_>) -> (Option<u64>, Option<u64>) {
    let Ok(f) = nvml.lib().nvmlDeviceGetRemappedRows.as_ref() else {
        return (None, None);
    };
    let (mut corr, mut unc, mut pending, mut failed) = (0u32, 0u32, 0u32, 0u32);
    // SAFETY: the handle belongs to the live, leaked NVML instance; the four
    // out-pointers are valid u32s for the duration of the call.
    let rc = unsafe { f(dev.handle(), &mut corr, &mut unc, &mut pending, &mut failed) };
    if rc == 0 {
        (Some(u64::from(pending)), Some(u64::from(failed)))
    } else {
        (None, None)
    }
}

/// nvml.h `nvmlGpuFabricInfo_v3_t` (`nvmlGpuFabricInfoV_t`); the v2 struct
/// is the same without `health_summary`.
#[repr(C)]
struct FabricInfoV3 {
    version: u32,
    cluster_uuid: [u8; 16],
    status: u32,
    clique_id: u32,
    state: u8,
    health_mask: u32,
    health_summary: u8,
}

/// nvml.h NVML_STRUCT_VERSION(GpuFabricInfo, 3) and (.., 2): the struct's
/// size with the version in the top byte.
const FABRIC_INFO_V3: u32 = std::mem::size_of::<FabricInfoV3>() as u32 | (3 << 24);
const FABRIC_INFO_V2: u32 = std::mem::offset_of!(FabricInfoV3, health_summary) as u32 | (2 << 24);

/// nvml.h NVML_ERROR_ARGUMENT_VERSION_MISMATCH.
const NVML_ARGUMENT_VERSION_MISMATCH: u32 = 25;

/// The GPU's fabric info, through the raw `nvmlDeviceGetGpuFabricInfoV`
/// (nvml-wrapper has no wrapper for it): the v3 struct, or v2 from a driver
/// that answers ARGUMENT_VERSION_MISMATCH to v3, or the unversioned call
/// (no health mask) from a driver without the versioned one. None when the
/// GPU has no fabric: NOT_SUPPORTED (no NVSwitch), state NOT_SUPPORTED, or
/// any other refusal (a reading NVML refuses is absent, never a fault).
fn fabric_info(nvml: &Nvml, dev: &nvml_wrapper::Device<'_>) -> Option<Fabric> {
    let lib = nvml.lib();
    if let Ok(f) = lib.nvmlDeviceGetGpuFabricInfoV.as_ref() {
        for version in [FABRIC_INFO_V3, FABRIC_INFO_V2] {
            let mut info = FabricInfoV3 {
                version,
                cluster_uuid: [0; 16],
                status: 0,
                clique_id: 0,
                state: 0,
                health_mask: 0,
                health_summary: 0,
            };
            // SAFETY: the handle belongs to the live, leaked NVML instance;
            // `info` has nvml.h's layout of the versioned struct and lives
            // for the duration of the call.
            let rc = unsafe { f(dev.handle(), (&mut info as *mut FabricInfoV3).cast()) };
            if rc == NVML_ARGUMENT_VERSION_MISMATCH && version == FABRIC_INFO_V3 {
                continue;
            }
            if rc != 0 {
                return None;
            }
            return Some(Fabric {
                state: FabricState::from_nvml(info.state)?,
                status: info.status,
                health_mask: Some(info.health_mask),
                health_summary: (version == FABRIC_INFO_V3).then_some(info.health_summary),
                clique_id: info.clique_id,
                cluster_uuid: fabric::format_uuid(&info.cluster_uuid),
            });
        }
        return None;
    }
    let f = lib.nvmlDeviceGetGpuFabricInfo.as_ref().ok()?;
    #[repr(C)]
    struct FabricInfoV1 {
        cluster_uuid: [u8; 16],
        status: u32,
        clique_id: u32,
        state: u8,
    }
    let mut info = FabricInfoV1 {
        cluster_uuid: [0; 16],
        status: 0,
        clique_id: 0,
        state: 0,
    };
    // SAFETY: as above, with nvml.h's unversioned `nvmlGpuFabricInfo_t`.
    let rc = unsafe { f(dev.handle(), (&mut info as *mut FabricInfoV1).cast()) };
    (rc == 0).then_some(())?;
    Some(Fabric {
        state: FabricState::from_nvml(info.state)?,
        status: info.status,
        health_mask: None,
        health_summary: None,
        clique_id: info.clique_id,
        cluster_uuid: fabric::format_uuid(&info.cluster_uuid),
    })
}

/// nvml.h `nvmlIntNvLinkDeviceType_t`: GPU 0, IBMNPU 1, SWITCH 2,
/// UNKNOWN 0xFF.
const NVLINK_DEVICE_GPU: u32 = 0;
const NVLINK_DEVICE_SWITCH: u32 = 2;

/// Where every active NVLink of the GPU ends: the far end's PCI bus id
/// (`nvmlDeviceGetNvLinkRemotePciInfo_v2`) and its kind, from
/// `nvmlDeviceGetNvLinkRemoteDeviceType` where the driver answers it (raw:
/// nvml-wrapper 0.13's wrapper drops the answer), else from the far end's
/// PCI device id (an NVSwitch's) or from NVML listing a GPU at that bus.
/// None when no active link answers.
fn remote_ends(nvml: &Nvml, dev: &nvml_wrapper::Device<'_>) -> Option<Vec<LinkEnd>> {
    let kind_of = nvml.lib().nvmlDeviceGetNvLinkRemoteDeviceType.as_ref().ok();
    let mut out = Vec::new();
    for l in 0..NVLINK_MAX_LINKS {
        let w = dev.link_wrapper_for(l);
        if !matches!(w.is_active(), Ok(true)) {
            continue;
        }
        let Ok(pci) = w.remote_pci_info() else {
            continue;
        };
        let bus = normalize_bus_id(&pci.bus_id);
        let told = kind_of.and_then(|f| {
            let mut t = 0xffu32;
            // SAFETY: the handle belongs to the live, leaked NVML instance;
            // `t` is a valid nvmlIntNvLinkDeviceType_t (unsigned int).
            let rc = unsafe { f(dev.handle(), l, &mut t) };
            (rc == 0).then_some(t)
        });
        let device_id = (pci.pci_device_id >> 16) as u16;
        let listed_gpu = nvml.device_by_pci_bus_id(bus.as_str()).is_ok();
        let remote = match told {
            Some(NVLINK_DEVICE_SWITCH) => fabric::REMOTE_NVSWITCH,
            Some(NVLINK_DEVICE_GPU) if listed_gpu => fabric::REMOTE_GPU,
            Some(_) => fabric::REMOTE_UNKNOWN,
            None if fabric::NVSWITCH_PCI_IDS.contains(&device_id) => fabric::REMOTE_NVSWITCH,
            None if listed_gpu => fabric::REMOTE_GPU,
            None => fabric::REMOTE_UNKNOWN,
        };
        out.push(LinkEnd {
            link: l,
            remote_bus: bus,
            remote: remote.to_string(),
        });
    }
    (!out.is_empty()).then_some(out)
}

/// Every GPU NVML lists, with its fabric info: what `kiln check` reads
/// when CUDA itself refuses to start (an NVSwitch node whose fabric
/// manager is down answers cuInit with CUDA_ERROR_SYSTEM_NOT_READY).
pub fn fabric_states() -> Result<Vec<(String, Option<Fabric>)>, String> {
    let nvml = open()?;
    let n = nvml.device_count().map_err(|e| format!("NVML: {e}"))?;
    let mut out = Vec::new();
    for i in 0..n {
        let Ok(dev) = nvml.device_by_index(i) else {
            continue;
        };
        let bus = dev
            .pci_info()
            .map(|p| normalize_bus_id(&p.bus_id))
            .unwrap_or_else(|_| format!("NVML index {i}"));
        out.push((bus, fabric_info(nvml, &dev)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nvml_wrapper::bitmasks::device::ThrottleReasons;

    #[test]
    fn fabric_struct_versions_are_nvml_h_sizes() {
        // nvmlGpuFabricInfo_v3_t is 40 bytes, _v2_t 36 (x86-64, AArch64).
        assert_eq!(FABRIC_INFO_V3, 40 | (3 << 24));
        assert_eq!(FABRIC_INFO_V2, 36 | (2 << 24));
    }

    #[test]
    fn several_bits_decode_each_on_its_own() {
        // Thermal + power brake + power cap at once, plus an unknown bit.
        let mask = 0x20 | 0x80 | 0x4 | (1 << 40);
        assert_eq!(
            decode_throttle(mask),
            vec![
                "sw_power_cap",
                "sw_thermal_slowdown",
                "hw_power_brake_slowdown",
                "bit_40"
            ]
        );
        assert!(decode_throttle(0).is_empty());
        assert_eq!(decode_throttle(0x1), vec!["gpu_idle"]);
    }

    #[test]
    fn our_bit_table_matches_nvml_wrapper() {
        let pairs = [
            (ThrottleReasons::GPU_IDLE, "gpu_idle"),
            (
                ThrottleReasons::APPLICATIONS_CLOCKS_SETTING,
                "applications_clocks_setting",
            ),
            (ThrottleReasons::SW_POWER_CAP, "sw_power_cap"),
            (ThrottleReasons::HW_SLOWDOWN, "hw_slowdown"),
            (ThrottleReasons::SYNC_BOOST, "sync_boost"),
            (ThrottleReasons::SW_THERMAL_SLOWDOWN, "sw_thermal_slowdown"),
            (ThrottleReasons::HW_THERMAL_SLOWDOWN, "hw_thermal_slowdown"),
            (
                ThrottleReasons::HW_POWER_BRAKE_SLOWDOWN,
                "hw_power_brake_slowdown",
            ),
            (
                ThrottleReasons::DISPLAY_CLOCK_SETTING,
                "display_clock_setting",
            ),
        ];
        for (flag, name) in pairs {
            assert_eq!(decode_throttle(flag.bits()), vec![name]);
        }
        // Every name is one the baselines accept.
        for (_, name) in THROTTLE_BITS {
            assert!(crate::telemetry::THROTTLE_REASONS.contains(&name), "{name}");
        }
    }

    #[test]
    fn bus_ids_are_normalised_to_nvml_form() {
        assert_eq!(normalize_bus_id("0000:18:00.0"), "00000000:18:00.0");
        assert_eq!(normalize_bus_id("00000000:5D:00.0"), "00000000:5d:00.0");
    }

    #[test]
    fn without_the_driver_nvml_is_unavailable_in_one_line() {
        // This machine has no NVIDIA driver; on one that has, this is skipped.
        if let Err(e) = open() {
            assert!(e.starts_with("NVML unavailable"), "{e}");
            assert!(!e.contains('\n'));
        }
    }
}

//! Telemetry: what a device's sensors say while it works.
//!
//! A backend that has sensors hands out a [`Sensor`], which the runner samples
//! from its own thread (never the device's), at the start, about once a second
//! while workloads run, and at the end. Every sample is journaled; the verdict
//! engine reads them for the telemetry rules. A sensor a device does not have
//! is `None`, never zero.
//!
//! Layer: sensors, beside the devices that own them: above `reference`, `stats`
//! and `error`, which it may import, and below `device`, which hands its
//! sensors out. It imports nothing of `device` or of any layer above
//! (tests/layers.rs checks it).

pub mod fabric;
pub mod host;
pub mod kernel_log;
pub mod nvml;
pub mod pci;

use serde::{Deserialize, Serialize};

/// NVML clock event (throttle) reason names, in NVML's bit order: what a
/// sample's throttle reasons are called and a baseline may tolerate.
pub const THROTTLE_REASONS: [&str; 11] = [
    "gpu_idle",
    "applications_clocks_setting",
    "sw_power_cap",
    "hw_slowdown",
    "sync_boost",
    "sw_thermal_slowdown",
    "hw_thermal_slowdown",
    "hw_power_brake_slowdown",
    "display_clock_setting",
    "board_limit",
    "reliability",
];

/// One reading of a device's sensors. Counters are cumulative since boot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since the run started.
    pub t_s: f64,
    /// GPU (or CPU package) temperature, degrees Celsius.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_temp_c: Option<f64>,
    /// Memory temperature, degrees Celsius.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_temp_c: Option<f64>,
    /// Power draw, watts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_w: Option<f64>,
    /// Enforced power limit, watts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_limit_w: Option<f64>,
    /// Seconds the power reading averages over, ending at `t_s` (NVML:
    /// [`nvml::POWER_AVERAGE_S`]); `None`: an instantaneous reading. A
    /// reading judges a phase only when its whole window lies inside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_avg_s: Option<f64>,
    /// SM (or core) clock, MHz.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sm_clock_mhz: Option<f64>,
    /// Memory clock, MHz.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_clock_mhz: Option<f64>,
    /// Utilisation, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub util_pct: Option<f64>,
    /// Clock throttle (event) reasons active now, by NVML name, e.g.
    /// `sw_thermal_slowdown`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub throttle: Vec<String>,
    /// Corrected ECC errors, cumulative.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecc_corrected: Option<u64>,
    /// Uncorrected ECC errors, cumulative.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecc_uncorrected: Option<u64>,
    /// Rows waiting to be remapped at the next reset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remapped_rows_pending: Option<u64>,
    /// Row remappings that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remapped_rows_failed: Option<u64>,
    /// XID error events since the previous sample; `None` when the device
    /// has no XID event source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xid: Option<Vec<u32>>,
    /// Current PCIe link generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pcie_gen: Option<u32>,
    /// Current PCIe link width (lanes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pcie_width: Option<u32>,
    /// Maximum PCIe generation of the device and slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pcie_max_gen: Option<u32>,
    /// Maximum PCIe width of the device and slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pcie_max_width: Option<u32>,
    /// NVLinks the device has (those NVML answers for); `None`: no NVLink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nvlink_links: Option<u32>,
    /// Of those, active now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nvlink_active: Option<u32>,
    /// Data-link replay and recovery errors, summed over every link,
    /// cumulative.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nvlink_replay: Option<u64>,
    /// CRC errors (flit and data), summed over every link, cumulative.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nvlink_crc: Option<u64>,
    /// The NVSwitch fabric as the GPU reports it (registration state,
    /// probe status, health mask, clique and cluster); `None`: no fabric
    /// (no NVSwitch, or NVML says NOT_SUPPORTED).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fabric: Option<fabric::Fabric>,
    /// Where each active NVLink ends. Journaled in the first sample and
    /// again only when it changes (it is the board's wiring); `None` in the
    /// samples between, and on a device without NVLink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nvlink_remote: Option<Vec<fabric::LinkEnd>>,
    /// Persistence mode enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<bool>,
    /// MIG mode enabled (the current mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mig: Option<bool>,
}

/// A device's sensors, readable from any thread.
pub trait Sensor: Send + Sync {
    /// Reads every sensor now; `t_s` is the time since the run started.
    fn sample(&self, t_s: f64) -> Sample;
}

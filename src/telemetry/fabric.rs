//! The NVLink fabric as a GPU reports it: its registration with the fabric
//! manager and the fabric's health (NVML's `nvmlGpuFabricInfo_v3_t`), and
//! where each active NVLink ends (NVML's remote PCI info and remote device
//! type). Plain data and its decoding per nvml.h, no I/O: the sensors
//! (`nvml.rs`, the sim backend) fill it, the verdict judges it.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// nvml.h `NVML_GPU_FABRIC_STATE_*`: where the GPU's registration with the
/// fabric manager stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FabricState {
    /// 1: the fabric manager has not started registering the GPU.
    NotStarted,
    /// 2: registration under way.
    InProgress,
    /// 3: registration finished; `status` says how.
    Completed,
}

impl FabricState {
    /// From nvml.h's value; 0 (NOT_SUPPORTED) and unknown values are None.
    pub fn from_nvml(v: u8) -> Option<FabricState> {
        match v {
            1 => Some(FabricState::NotStarted),
            2 => Some(FabricState::InProgress),
            3 => Some(FabricState::Completed),
            _ => None,
        }
    }

    /// In words.
    pub fn words(self) -> &'static str {
        match self {
            FabricState::NotStarted => "not started",
            FabricState::InProgress => "in progress",
            FabricState::Completed => "completed",
        }
    }
}

/// One reading of a GPU's fabric info (NVML `nvmlDeviceGetGpuFabricInfoV`).
/// A GPU without a fabric (no NVSwitch, NVML_ERROR_NOT_SUPPORTED or state
/// NOT_SUPPORTED) has none: the sample's field is absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fabric {
    /// Registration state.
    pub state: FabricState,
    /// The probe's `nvmlReturn_t` (0: NVML_SUCCESS); meaningful only once
    /// the state is completed.
    pub status: u32,
    /// `NVML_GPU_FABRIC_HEALTH_MASK_*` fields; None where the driver has no
    /// health mask (the v1 struct).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_mask: Option<u32>,
    /// `NVML_GPU_FABRIC_HEALTH_SUMMARY_*` (0 not supported, 1 healthy,
    /// 2 unhealthy, 3 limited capacity); None before the v3 struct.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_summary: Option<u8>,
    /// The fabric clique of the GPU (0 on a single-node NVSwitch system).
    pub clique_id: u32,
    /// The cluster UUID, `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (all zeros
    /// on a single-node NVSwitch system).
    pub cluster_uuid: String,
}

/// The all-zero cluster UUID of a GPU that belongs to no multi-node cluster.
pub const ZERO_UUID: &str = "00000000-0000-0000-0000-000000000000";

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` of 16 bytes.
pub fn format_uuid(b: &[u8; 16]) -> String {
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The fields of the health mask (nvml.h: `NVML_GPU_FABRIC_HEALTH_MASK_SHIFT_*`
/// and `_WIDTH_*`, the width being the field's mask), each with the values
/// that are a problem and what they mean. Every field's 0 is NOT_SUPPORTED,
/// never a problem.
/// One field: name, shift, width mask, and its problem values in words.
type HealthField = (&'static str, u32, u32, &'static [(u32, &'static str)]);

const HEALTH_FIELDS: [HealthField; 5] = [
    ("degraded_bw", 0, 0x3, &[(1, "bandwidth degraded")]),
    (
        "route_recovery",
        2,
        0x3,
        &[(1, "route recovery in progress")],
    ),
    ("route_unhealthy", 4, 0x3, &[(1, "route unhealthy")]),
    (
        "access_timeout_recovery",
        6,
        0x3,
        &[(1, "access timeout recovery in progress")],
    ),
    (
        "incorrect_configuration",
        8,
        0xf,
        &[
            (2, "incorrect configuration: system GUID"),
            (3, "incorrect configuration: chassis serial number"),
            (4, "incorrect configuration: no partition"),
            (5, "incorrect configuration: insufficient NVLinks"),
            (6, "incorrect configuration: incompatible GPU firmware"),
            (7, "incorrect configuration: invalid location"),
        ],
    ),
];

/// The value of one health-mask field: `(mask >> shift) & width`, as
/// nvml.h's `NVML_GPU_FABRIC_HEALTH_GET` reads it.
pub fn health_field(mask: u32, shift: u32, width: u32) -> u32 {
    (mask >> shift) & width
}

/// What the health mask says is wrong, field by field (never the mask as a
/// whole: several fields are set at once, and each one's "false" is 2, not
/// 0). An unknown value of a field is named with its number.
pub fn health_problems(mask: u32) -> Vec<String> {
    let mut out = Vec::new();
    for (name, shift, width, bad) in HEALTH_FIELDS {
        let v = health_field(mask, shift, width);
        if let Some((_, what)) = bad.iter().find(|(b, _)| *b == v) {
            out.push((*what).to_string());
        } else if name == "incorrect_configuration" && v > 7 {
            out.push(format!("incorrect configuration: code {v}"));
        } else if name != "incorrect_configuration" && v == 3 {
            out.push(format!("{name}: value 3 (not in nvml.h)"));
        }
    }
    out
}

/// What a fabric reading says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FabricFinding {
    /// Registered, probe succeeded, nothing in the health mask.
    Healthy,
    /// The fabric manager has not registered the GPU (not started or in
    /// progress): a node state, not the GPU's fault.
    ManagerDown(String),
    /// Registered, but the probe failed or the health mask reports a
    /// problem (or, where required, no cluster is set).
    Unhealthy(String),
}

impl Fabric {
    /// Judges the reading. `multinode`: the GPU is part of a multi-node
    /// NVLink system (the baseline says so), which must have a cluster UUID
    /// and a clique id; a single-node NVSwitch system (HGX H100/H200)
    /// reports zeros there and is healthy.
    pub fn finding(&self, multinode: bool) -> FabricFinding {
        if self.state != FabricState::Completed {
            return FabricFinding::ManagerDown(format!(
                "fabric registration {}: the NVSwitch fabric manager has not registered the GPU (is nvidia-fabricmanager running?)",
                self.state.words()
            ));
        }
        let mut wrong = Vec::new();
        if self.status != 0 {
            wrong.push(format!(
                "fabric probe status {} ({})",
                self.status,
                nvml_return_words(self.status)
            ));
        }
        if let Some(mask) = self.health_mask {
            wrong.extend(health_problems(mask));
        }
        if self.health_summary == Some(2) && wrong.is_empty() {
            wrong.push("health summary unhealthy".into());
        }
        if multinode {
            if self.cluster_uuid == ZERO_UUID || self.cluster_uuid.is_empty() {
                wrong.push("no cluster UUID (all zeros) on a multi-node NVLink system".into());
            }
            if self.clique_id == 0 {
                wrong.push("clique id 0 on a multi-node NVLink system".into());
            }
        }
        if wrong.is_empty() {
            FabricFinding::Healthy
        } else {
            FabricFinding::Unhealthy(format!(
                "fabric registered, but {} (health mask {:#x})",
                wrong.join(", "),
                self.health_mask.unwrap_or(0)
            ))
        }
    }

    /// One line: `completed, status 0, healthy mask 0x1aa, clique 0, cluster 00000000-...`.
    pub fn summary(&self) -> String {
        format!(
            "state {}, status {}, health mask {}, clique {}, cluster {}",
            self.state.words(),
            self.status,
            self.health_mask
                .map_or_else(|| "absent".to_string(), |m| format!("{m:#x}")),
            self.clique_id,
            self.cluster_uuid
        )
    }
}

/// The healthy mask: every field at its "false"/"none" value.
pub const HEALTHY_MASK: u32 = 2 | (2 << 2) | (2 << 4) | (2 << 6) | (1 << 8);

/// The words of the nvmlReturn_t values a fabric probe reports.
fn nvml_return_words(v: u32) -> &'static str {
    match v {
        0 => "success",
        2 => "invalid argument",
        3 => "not supported",
        10 => "timeout",
        15 => "GPU is lost",
        23 => "insufficient resources",
        27 => "not ready",
        999 => "unknown error",
        _ => "an NVML error",
    }
}

/// Where an active NVLink ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkEnd {
    /// The link number (0 to 17 on Hopper).
    pub link: u32,
    /// PCI bus id of the far end, NVML form (`00000000:05:00.0`).
    pub remote_bus: String,
    /// `nvswitch`, `gpu` (a GPU this node's NVML lists) or `unknown`
    /// (anything else: an NPU, an unlisted device, no reply).
    pub remote: String,
}

/// Remote kinds of [`LinkEnd::remote`].
pub const REMOTE_NVSWITCH: &str = "nvswitch";
pub const REMOTE_GPU: &str = "gpu";
pub const REMOTE_UNKNOWN: &str = "unknown";

/// PCI device ids of NVIDIA's NVSwitches as they appear at the far end of
/// a GPU's NVLink (Hopper-generation NVSwitch of HGX H100/H200 boards:
/// 0x22a3; Ampere-generation of HGX A100: 0x1af1), used when NVML does not
/// say the remote device's type.
pub const NVSWITCH_PCI_IDS: [u16; 2] = [0x22a3, 0x1af1];

/// Holds the last value a sensor reported, so that a value that rarely
/// changes (the NVLink endpoints) is journaled when first read and when it
/// changes, not in every sample.
#[derive(Debug, Default)]
pub struct Changed<T>(Mutex<Option<T>>);

impl<T: PartialEq + Clone> Changed<T> {
    /// `now` when it differs from the last value reported (or is the
    /// first), else None.
    pub fn report(&self, now: T) -> Option<T> {
        let Ok(mut last) = self.0.lock() else {
            return Some(now);
        };
        if last.as_ref() == Some(&now) {
            return None;
        }
        *last = Some(now.clone());
        Some(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fabric(mask: u32) -> Fabric {
        Fabric {
            state: FabricState::Completed,
            status: 0,
            health_mask: Some(mask),
            health_summary: Some(1),
            clique_id: 0,
            cluster_uuid: ZERO_UUID.into(),
        }
    }

    #[test]
    fn the_health_mask_is_decoded_field_by_field() {
        assert!(health_problems(HEALTHY_MASK).is_empty());
        // Every field NOT_SUPPORTED: nothing to report.
        assert!(health_problems(0).is_empty());
        // Degraded bandwidth alone (TRUE = 1 at shift 0).
        assert_eq!(
            health_problems((HEALTHY_MASK & !0x3) | 1),
            ["bandwidth degraded"]
        );
        // Route unhealthy and access timeout recovery together.
        let m = (HEALTHY_MASK & !(0x3 << 4) & !(0x3 << 6)) | (1 << 4) | (1 << 6);
        assert_eq!(
            health_problems(m),
            ["route unhealthy", "access timeout recovery in progress"]
        );
        // Insufficient NVLinks in the 4-bit configuration field.
        let m = (HEALTHY_MASK & !(0xf << 8)) | (5 << 8);
        assert_eq!(
            health_problems(m),
            ["incorrect configuration: insufficient NVLinks"]
        );
    }

    #[test]
    fn a_single_node_fabric_with_zero_cluster_is_healthy_unless_multinode() {
        let f = fabric(HEALTHY_MASK);
        assert_eq!(f.finding(false), FabricFinding::Healthy);
        let FabricFinding::Unhealthy(why) = f.finding(true) else {
            panic!("multi-node without a cluster must be unhealthy");
        };
        assert!(
            why.contains("no cluster UUID") && why.contains("clique id 0"),
            "{why}"
        );
        let set = Fabric {
            clique_id: 7,
            cluster_uuid: "9c6f5af3-53bf-49b5-a436-b66766c413c3".into(),
            ..fabric(HEALTHY_MASK)
        };
        assert_eq!(set.finding(true), FabricFinding::Healthy);
    }

    #[test]
    fn not_registered_is_the_fabric_manager_and_a_failed_probe_is_unhealthy() {
        let down = Fabric {
            state: FabricState::NotStarted,
            ..fabric(0)
        };
        assert!(
            matches!(down.finding(false), FabricFinding::ManagerDown(w) if w.contains("not started"))
        );
        let failed = Fabric {
            status: 23,
            ..fabric(HEALTHY_MASK)
        };
        assert!(
            matches!(failed.finding(false), FabricFinding::Unhealthy(w) if w.contains("insufficient resources"))
        );
        assert_eq!(FabricState::from_nvml(0), None);
        assert_eq!(FabricState::from_nvml(3), Some(FabricState::Completed));
    }

    #[test]
    fn uuids_and_changes() {
        let mut b = [0u8; 16];
        assert_eq!(format_uuid(&b), ZERO_UUID);
        b[0] = 0x9c;
        b[15] = 0xc3;
        assert_eq!(format_uuid(&b), "9c000000-0000-0000-0000-0000000000c3");
        let c = Changed::default();
        assert_eq!(c.report(1), Some(1));
        assert_eq!(c.report(1), None);
        assert_eq!(c.report(2), Some(2));
    }
}

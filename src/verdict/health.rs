//! `kiln check`: a passive health check of a node, judged from one reading
//! of each device's sensors and identity, with no workload run. It is what a
//! Slurm prolog or a Kubernetes init container runs before a job: seconds,
//! not minutes, and a status in the Nagios convention (0 OK, 1 WARNING,
//! 2 CRITICAL, 3 UNKNOWN).
//!
//! What one idle reading can say: the GPU count against the expected one;
//! uncorrectable ECC errors since the driver loaded and rows pending or
//! failing to remap; XID events the event set delivers; the PCIe link width
//! against the device's maximum (the generation downshifts when idle, so it
//! is not judged here); NVLinks active against the baseline's count, and
//! replay errors since boot; the temperature against the baseline's limit;
//! hardware, thermal or power-brake slowdowns at idle. Every finding has a
//! reason code (the same as `kiln run`'s, plus `gpu_missing`) and a remedy.
//!
//! Layer: part of `verdict`; pure, no I/O.

use serde::Serialize;

use super::baseline::Baseline;
use super::remedy::{self, Remedy};
use crate::device::DeviceInfo;
use crate::telemetry::Sample;

/// A health status, in the Nagios plugin convention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Warning,
    Critical,
    Unknown,
}

impl Status {
    /// The process exit code: 0, 1, 2 or 3.
    pub fn code(self) -> i32 {
        match self {
            Status::Ok => 0,
            Status::Warning => 1,
            Status::Critical => 2,
            Status::Unknown => 3,
        }
    }

    /// `OK`, `WARNING`, `CRITICAL`, `UNKNOWN`.
    pub fn word(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warning => "WARNING",
            Status::Critical => "CRITICAL",
            Status::Unknown => "UNKNOWN",
        }
    }
}

/// One thing the check found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// The device, or None for the node.
    pub device: Option<usize>,
    pub status: Status,
    /// A reason code (README's table), or `gpu_missing`, `gpu_extra`,
    /// `no_telemetry`.
    pub code: String,
    pub detail: String,
    pub remedy: Remedy,
}

/// The whole check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Health {
    /// The worst finding's status, OK when none.
    pub status: Status,
    pub devices: usize,
    pub expected_devices: Option<usize>,
    pub findings: Vec<Finding>,
}

/// One device as the check sees it.
pub struct Seen<'a> {
    pub info: &'a DeviceInfo,
    /// One reading of its sensors (None: it has none).
    pub sample: Option<Sample>,
    pub baseline: Option<&'a Baseline>,
}

/// Clock event reasons that mean the GPU is held back even at idle.
const CRITICAL_THROTTLE: &[(&str, &str)] = &[
    ("hw_slowdown", "hw_slowdown"),
    ("hw_thermal_slowdown", "thermal_throttle"),
    ("sw_thermal_slowdown", "thermal_throttle"),
    ("hw_power_brake_slowdown", "power_throttle"),
];

/// Judges the node from what was seen; `expect` is `--expect-gpus`.
pub fn assess(seen: &[Seen<'_>], expect: Option<usize>) -> Health {
    let mut findings = Vec::new();
    let mut add =
        |device: Option<usize>, status: Status, code: &str, remedy: Remedy, detail: String| {
            findings.push(Finding {
                device,
                status,
                code: code.into(),
                detail,
                remedy,
            })
        };
    match expect {
        Some(n) if seen.len() < n => add(
            None,
            Status::Critical,
            "gpu_missing",
            Remedy::RebootNode,
            format!(
                "{} GPU(s) found, {n} expected: a GPU is off the bus, not enumerated or hidden (CUDA_VISIBLE_DEVICES)",
                seen.len()
            ),
        ),
        Some(n) if seen.len() > n => add(
            None,
            Status::Warning,
            "gpu_extra",
            Remedy::Rerun,
            format!("{} GPU(s) found, {n} expected", seen.len()),
        ),
        _ => {}
    }
    for d in seen {
        let i = Some(d.info.index);
        let Some(s) = &d.sample else {
            add(
                i,
                Status::Unknown,
                "no_telemetry",
                Remedy::FixNodeSoftware,
                "no sensor reading (NVML missing or not answering)".into(),
            );
            continue;
        };
        let limits = d.baseline.map(|b| &b.limits);
        if let Some(n) = s.ecc_uncorrected.filter(|n| *n > 0) {
            add(
                i,
                Status::Critical,
                "ecc_uncorrectable",
                remedy::remedy_of("ecc_uncorrectable"),
                format!("{n} uncorrectable ECC error(s) since the driver loaded"),
            );
        }
        if let Some(n) = s.remapped_rows_failed.filter(|n| *n > 0) {
            add(
                i,
                Status::Critical,
                "row_remap",
                Remedy::Rma,
                format!("{n} row remapping(s) failed: the memory cannot be repaired"),
            );
        } else if let Some(n) = s.remapped_rows_pending.filter(|n| *n > 0) {
            add(
                i,
                Status::Critical,
                "row_remap",
                Remedy::ResetGpu,
                format!("{n} row(s) pending remapping: reset the GPU before use"),
            );
        }
        for x in s.xid.iter().flatten() {
            let what = remedy::xid(*x);
            add(
                i,
                if what.remedy == Remedy::Rerun {
                    Status::Warning
                } else {
                    Status::Critical
                },
                "xid",
                what.remedy,
                format!("XID {x}: {}", what.meaning),
            );
        }
        if let (Some(w), Some(max)) = (s.pcie_width, s.pcie_max_width) {
            let want = limits.and_then(|l| l.pcie_width).unwrap_or(max);
            if w < want {
                add(
                    i,
                    Status::Critical,
                    "pcie_degraded",
                    remedy::remedy_of("pcie_degraded"),
                    format!("PCIe link x{w}, expected x{want}"),
                );
            }
        }
        if let (Some(want), Some(active)) = (limits.and_then(|l| l.nvlink_links), s.nvlink_active) {
            if active < want {
                add(
                    i,
                    Status::Critical,
                    "nvlink_down",
                    remedy::remedy_of("nvlink_down"),
                    format!("{active} of {want} NVLinks active"),
                );
            }
        }
        if let Some(n) = s.nvlink_replay.filter(|n| *n > 0) {
            add(
                i,
                Status::Warning,
                "nvlink_errors",
                remedy::remedy_of("nvlink_errors"),
                format!("{n} NVLink replay or recovery error(s) since boot"),
            );
        }
        if let (Some(t), Some(max)) = (s.gpu_temp_c, limits.and_then(|l| l.max_gpu_temp_c)) {
            if t > max {
                add(
                    i,
                    Status::Critical,
                    "over_temperature",
                    remedy::remedy_of("over_temperature"),
                    format!("{t:.0} C at idle, limit {max:.0} C"),
                );
            }
        }
        for reason in &s.throttle {
            if let Some((_, code)) = CRITICAL_THROTTLE.iter().find(|(r, _)| r == reason) {
                add(
                    i,
                    Status::Critical,
                    code,
                    remedy::remedy_of(code),
                    format!("clocks held back at idle: {reason}"),
                );
            }
        }
    }
    let status = findings
        .iter()
        .map(|f| f.status)
        .max()
        .unwrap_or(Status::Ok);
    Health {
        status,
        devices: seen.len(),
        expected_devices: expect,
        findings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(index: usize) -> DeviceInfo {
        DeviceInfo {
            index,
            ..crate::results::DeviceRun::blank().info
        }
    }

    fn clean() -> Sample {
        Sample {
            gpu_temp_c: Some(35.0),
            ecc_uncorrected: Some(0),
            remapped_rows_pending: Some(0),
            remapped_rows_failed: Some(0),
            xid: Some(Vec::new()),
            pcie_gen: Some(1),
            pcie_width: Some(16),
            pcie_max_gen: Some(5),
            pcie_max_width: Some(16),
            nvlink_links: Some(18),
            nvlink_active: Some(18),
            nvlink_replay: Some(0),
            nvlink_crc: Some(0),
            throttle: vec!["gpu_idle".into()],
            ..Sample::default()
        }
    }

    fn status(samples: Vec<Sample>, expect: Option<usize>) -> (Status, Vec<String>) {
        let infos: Vec<DeviceInfo> = (0..samples.len()).map(info).collect();
        let base = crate::verdict::baseline::builtin()
            .into_iter()
            .find(|b| b.limits.nvlink_links == Some(18));
        let seen: Vec<Seen<'_>> = infos
            .iter()
            .zip(samples)
            .map(|(info, s)| Seen {
                info,
                sample: Some(s),
                baseline: base.as_ref(),
            })
            .collect();
        let h = assess(&seen, expect);
        (h.status, h.findings.into_iter().map(|f| f.code).collect())
    }

    #[test]
    fn a_clean_idle_node_is_ok_even_at_pcie_gen1() {
        assert_eq!(
            status(vec![clean(), clean()], Some(2)),
            (Status::Ok, vec![])
        );
    }

    #[test]
    fn each_finding_has_its_status_and_code() {
        let with = |f: fn(&mut Sample)| {
            let mut s = clean();
            f(&mut s);
            status(vec![clean(), s], None)
        };
        assert_eq!(
            status(vec![clean()], Some(2)),
            (Status::Critical, vec!["gpu_missing".into()])
        );
        assert_eq!(
            with(|s| s.ecc_uncorrected = Some(1)).1,
            ["ecc_uncorrectable"]
        );
        assert_eq!(with(|s| s.remapped_rows_pending = Some(1)).1, ["row_remap"]);
        assert_eq!(
            with(|s| s.xid = Some(vec![79])),
            (Status::Critical, vec!["xid".into()])
        );
        assert_eq!(
            with(|s| s.xid = Some(vec![13])),
            (Status::Warning, vec!["xid".into()])
        );
        assert_eq!(with(|s| s.pcie_width = Some(8)).1, ["pcie_degraded"]);
        assert_eq!(with(|s| s.nvlink_active = Some(16)).1, ["nvlink_down"]);
        assert_eq!(
            with(|s| s.nvlink_replay = Some(3)),
            (Status::Warning, vec!["nvlink_errors".into()])
        );
        assert_eq!(with(|s| s.gpu_temp_c = Some(95.0)).1, ["over_temperature"]);
        assert_eq!(
            with(|s| s.throttle = vec!["hw_power_brake_slowdown".into()]).1,
            ["power_throttle"]
        );
    }

    #[test]
    fn statuses_follow_the_nagios_codes() {
        assert_eq!(
            [
                Status::Ok,
                Status::Warning,
                Status::Critical,
                Status::Unknown
            ]
            .map(Status::code),
            [0, 1, 2, 3]
        );
    }
}

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
//! hardware, thermal or power-brake slowdowns at idle; persistence mode
//! off (WARNING) and MIG mode on (CRITICAL: the node is meant for
//! whole-GPU jobs, and kiln tests whole GPUs); the NVSwitch fabric
//! unhealthy or its manager down and NVLinks mis-wired (CRITICAL, the
//! rules of [`super::fabric`]); XIDs logged since boot in the kernel log
//! ([`Health::add_kernel_log`]). Every finding has a reason code (the same
//! as `kiln run`'s, plus `gpu_missing` and `persistence_off`) and a
//! remedy.
//!
//! Layer: part of `verdict`; pure, no I/O.

use serde::Serialize;

use super::baseline::Baseline;
use super::remedy::{self, Remedy};
use crate::device::DeviceInfo;
use crate::telemetry::fabric::{Fabric, FabricFinding};
use crate::telemetry::kernel_log::KernelXid;
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
    /// What the check could not look at, in words (e.g. an unreadable
    /// kernel log): never a finding.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Health {
    /// Adds findings, and makes the status the worst of all.
    pub fn extend(&mut self, findings: Vec<Finding>) {
        self.findings.extend(findings);
        self.status = self
            .findings
            .iter()
            .map(|f| f.status)
            .max()
            .unwrap_or(Status::Ok);
    }

    /// The XIDs of the kernel log (`Ok((xids, where they were read))`, or
    /// why it could not be read: a note, never a finding), each matched to
    /// its GPU by PCI bus id: one finding per GPU and XID number, with how
    /// often it was logged, judged as NVIDIA's catalogue says
    /// ([`remedy::xid`]: an application XID is a WARNING, the others
    /// CRITICAL). An XID of a bus id no seen GPU has (a GPU off the bus, or
    /// hidden) is the node's.
    pub fn add_kernel_log(
        &mut self,
        seen: &[Seen<'_>],
        log: Result<(Vec<KernelXid>, String), String>,
    ) {
        let (xids, source) = match log {
            Ok(x) => x,
            Err(why) => {
                self.notes.push(why);
                return;
            }
        };
        self.notes.push(format!(
            "kernel log read ({source}): {} XID line(s) since boot",
            xids.len()
        ));
        let device_of = |bus: &str| {
            seen.iter()
                .find(|d| {
                    d.info
                        .pci_bus_id
                        .as_deref()
                        .map(crate::telemetry::nvml::normalize_bus_id)
                        .as_deref()
                        == Some(bus)
                })
                .map(|d| d.info.index)
        };
        // (bus, xid) -> (count, last line), in order of first appearance.
        let mut groups: Vec<(String, u32, usize, String)> = Vec::new();
        for x in xids {
            match groups.iter_mut().find(|g| g.0 == x.bus && g.1 == x.xid) {
                Some(g) => {
                    g.2 += 1;
                    g.3 = x.text;
                }
                None => groups.push((x.bus, x.xid, 1, x.text)),
            }
        }
        let found = groups
            .into_iter()
            .map(|(bus, n, count, last)| {
                let what = remedy::xid(n);
                let device = device_of(&bus);
                Finding {
                    device,
                    status: if what.remedy == Remedy::Rerun {
                        Status::Warning
                    } else {
                        Status::Critical
                    },
                    code: "xid".into(),
                    detail: format!(
                        "XID {n} logged {count} time(s) since boot{} (kernel log): {}; last: {last}",
                        if device.is_none() {
                            format!(" on {bus}, a GPU the check does not see")
                        } else {
                            String::new()
                        },
                        what.meaning
                    ),
                    remedy: what.remedy,
                }
            })
            .collect();
        self.extend(found);
    }
}

/// One device as the check sees it.
#[derive(Clone)]
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
    if let Some(f) = count_finding(seen.len(), expect) {
        add(f.device, f.status, &f.code, f.remedy, f.detail);
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
    findings.extend(mode_findings(seen));
    findings.extend(fabric_findings(seen));
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
        notes: Vec::new(),
    }
}

/// The GPU count against `--expect-gpus`: fewer is CRITICAL `gpu_missing`,
/// more a WARNING `gpu_extra`.
pub fn count_finding(found: usize, expect: Option<usize>) -> Option<Finding> {
    let finding = |status, code: &str, remedy, detail| Finding {
        device: None,
        status,
        code: code.into(),
        detail,
        remedy,
    };
    match expect {
        Some(n) if found < n => Some(finding(
            Status::Critical,
            "gpu_missing",
            Remedy::RebootNode,
            format!(
                "{found} GPU(s) found, {n} expected: a GPU is off the bus, not enumerated or hidden (CUDA_VISIBLE_DEVICES)"
            ),
        )),
        Some(n) if found > n => Some(finding(
            Status::Warning,
            "gpu_extra",
            Remedy::Rerun,
            format!("{found} GPU(s) found, {n} expected"),
        )),
        _ => None,
    }
}

/// GPUs the PCI bus shows but CUDA cannot use (the driver missing or
/// failing, or a node state cuInit names): each with its reason code and
/// what to do, CRITICAL (do not schedule GPU jobs here), and the count of
/// those GPUs against `expect`.
pub fn untestable(gpus: &[(&DeviceInfo, &str, String)], expect: Option<usize>) -> Health {
    let mut h = Health {
        status: Status::Ok,
        devices: gpus.len(),
        expected_devices: expect,
        findings: Vec::new(),
        notes: Vec::new(),
    };
    let mut found: Vec<Finding> = count_finding(gpus.len(), expect).into_iter().collect();
    found.extend(gpus.iter().map(|(info, code, why)| {
        let remedy = remedy::remedy_of(code);
        Finding {
            device: Some(info.index),
            status: Status::Critical,
            code: (*code).to_string(),
            detail: if remedy == Remedy::FixNodeSoftware {
                format!("could not check ({code}, a node problem, not the GPU's): {why}")
            } else {
                format!("could not check: {why}")
            },
            remedy,
        }
    }));
    h.extend(found);
    h
}

/// Persistence mode off (WARNING: jobs may run, but each one pays the
/// driver's initialisation and the GPU's state is lost between them) and
/// MIG mode on (CRITICAL: a whole-GPU job cannot have that GPU).
fn mode_findings(seen: &[Seen<'_>]) -> Vec<Finding> {
    let mut out = Vec::new();
    for d in seen {
        let Some(s) = &d.sample else { continue };
        if s.persistence == Some(false) {
            out.push(Finding {
                device: Some(d.info.index),
                status: Status::Warning,
                code: "persistence_off".into(),
                detail: "persistence mode off: the driver tears the GPU down whenever no process holds it, so every job pays its initialisation and settings are lost between jobs; enable it with nvidia-smi -pm 1, or run nvidia-persistenced".into(),
                remedy: Remedy::FixNodeSoftware,
            });
        }
        if s.mig == Some(true) {
            out.push(Finding {
                device: Some(d.info.index),
                status: Status::Critical,
                code: "mig_enabled".into(),
                detail: "MIG mode on: a whole-GPU job cannot have this GPU; disable MIG (nvidia-smi -i <gpu> -mig 0, then reset the GPU)".into(),
                remedy: Remedy::FixNodeSoftware,
            });
        }
    }
    out
}

/// The fabric (per GPU; a fabric manager that has registered none of the
/// GPUs is one node finding) and the NVLink wiring, by the rules of
/// [`super::fabric`].
fn fabric_findings(seen: &[Seen<'_>]) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut down: Vec<(usize, String)> = Vec::new();
    let mut with_fabric = 0;
    for d in seen {
        let Some(f) = d.sample.as_ref().and_then(|s| s.fabric.as_ref()) else {
            continue;
        };
        with_fabric += 1;
        let multinode = d.baseline.is_some_and(|b| b.limits.multinode_nvlink);
        match f.finding(multinode) {
            FabricFinding::Healthy => {}
            FabricFinding::ManagerDown(why) => down.push((d.info.index, why)),
            FabricFinding::Unhealthy(why) => out.push(Finding {
                device: Some(d.info.index),
                status: Status::Critical,
                code: "fabric_unhealthy".into(),
                remedy: if remedy::fabric_links(&why) {
                    Remedy::CheckCablingOrReseat
                } else {
                    remedy::remedy_of("fabric_unhealthy")
                },
                detail: why,
            }),
        }
    }
    if !down.is_empty() && down.len() == with_fabric && with_fabric > 1 {
        out.push(manager_down_finding(down.len(), &down[0].1));
    } else {
        for (i, why) in down {
            out.push(Finding {
                device: Some(i),
                status: Status::Critical,
                code: "fabric_manager_down".into(),
                detail: why,
                remedy: Remedy::FixNodeSoftware,
            });
        }
    }
    let wired: Vec<super::fabric::Wired<'_>> = seen
        .iter()
        .filter_map(|d| {
            let ends = d.sample.as_ref()?.nvlink_remote.as_deref()?;
            Some(super::fabric::Wired::of(d.info, ends))
        })
        .collect();
    for (i, why) in super::fabric::miswired(&wired) {
        out.push(Finding {
            device: Some(i),
            status: Status::Critical,
            code: "nvlink_wiring".into(),
            detail: why,
            remedy: remedy::remedy_of("nvlink_wiring"),
        });
    }
    out
}

fn manager_down_finding(gpus: usize, why: &str) -> Finding {
    Finding {
        device: None,
        status: Status::Critical,
        code: "fabric_manager_down".into(),
        detail: format!(
            "{gpus} GPU(s) not registered with the NVSwitch fabric ({why}): start the fabric manager (systemctl start nvidia-fabricmanager)"
        ),
        remedy: Remedy::FixNodeSoftware,
    }
}

/// When CUDA itself refuses to start: the node finding `fabric_manager_down`
/// if NVML shows GPUs whose fabric registration has not completed (cuInit
/// answers CUDA_ERROR_SYSTEM_NOT_READY on such a node), else None.
pub fn manager_down(states: &[(String, Option<Fabric>)]) -> Option<Finding> {
    let down: Vec<String> = states
        .iter()
        .filter_map(|(bus, f)| match f.as_ref()?.finding(false) {
            FabricFinding::ManagerDown(why) => Some(format!("{bus}: {why}")),
            _ => None,
        })
        .collect();
    let first = down.first()?;
    Some(manager_down_finding(down.len(), first))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(index: usize) -> DeviceInfo {
        DeviceInfo {
            index,
            pci_bus_id: Some(format!("0000:{:02x}:00.0", 0x18 + index)),
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
        let (h, _) = health(samples, expect);
        (h.status, h.findings.into_iter().map(|f| f.code).collect())
    }

    fn health(samples: Vec<Sample>, expect: Option<usize>) -> (Health, Vec<DeviceInfo>) {
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
        (h, infos)
    }

    #[test]
    fn gpus_without_a_usable_driver_are_critical_and_counted() {
        let infos: Vec<DeviceInfo> = (0..2).map(info).collect();
        let gpus: Vec<(&DeviceInfo, &str, String)> = vec![
            (
                &infos[0],
                "driver_missing",
                "0000:18:00.0: no kernel driver is bound".into(),
            ),
            (
                &infos[1],
                "driver_failed",
                "0000:19:00.0: cuInit failed".into(),
            ),
        ];
        let h = untestable(&gpus, None);
        assert_eq!((h.status, h.devices), (Status::Critical, 2));
        let f: Vec<(Option<usize>, &str, Remedy)> = h
            .findings
            .iter()
            .map(|f| (f.device, f.code.as_str(), f.remedy))
            .collect();
        assert_eq!(
            f,
            [
                (Some(0), "driver_missing", Remedy::FixNodeSoftware),
                (Some(1), "driver_failed", Remedy::FixNodeSoftware)
            ]
        );
        assert!(h.findings[0].detail.contains("no kernel driver is bound"));
        // The PCI bus shows 2 of the 8 expected.
        let h = untestable(&gpus, Some(8));
        assert_eq!(h.findings[0].code, "gpu_missing");
        assert!(h.findings[0]
            .detail
            .starts_with("2 GPU(s) found, 8 expected"));
        assert_eq!(untestable(&gpus, Some(2)).findings.len(), 2);
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

    fn switched(moved: Option<u32>) -> Vec<crate::telemetry::fabric::LinkEnd> {
        (0..18)
            .map(|l| crate::telemetry::fabric::LinkEnd {
                link: l,
                remote_bus: format!(
                    "00000000:{:02x}:00.0",
                    5 + (l + u32::from(moved == Some(l))) % 4
                ),
                remote: "nvswitch".into(),
            })
            .collect()
    }

    fn fabric_ok() -> Fabric {
        Fabric {
            state: crate::telemetry::fabric::FabricState::Completed,
            status: 0,
            health_mask: Some(crate::telemetry::fabric::HEALTHY_MASK),
            health_summary: Some(1),
            clique_id: 0,
            cluster_uuid: crate::telemetry::fabric::ZERO_UUID.into(),
        }
    }

    fn hgx() -> Sample {
        Sample {
            fabric: Some(fabric_ok()),
            nvlink_remote: Some(switched(None)),
            persistence: Some(true),
            mig: Some(false),
            ..clean()
        }
    }

    #[test]
    fn a_healthy_hgx_node_with_zero_cluster_ids_is_ok() {
        assert_eq!(status(vec![hgx(); 4], Some(4)), (Status::Ok, vec![]));
    }

    #[test]
    fn modes_fabric_and_wiring_findings() {
        let with = |f: fn(&mut Sample)| {
            let mut s = hgx();
            f(&mut s);
            status(vec![hgx(), s, hgx(), hgx()], None)
        };
        assert_eq!(
            with(|s| s.persistence = Some(false)),
            (Status::Warning, vec!["persistence_off".into()])
        );
        assert_eq!(
            with(|s| s.mig = Some(true)),
            (Status::Critical, vec!["mig_enabled".into()])
        );
        assert_eq!(
            with(|s| {
                if let Some(f) = s.fabric.as_mut() {
                    f.health_mask =
                        Some((crate::telemetry::fabric::HEALTHY_MASK & !(3 << 4)) | (1 << 4));
                }
            }),
            (Status::Critical, vec!["fabric_unhealthy".into()])
        );
        assert_eq!(
            with(|s| s.nvlink_remote = Some(switched(Some(3)))),
            (Status::Critical, vec!["nvlink_wiring".into()])
        );
        // One GPU not registered: its finding; none registered: the node's.
        assert_eq!(
            with(|s| {
                if let Some(f) = s.fabric.as_mut() {
                    f.state = crate::telemetry::fabric::FabricState::NotStarted;
                }
            }),
            (Status::Critical, vec!["fabric_manager_down".into()])
        );
        let mut down = hgx();
        if let Some(f) = down.fabric.as_mut() {
            f.state = crate::telemetry::fabric::FabricState::InProgress;
        }
        let (h, _) = health(vec![down.clone(), down], None);
        assert_eq!(h.findings.len(), 1);
        assert_eq!(h.findings[0].device, None);
        assert!(
            h.findings[0].detail.contains("2 GPU(s) not registered"),
            "{}",
            h.findings[0].detail
        );
    }

    #[test]
    fn kernel_log_xids_map_to_their_gpu_and_an_unreadable_log_is_a_note() {
        let (mut h, infos) = health(vec![clean(), clean()], Some(2));
        let seen: Vec<Seen<'_>> = infos
            .iter()
            .map(|info| Seen {
                info,
                sample: Some(clean()),
                baseline: None,
            })
            .collect();
        let log = crate::telemetry::kernel_log::parse(
            "NVRM: Xid (PCI:0000:19:00): 13, pid=1, name=a, Graphics Exception\n\
             NVRM: Xid (PCI:0000:19:00): 13, pid=2, name=b, Graphics Exception\n\
             NVRM: Xid (PCI:0000:3b:00): 79, pid=3, name=c, GPU has fallen off the bus.\n",
        );
        h.add_kernel_log(&seen, Ok((log, "test".into())));
        assert_eq!(h.status, Status::Critical);
        let f: Vec<(Option<usize>, Status, &str)> = h
            .findings
            .iter()
            .map(|f| (f.device, f.status, f.code.as_str()))
            .collect();
        assert_eq!(
            f,
            [
                (Some(1), Status::Warning, "xid"),
                (None, Status::Critical, "xid")
            ]
        );
        assert!(
            h.findings[0].detail.contains("XID 13 logged 2 time(s)"),
            "{}",
            h.findings[0].detail
        );
        assert!(h.findings[1]
            .detail
            .contains("on 00000000:3b:00.0, a GPU the check does not see"));
        let (mut ok, _) = health(vec![clean()], None);
        ok.add_kernel_log(&seen[..1], Err("the kernel log is unreadable".into()));
        assert_eq!((ok.status, ok.notes.len()), (Status::Ok, 1));
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

//! What to do about a device that was not accepted: a remedy class per
//! reason code, NVIDIA's XIDs with what they mean and what to do, and one
//! line of diagnosis that groups a device's reasons.
//!
//! A technician acts on the remedy, not on 24 metric names: the device's
//! remedy is the most drastic one its reasons call for (a GPU that returned
//! wrong numbers goes back whatever else it did), and the diagnosis says in
//! words why.
//!
//! Layer: part of `verdict`; pure, no I/O.

use serde::Serialize;

use super::{Check, Decision};
use crate::results::DeviceRun;

/// What to do about a device, from the least drastic to the most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Remedy {
    /// Nothing points at the hardware: run kiln again.
    Rerun,
    /// The node's software or state stopped the test (driver, fabric
    /// manager, another process): fix the node, not the GPU.
    FixNodeSoftware,
    /// Reset the GPU (activates pending row remaps, clears a hung or
    /// faulted engine) and run again.
    ResetGpu,
    /// Reboot the node: the GPU left the bus or the driver lost it.
    RebootNode,
    /// Cooling, power cabling, the PCIe or NVLink connection: inspect,
    /// reseat, run again.
    CheckCablingOrReseat,
    /// Send the GPU back: it computed wrong results or its memory is failing.
    Rma,
}

impl Remedy {
    /// Every class, for the README table and tests.
    pub const ALL: [Remedy; 6] = [
        Remedy::Rerun,
        Remedy::FixNodeSoftware,
        Remedy::ResetGpu,
        Remedy::RebootNode,
        Remedy::CheckCablingOrReseat,
        Remedy::Rma,
    ];

    /// Its name in results.json: `reset_gpu`, ...
    pub fn name(self) -> &'static str {
        match self {
            Remedy::Rerun => "rerun",
            Remedy::FixNodeSoftware => "fix_node_software",
            Remedy::ResetGpu => "reset_gpu",
            Remedy::RebootNode => "reboot_node",
            Remedy::CheckCablingOrReseat => "check_cabling_or_reseat",
            Remedy::Rma => "rma",
        }
    }

    /// What the technician does, in words.
    pub fn advice(self) -> &'static str {
        match self {
            Remedy::Rerun => "run kiln again; if it fails the same way, reset the GPU",
            Remedy::FixNodeSoftware => {
                "fix the node (driver, fabric manager, other processes), then run again: the GPU is not at fault"
            }
            Remedy::ResetGpu => {
                "reset the GPU (nvidia-smi -r -i <bus id>, or reboot) and run again; if it fails again, RMA"
            }
            Remedy::RebootNode => {
                "reboot the node and run again; if the GPU is lost again, reseat it, then RMA"
            }
            Remedy::CheckCablingOrReseat => {
                "check cooling, power cables and seating (reseat the GPU and its cables), then run again"
            }
            Remedy::Rma => "send the GPU back (RMA) with this report",
        }
    }
}

/// The remedy a reason code calls for (an `xid` is judged by its numbers,
/// [`xid`]).
pub fn remedy_of(code: &str) -> Remedy {
    match code {
        // Wrong results: the hardware computes or stores wrongly.
        "sdc_matmul" | "copy_mismatch" | "hash_mismatch" | "memtest_errors" => Remedy::Rma,
        // Wrong results only after load steps: the board's power delivery
        // (its cables and seating first, then the board).
        "sdc_pulse" => Remedy::CheckCablingOrReseat,
        // Corrupt copies between devices: the link first.
        "transfer_mismatch" | "pcie_degraded" | "nvlink_down" | "nvlink_errors"
        | "nvlink_wiring" | "p2p_over_pcie" => Remedy::CheckCablingOrReseat,
        // A reset registers the GPU with the fabric again and ends a route
        // or timeout recovery; degraded bandwidth is the links' (below).
        "fabric_unhealthy" => Remedy::ResetGpu,
        "over_temperature" | "thermal_throttle" | "power_throttle" | "hw_slowdown"
        | "power_low" => Remedy::CheckCablingOrReseat,
        // An uncorrectable error leaves a row remap pending, which a reset
        // activates; a failed remap is for the RMA rule below.
        "ecc_uncorrectable" | "row_remap" => Remedy::ResetGpu,
        "below_baseline" | "peer_outlier" | "throughput_decay" => Remedy::ResetGpu,
        "hang" | "device_error" => Remedy::ResetGpu,
        "device_lost" => Remedy::RebootNode,
        "gpu_busy"
        | "fabric_manager_down"
        | "mig_enabled"
        | "library_missing"
        | "driver_missing"
        | "driver_failed"
        | "persistence_off" => Remedy::FixNodeSoftware,
        "xid" => Remedy::ResetGpu,
        _ => Remedy::Rerun,
    }
}

/// A reason code in words.
pub fn words(code: &str) -> &'static str {
    match code {
        "sdc_matmul" => "silent data corruption in matrix multiply",
        "sdc_pulse" => "wrong results after idle-to-load power steps (power delivery)",
        "copy_mismatch" => "wrong data from a memory bandwidth kernel",
        "transfer_mismatch" => "data corrupted in a host or peer transfer",
        "hash_mismatch" => "wrong SHA-256 results",
        "memtest_errors" => "memory test read back wrong words",
        "below_baseline" => "slower than the baseline floor",
        "peer_outlier" => "slower than its peers in this node",
        "throughput_decay" => "throughput fell during the burn-in",
        "over_temperature" => "too hot",
        "thermal_throttle" => "clocks cut for temperature",
        "power_throttle" => "clocks cut for power",
        "hw_slowdown" => "hardware slowdown",
        "power_low" => "cannot draw its power under load",
        "throttle" => "clocks throttled",
        "ecc_uncorrectable" => "new uncorrectable ECC errors",
        "row_remap" => "memory rows remapped or failing to remap",
        "xid" => "driver reported XID errors",
        "pcie_degraded" => "PCIe link below its maximum",
        "nvlink_down" => "NVLinks down",
        "p2p_over_pcie" => "peer copies went over PCIe instead of NVLink",
        "nvlink_errors" => "NVLink errors rising",
        "hang" => "a workload hung",
        "device_lost" => "fell off the bus",
        "device_error" => "device or driver error",
        "gpu_busy" => "in use by another process (node state, not a GPU fault)",
        "fabric_manager_down" => "fabric manager not running (node state, not a GPU fault)",
        "mig_enabled" => "in MIG mode (node state, not a GPU fault)",
        "library_missing" => {
            "a library is missing, part of it untested (node state, not a GPU fault)"
        }
        "driver_missing" => {
            "no usable NVIDIA driver: not installed, not loaded, or another driver bound (node state, not a GPU fault)"
        }
        "driver_failed" => {
            "the NVIDIA driver is installed but fails (node state, not a GPU fault)"
        }
        "fabric_unhealthy" => "NVSwitch fabric unhealthy",
        "nvlink_wiring" => "NVLinks end where they should not (mis-wired or mis-seated)",
        "persistence_off" => "persistence mode off (node setting, not a GPU fault)",
        _ => "failed a check",
    }
}

/// What an XID means and what to do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Xid {
    pub number: u32,
    pub meaning: &'static str,
    pub remedy: Remedy,
}

/// The XIDs NVIDIA documents for data-centre GPUs (its XID catalogue for
/// Ampere and later, and the NVIDIA driver's Xid errors guide), with the
/// resolution each calls for, in kiln's remedy classes.
const XIDS: &[(u32, &str, Remedy)] = &[
    (
        8,
        "GPU stopped processing (channel idle timeout)",
        Remedy::Rerun,
    ),
    (
        13,
        "graphics engine exception (an application or driver fault, rarely hardware)",
        Remedy::Rerun,
    ),
    (
        31,
        "GPU memory page fault (MMU fault; usually the application)",
        Remedy::Rerun,
    ),
    (
        32,
        "invalid or corrupted push buffer stream (PCIe or driver)",
        Remedy::CheckCablingOrReseat,
    ),
    (38, "driver firmware error", Remedy::ResetGpu),
    (
        43,
        "GPU stopped processing (a channel was reset)",
        Remedy::Rerun,
    ),
    (
        45,
        "preemptive cleanup after an earlier error",
        Remedy::Rerun,
    ),
    (46, "GPU stopped processing", Remedy::ResetGpu),
    (
        48,
        "double-bit ECC error in device memory",
        Remedy::ResetGpu,
    ),
    (
        54,
        "auxiliary power is not connected to the GPU",
        Remedy::CheckCablingOrReseat,
    ),
    (56, "display engine error", Remedy::ResetGpu),
    (
        57,
        "error programming video memory interface",
        Remedy::ResetGpu,
    ),
    (58, "unstable video memory interface detected", Remedy::Rma),
    (
        61,
        "internal micro-controller breakpoint or warning",
        Remedy::ResetGpu,
    ),
    (62, "internal micro-controller halt", Remedy::ResetGpu),
    (
        63,
        "ECC page retirement or row remapping recorded: reset to activate",
        Remedy::ResetGpu,
    ),
    (
        64,
        "ECC page retirement or row remapping failure",
        Remedy::Rma,
    ),
    (68, "video decoder (NVDEC) exception", Remedy::Rerun),
    (69, "graphics engine class error", Remedy::Rerun),
    (74, "NVLink error", Remedy::CheckCablingOrReseat),
    (79, "GPU has fallen off the bus", Remedy::RebootNode),
    (92, "high single-bit ECC error rate", Remedy::ResetGpu),
    (
        94,
        "contained ECC error (the affected application was stopped)",
        Remedy::ResetGpu,
    ),
    (
        95,
        "uncontained ECC error (every application on the GPU was stopped)",
        Remedy::ResetGpu,
    ),
    (109, "context switch timeout", Remedy::Rerun),
    (110, "security fault", Remedy::ResetGpu),
    (119, "GSP RPC timeout", Remedy::ResetGpu),
    (120, "GSP error", Remedy::ResetGpu),
    (
        121,
        "C2C link corrected error",
        Remedy::CheckCablingOrReseat,
    ),
    (122, "SPI PMU RPC read failure", Remedy::ResetGpu),
    (123, "SPI PMU RPC write failure", Remedy::ResetGpu),
    (136, "GPU reset required after a fault", Remedy::ResetGpu),
    (137, "NVLink FLA privilege error", Remedy::Rerun),
    (140, "unrecovered ECC error", Remedy::ResetGpu),
    (143, "GPU initialization failure", Remedy::Rma),
    (144, "NVLink SAW error", Remedy::CheckCablingOrReseat),
    (145, "NVLink RLW error", Remedy::CheckCablingOrReseat),
    (149, "NVLink NETIR error", Remedy::CheckCablingOrReseat),
    (
        154,
        "GPU recovery action changed: a reset or reboot is required",
        Remedy::RebootNode,
    ),
];

/// What XID `n` means; an XID kiln's table does not have calls for a reset
/// and a look at NVIDIA's catalogue.
pub fn xid(n: u32) -> Xid {
    XIDS.iter().find(|x| x.0 == n).map_or(
        Xid {
            number: n,
            meaning: "not in kiln's table: see NVIDIA's XID catalogue",
            remedy: Remedy::ResetGpu,
        },
        |&(number, meaning, remedy)| Xid {
            number,
            meaning,
            remedy,
        },
    )
}

/// A device's diagnosis: one line that groups its reasons, and its remedy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnosis {
    pub line: String,
    pub remedy: Remedy,
}

/// The distinct XIDs a device's telemetry reported, in order.
fn xids_of(dev: &DeviceRun) -> Vec<u32> {
    let mut out: Vec<u32> = Vec::new();
    for x in dev.telemetry.iter().flat_map(|s| s.xid.iter().flatten()) {
        if !out.contains(x) {
            out.push(*x);
        }
    }
    out
}

/// An unhealthy fabric whose cause is the NVLinks themselves (bandwidth
/// degraded, too few NVLinks): the links' remedy, not a reset.
pub fn fabric_links(detail: &str) -> bool {
    detail.contains("bandwidth degraded") || detail.contains("insufficient NVLinks")
}

/// The failed checks of `code`.
fn failed<'a>(checks: &'a [Check], code: &'a str) -> impl Iterator<Item = &'a Check> + 'a {
    checks.iter().filter(move |c| !c.pass && c.reason == code)
}

/// `matmul_bf16, matmul_fp8 and 3 more`.
fn list(mut names: Vec<String>) -> String {
    names.dedup();
    match names.len() {
        0 => String::new(),
        1..=3 => names.join(", "),
        n => format!("{} and {} more", names[..3].join(", "), n - 3),
    }
}

/// The diagnosis of a device that was not accepted (None for an accepted
/// one).
pub fn diagnose(dev: &DeviceRun, checks: &[Check], decision: Decision) -> Option<Diagnosis> {
    if decision == Decision::Accept {
        return None;
    }
    let mut codes: Vec<&str> = Vec::new();
    for c in checks {
        if !c.pass && !c.reason.is_empty() && !codes.contains(&c.reason.as_str()) {
            codes.push(&c.reason);
        }
    }
    if codes.is_empty() {
        return Some(Diagnosis {
            line: "not every workload finished, and nothing failed: the run was cut short".into(),
            remedy: Remedy::Rerun,
        });
    }
    let xids = xids_of(dev);
    let mut remedy = Remedy::Rerun;
    let mut parts: Vec<String> = Vec::new();
    // Wrong results first: they decide the remedy whatever else happened.
    let wrong: Vec<String> = [
        "sdc_matmul",
        "copy_mismatch",
        "hash_mismatch",
        "memtest_errors",
        "transfer_mismatch",
    ]
    .iter()
    .flat_map(|code| failed(checks, code).map(|c| c.metric.clone()))
    .collect();
    if !wrong.is_empty() {
        parts.push(format!("wrong results from {}", list(wrong)));
    }
    // Slow: how many figures, how far, on how many workloads.
    let slow: Vec<&Check> = ["below_baseline", "peer_outlier"]
        .iter()
        .flat_map(|code| failed(checks, code))
        .collect();
    if !slow.is_empty() {
        let worst = slow
            .iter()
            .filter(|c| c.threshold > 0.0 && c.value.is_finite())
            .map(|c| (c, 1.0 - c.value / c.threshold))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let mut metrics: Vec<String> = slow.iter().map(|c| c.metric.clone()).collect();
        metrics.sort();
        metrics.dedup();
        let under = match (
            failed(checks, "below_baseline").next().is_some(),
            failed(checks, "peer_outlier").next().is_some(),
        ) {
            (true, true) => "under the floor and its peers",
            (true, false) => "under the baseline floor",
            _ => "under its peers",
        };
        let how = worst.map_or(String::new(), |(c, f)| {
            format!(", worst {} at {:.0} % under", c.metric, 100.0 * f)
        });
        let measured: Vec<&str> = dev.metrics.iter().map(|m| m.workload.name()).collect();
        let slow_workloads: Vec<&str> = dev
            .metrics
            .iter()
            .filter(|m| metrics.contains(&m.name))
            .map(|m| m.workload.name())
            .collect();
        let everywhere =
            !measured.is_empty() && measured.iter().all(|w| slow_workloads.contains(w));
        parts.push(format!(
            "slow{} ({} figure(s) {under}{how})",
            if everywhere { " on every workload" } else { "" },
            metrics.len()
        ));
    }
    for code in &codes {
        match *code {
            "sdc_matmul" | "copy_mismatch" | "hash_mismatch" | "memtest_errors"
            | "transfer_mismatch" | "below_baseline" | "peer_outlier" => {}
            "xid" => {
                let named: Vec<String> = xids
                    .iter()
                    .map(|n| format!("XID {n} ({})", xid(*n).meaning))
                    .collect();
                parts.push(if named.is_empty() {
                    words(code).to_string()
                } else {
                    named.join(", ")
                });
            }
            "hang" => parts.push(format!(
                "hung in {}",
                list(failed(checks, code).map(|c| c.metric.clone()).collect())
            )),
            "device_lost" => parts.push(match failed(checks, code).find_map(|c| c.at_s) {
                Some(t) => format!("fell off the bus {} into the run", crate::stats::secs(t)),
                None => "fell off the bus".into(),
            }),
            // Link and temperature findings say how bad, in the check's
            // own words.
            "nvlink_down" | "nvlink_errors" | "pcie_degraded" | "over_temperature"
            | "power_low" | "fabric_unhealthy" | "nvlink_wiring" | "sdc_pulse" => {
                match failed(checks, code).next() {
                    Some(c) => parts.push(format!("{} ({})", words(code), c.detail)),
                    None => parts.push(words(code).to_string()),
                }
            }
            other => parts.push(words(other).to_string()),
        }
        let r = if *code == "xid" {
            xids.iter()
                .map(|n| xid(*n).remedy)
                .max()
                .unwrap_or(Remedy::ResetGpu)
        } else if *code == "row_remap" && failed(checks, code).any(|c| c.detail.contains("failed"))
        {
            Remedy::Rma
        } else if *code == "fabric_unhealthy"
            && failed(checks, code).any(|c| fabric_links(&c.detail))
        {
            Remedy::CheckCablingOrReseat
        } else {
            remedy_of(code)
        };
        remedy = remedy.max(r);
    }
    // A node state alone never sends the GPU anywhere.
    if decision == Decision::Untested {
        remedy = Remedy::FixNodeSoftware;
    }
    Some(Diagnosis {
        line: format!("{}: {}", parts.join("; "), remedy.advice()),
        remedy,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_code_has_words_and_a_remedy() {
        for code in [
            "sdc_matmul",
            "sdc_pulse",
            "copy_mismatch",
            "transfer_mismatch",
            "hash_mismatch",
            "memtest_errors",
            "below_baseline",
            "peer_outlier",
            "throughput_decay",
            "over_temperature",
            "thermal_throttle",
            "power_throttle",
            "hw_slowdown",
            "ecc_uncorrectable",
            "row_remap",
            "xid",
            "pcie_degraded",
            "nvlink_down",
            "nvlink_errors",
            "p2p_over_pcie",
            "power_low",
            "hang",
            "device_lost",
            "device_error",
            "gpu_busy",
            "fabric_manager_down",
            "mig_enabled",
            "library_missing",
            "driver_missing",
            "driver_failed",
            "fabric_unhealthy",
            "nvlink_wiring",
            "persistence_off",
        ] {
            assert_ne!(words(code), "failed a check", "{code}");
            assert!(
                code == "xid" || remedy_of(code) != Remedy::Rerun,
                "{code} should point somewhere"
            );
        }
        assert_eq!(remedy_of("sdc_matmul"), Remedy::Rma);
        assert_eq!(remedy_of("gpu_busy"), Remedy::FixNodeSoftware);
        assert_eq!(remedy_of("device_lost"), Remedy::RebootNode);
        assert_eq!(remedy_of("nvlink_wiring"), Remedy::CheckCablingOrReseat);
        assert_eq!(remedy_of("fabric_unhealthy"), Remedy::ResetGpu);
        assert_eq!(remedy_of("persistence_off"), Remedy::FixNodeSoftware);
        assert_eq!(remedy_of("driver_missing"), Remedy::FixNodeSoftware);
        assert_eq!(remedy_of("driver_failed"), Remedy::FixNodeSoftware);
    }

    #[test]
    fn an_unhealthy_fabric_is_reset_and_degraded_links_are_the_cabling() {
        let dev = crate::results::DeviceRun::blank();
        let check = |detail: &str| {
            vec![Check::new(
                "telemetry",
                "fabric_health",
                1.0,
                0.0,
                false,
                "fabric_unhealthy",
                detail.into(),
            )]
        };
        let d = diagnose(
            &dev,
            &check("fabric registered, but route unhealthy"),
            Decision::Reject,
        )
        .expect("a diagnosis");
        assert_eq!(d.remedy, Remedy::ResetGpu);
        assert!(
            d.line
                .starts_with("NVSwitch fabric unhealthy (fabric registered, but route unhealthy)"),
            "{}",
            d.line
        );
        let d = diagnose(
            &dev,
            &check("fabric registered, but bandwidth degraded"),
            Decision::Reject,
        )
        .expect("a diagnosis");
        assert_eq!(d.remedy, Remedy::CheckCablingOrReseat);
    }

    /// README's table of reason codes gives each code's remedy: it must be
    /// the one kiln applies.
    #[test]
    fn the_readme_table_gives_each_codes_remedy() {
        let readme = include_str!("../../README.md");
        let mut rows = 0;
        for line in readme.lines() {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            // | `code` | rule | remedy | meaning |
            let [_, code, _, remedy, _, _] = cells[..] else {
                continue;
            };
            let Some(code) = code.strip_prefix('`').and_then(|c| c.strip_suffix('`')) else {
                continue;
            };
            if words(code) == "failed a check" {
                continue;
            }
            rows += 1;
            let want = remedy_of(code).name();
            assert!(
                remedy.starts_with(want) || (code == "xid" && remedy.contains("XID")),
                "README says {code} -> {remedy}, kiln applies {want}"
            );
        }
        assert!(rows >= 21, "only {rows} reason rows found in README");
    }

    /// The results.json schema (docs/results.md) gives every reason code
    /// and its remedy too: the same codes as README's table, each with the
    /// remedy kiln applies.
    #[test]
    fn the_schema_table_gives_every_codes_remedy() {
        let codes = |text: &str| -> Vec<(String, String)> {
            text.lines()
                .filter_map(|line| {
                    let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                    let code = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
                    let remedy = cells.get(3)?.to_string();
                    (words(code) != "failed a check").then(|| (code.to_string(), remedy))
                })
                .collect()
        };
        let schema = codes(include_str!("../../docs/results.md"));
        let readme = codes(include_str!("../../README.md"));
        assert!(
            schema.len() >= 33,
            "only {} codes in docs/results.md",
            schema.len()
        );
        for (code, remedy) in &schema {
            let want = remedy_of(code).name();
            assert!(
                remedy.starts_with(want) || (code == "xid" && remedy.contains("XID")),
                "docs/results.md says {code} -> {remedy}, kiln applies {want}"
            );
        }
        let names = |rows: &[(String, String)]| {
            let mut v: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
            v.sort();
            v.dedup();
            v
        };
        assert_eq!(
            names(&schema),
            names(&readme),
            "README and the schema list the same codes"
        );
    }

    #[test]
    fn xids_mean_what_nvidia_says_and_unknown_ones_say_so() {
        assert_eq!(xid(79).remedy, Remedy::RebootNode);
        assert!(xid(79).meaning.contains("fallen off the bus"));
        assert_eq!(xid(64).remedy, Remedy::Rma);
        assert_eq!(xid(48).remedy, Remedy::ResetGpu);
        assert_eq!(xid(74).remedy, Remedy::CheckCablingOrReseat);
        assert!(xid(999).meaning.contains("catalogue"));
        for n in [48, 63, 64, 74, 79, 92, 94, 95, 119, 120] {
            assert!(XIDS.iter().any(|x| x.0 == n), "XID {n}");
        }
        // The table is sorted and has no duplicates.
        assert!(XIDS.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn remedies_are_ordered_from_mild_to_drastic() {
        assert!(Remedy::Rma > Remedy::ResetGpu);
        assert!(Remedy::ResetGpu > Remedy::Rerun);
        assert_eq!(
            serde_json::to_string(&Remedy::CheckCablingOrReseat).unwrap_or_default(),
            "\"check_cabling_or_reseat\""
        );
        for r in Remedy::ALL {
            assert_eq!(
                serde_json::to_string(&r).unwrap_or_default(),
                format!("\"{}\"", r.name())
            );
        }
    }
}

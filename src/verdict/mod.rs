//! Accept or reject: pure functions from a run's results to a verdict per
//! device, with every check that was made (passed or not) and stable reason
//! codes for the ones that failed.
//!
//! Rules today:
//! - integrity: any corruption found by a workload's own verification
//!   rejects (`sdc_matmul`, `copy_mismatch`, `hash_mismatch`,
//!   `memtest_errors`);
//! - liveness: a device or driver failure during a workload rejects
//!   (`device_error`);
//! - completeness: a device that did not finish every planned workload, and
//!   was not rejected, is `incomplete`.
//!
//! Baselines, peer comparison and telemetry rules plug in here as further
//! rules over the same results.

use serde::Serialize;

use crate::error::ExitCode;
use crate::results::{DeviceRun, RunResults};
use crate::workload::WorkloadKind;

/// The decision about one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Every check passed and every workload finished.
    Accept,
    /// At least one check failed.
    Reject,
    /// Nothing failed, but not every workload finished.
    Incomplete,
}

impl Decision {
    /// Upper-case word for tables and reports.
    pub fn word(self) -> &'static str {
        match self {
            Decision::Accept => "ACCEPT",
            Decision::Reject => "REJECT",
            Decision::Incomplete => "INCOMPLETE",
        }
    }
}

/// One check made on a device.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// The rule: `integrity`, `liveness` or `completeness`.
    pub rule: &'static str,
    /// What was checked (a metric or integrity check name).
    pub metric: String,
    /// The measured value (errors found, workloads finished, ...).
    pub value: f64,
    /// The limit the value was held to.
    pub threshold: f64,
    /// True when the check passed.
    pub pass: bool,
    /// Stable reason code when it failed, empty when it passed.
    pub reason: String,
    /// What the check found, in words.
    pub detail: String,
}

/// The verdict on one device.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceVerdict {
    /// Device index.
    pub device: usize,
    /// Accept, reject or incomplete.
    pub decision: Decision,
    /// Distinct reason codes of the failed checks, in check order.
    pub reasons: Vec<String>,
    /// Every check made.
    pub checks: Vec<Check>,
}

/// The reason code of corruption found by a workload's verification.
pub fn integrity_reason(workload: WorkloadKind) -> &'static str {
    match workload {
        WorkloadKind::Matmul => "sdc_matmul",
        WorkloadKind::Bandwidth => "copy_mismatch",
        WorkloadKind::Hash => "hash_mismatch",
        WorkloadKind::Memtest => "memtest_errors",
    }
}

/// Judges one device of `run`.
pub fn judge_device(run: &RunResults, dev: &DeviceRun) -> DeviceVerdict {
    let mut checks = Vec::new();
    for i in &dev.integrity {
        let pass = i.errors == 0;
        let cycle = if run.cycles > 1 {
            format!(" (cycle {})", i.cycle + 1)
        } else {
            String::new()
        };
        checks.push(Check {
            rule: "integrity",
            metric: i.check.clone(),
            value: i.errors as f64,
            threshold: 0.0,
            pass,
            reason: if pass {
                String::new()
            } else {
                integrity_reason(i.workload).to_string()
            },
            detail: if pass {
                format!("{} values checked, all correct{cycle}", i.checked)
            } else {
                format!(
                    "{} of {} values wrong{cycle}: {}",
                    i.errors, i.checked, i.detail
                )
            },
        });
    }
    for f in &dev.failures {
        checks.push(Check {
            rule: "liveness",
            metric: f.workload.name().to_string(),
            value: 1.0,
            threshold: 0.0,
            pass: false,
            reason: "device_error".into(),
            detail: format!("{} failed: {}", f.workload, f.message),
        });
    }
    let planned = &run.header.workloads;
    let finished = dev.finished_all(planned, run.cycles);
    let done = planned
        .iter()
        .filter(|w| (0..run.cycles).all(|c| dev.done.contains(&(**w, c))))
        .count();
    checks.push(Check {
        rule: "completeness",
        metric: "workloads".into(),
        value: done as f64,
        threshold: planned.len() as f64,
        pass: finished,
        reason: String::new(),
        detail: format!("{done} of {} planned workloads finished", planned.len()),
    });
    let mut reasons: Vec<String> = Vec::new();
    for c in &checks {
        if !c.pass && !c.reason.is_empty() && !reasons.contains(&c.reason) {
            reasons.push(c.reason.clone());
        }
    }
    let decision = if !reasons.is_empty() {
        Decision::Reject
    } else if finished {
        Decision::Accept
    } else {
        Decision::Incomplete
    };
    DeviceVerdict {
        device: dev.info.index,
        decision,
        reasons,
        checks,
    }
}

/// Judges every device of `run`.
pub fn judge(run: &RunResults) -> Vec<DeviceVerdict> {
    run.devices.iter().map(|d| judge_device(run, d)).collect()
}

/// The process exit code of a judged run: 1 if any device was rejected (a
/// fault found is final even in a run cut short), else 4 if the run is
/// incomplete, else 0.
pub fn exit_code(run: &RunResults, verdicts: &[DeviceVerdict]) -> ExitCode {
    if verdicts.iter().any(|v| v.decision == Decision::Reject) {
        ExitCode::Rejected
    } else if !run.complete() || verdicts.iter().any(|v| v.decision != Decision::Accept) {
        ExitCode::Incomplete
    } else {
        ExitCode::Accepted
    }
}

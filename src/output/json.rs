//! results.json: the whole run, every check, every measurement.
//!
//! The schema is documented in docs/results.md and versioned by
//! `schema_version`; fields are only ever added within a version.

use serde::Serialize;

use crate::device::DeviceInfo;
use crate::error::{KilnError, Result};
use crate::results::{DeviceFailure, HangRecord, RunResults};
use crate::telemetry::Sample;
use crate::verdict::{Check, Decision, Judgement};
use crate::workload::{Integrity, Metric};

/// Version of the results.json schema.
pub const SCHEMA_VERSION: u32 = 1;

/// The top level of results.json.
#[derive(Debug, Serialize)]
pub struct Document<'a> {
    pub schema_version: u32,
    pub kiln_version: &'a str,
    pub host: &'a str,
    pub started_at: &'a str,
    pub finished_at: Option<&'a str>,
    pub profile: String,
    pub backend: String,
    pub seed: u64,
    pub operator: Option<&'a str>,
    pub asset: Option<&'a str>,
    pub driver: Option<&'a str>,
    pub cuda: Option<&'a str>,
    pub duration_s: Option<f64>,
    pub cycles: u32,
    pub complete: bool,
    pub interrupted: bool,
    pub simulated: bool,
    pub summary: Summary,
    pub notes: Vec<String>,
    pub devices: Vec<DeviceDoc<'a>>,
}

/// Counts of verdicts.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub devices: usize,
    pub accepted: usize,
    pub rejected: usize,
    pub incomplete: usize,
    /// Devices that could not be tested because of the node's state.
    pub untested: usize,
    /// Checks not compared (e.g. a floor for a figure not measured).
    pub skipped_checks: usize,
}

/// One device in results.json.
#[derive(Debug, Serialize)]
pub struct DeviceDoc<'a> {
    #[serde(flatten)]
    pub info: &'a DeviceInfo,
    pub verdict: Decision,
    pub reasons: &'a [String],
    pub baseline: Option<&'a str>,
    pub checks: &'a [Check],
    pub metrics: &'a [Metric],
    pub integrity: &'a [Integrity],
    pub failures: &'a [DeviceFailure],
    pub hangs: &'a [HangRecord],
    pub time_to_fault_s: Option<f64>,
    /// What to do: `rerun`, `fix_node_software`, `reset_gpu`,
    /// `reboot_node`, `check_cabling_or_reseat` or `rma` (null when
    /// accepted).
    pub remedy: Option<crate::verdict::remedy::Remedy>,
    /// The reasons grouped in one line, with the remedy's advice.
    pub diagnosis: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burnin: Option<&'a crate::verdict::burnin::Burnin>,
    /// Per workload: the power reached (and its fraction of the enforced
    /// limit), the median SM clock held, and the duty cycle.
    pub load: Vec<crate::results::WorkloadLoad>,
    pub phases: Vec<crate::results::PhaseTelemetry>,
    pub telemetry: &'a [Sample],
}

/// Notes for the reader, derived from the run and its judgement.
pub fn notes(run: &RunResults, judgement: &Judgement) -> Vec<String> {
    let mut notes = run.header.notes.clone();
    if run.simulated() {
        notes.push(format!("SIMULATED: {}", run.simulated_source()));
    }
    if run.finished_at.is_none() {
        notes.push("the run did not reach its end (killed or crashed): only the measurements that finished are here".into());
    } else if run.interrupted {
        notes.push("the run was stopped early by the user".into());
    }
    notes.extend(judgement.notes.iter().cloned());
    for d in &run.devices {
        for (w, why) in &d.skipped {
            notes.push(format!("{w} skipped on device {}: {why}", d.info.index));
        }
    }
    if let Some(note) = run.damage_note() {
        notes.push(note);
    }
    if run.torn_tail {
        notes
            .push("the journal's last line was cut off by the interruption and was skipped".into());
    }
    notes
}

/// Builds the document.
pub fn document<'a>(run: &'a RunResults, judgement: &'a Judgement) -> Document<'a> {
    let verdicts = &judgement.verdicts;
    let count = |d: Decision| verdicts.iter().filter(|v| v.decision == d).count();
    Document {
        schema_version: SCHEMA_VERSION,
        kiln_version: &run.header.kiln_version,
        host: &run.header.host,
        started_at: &run.header.started_at,
        finished_at: run.finished_at.as_deref(),
        profile: run.header.profile.to_string(),
        backend: run.header.backend.to_string(),
        seed: run.header.seed,
        operator: run.header.operator.as_deref(),
        asset: run.header.asset.as_deref(),
        driver: run.header.driver.as_deref(),
        cuda: run.header.cuda.as_deref(),
        duration_s: run.header.duration_s,
        cycles: run.cycles,
        complete: run.complete(),
        interrupted: run.interrupted,
        simulated: run.simulated(),
        summary: Summary {
            devices: run.devices.len(),
            accepted: count(Decision::Accept),
            rejected: count(Decision::Reject),
            incomplete: count(Decision::Incomplete),
            untested: count(Decision::Untested),
            skipped_checks: judgement
                .verdicts
                .iter()
                .map(|v| v.checks.iter().filter(|c| c.skipped).count())
                .sum(),
        },
        notes: notes(run, judgement),
        devices: run
            .devices
            .iter()
            .zip(verdicts)
            .map(|(d, v)| DeviceDoc {
                info: &d.info,
                verdict: v.decision,
                reasons: &v.reasons,
                baseline: v.baseline.as_deref(),
                checks: &v.checks,
                metrics: &d.metrics,
                integrity: &d.integrity,
                failures: &d.failures,
                hangs: &d.hangs,
                time_to_fault_s: v.time_to_fault_s,
                remedy: v.remedy,
                diagnosis: v.diagnosis.as_deref(),
                burnin: v.burnin.as_ref(),
                load: d.load_by_workload(),
                phases: d.phase_telemetry(),
                telemetry: &d.telemetry,
            })
            .collect(),
    }
}

/// results.json as bytes.
pub fn render(run: &RunResults, judgement: &Judgement) -> Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(&document(run, judgement))
        .map_err(|e| KilnError::output("results.json", e))?;
    bytes.push(b'\n');
    Ok(bytes)
}

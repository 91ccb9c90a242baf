//! Racks judged against each other: the fleet rule of `kiln fleet`. Pure:
//! judged runs in, a [`Fleet`] out, no I/O.
//!
//! Each node is first judged by its own run's rules ([`super::judge`]); a
//! node with a GPU its run rejected, could not test or did not finish is
//! flagged for that (`gpu_rejected`, `gpu_untested`, `gpu_incomplete`). Then
//! the **fleet rule** (`fleet_outlier`) catches what no node can see alone:
//! a node whose GPUs are all slow by the same amount passes its own peer
//! check (its peers are as slow as it is) and may still clear the baseline
//! floor. Per GPU model and metric:
//!
//! 1. each GPU's figure is its median over the run's cycles; only GPUs its
//!    run accepted or rejected count (an untested or incomplete GPU's
//!    figures are partial);
//! 2. each node's figure is the median of its GPUs' figures, so one bad GPU
//!    (already rejected by its node) does not move its node;
//! 3. each node is compared with the **other** nodes: the reference is the
//!    median of their figures, the spread the MAD (median absolute
//!    deviation) of their figures from it times 1.4826 (the standard
//!    deviation of a normal distribution), never less than 0.5 % of the
//!    reference (measurement noise: identical nodes must not make every
//!    small difference an outlier). Leaving the node out keeps an outlier
//!    from widening the spread it is measured with: with 3 nodes, the MAD
//!    of all three is merely the smaller of two gaps;
//! 4. a node is flagged when its figure is at least [`MIN_SHORTFALL`] (4 %)
//!    under its reference **and** at least [`MIN_Z`] (3) spreads under it
//!    (a robust z-score; Iglewicz and Hoaglin suggest 3.5, but with few
//!    nodes the MAD comes from few figures): slow enough to matter,
//!    and unusual for this fleet. A faster node is never flagged.
//!
//! The rule needs at least [`MIN_NODES`] (3) nodes with GPUs of the model
//! (with two, which one is slow cannot be told); with fewer it is reported
//! as not applied for that model, never skipped silently. The per-peer
//! `p2p_gpuJ` figures are left out (they depend on which peers a node has;
//! `p2p`, the slowest peer, is kept).

use std::collections::BTreeMap;

use serde::Serialize;

use super::{exit_code, Decision, Judgement};
use crate::error::ExitCode;
use crate::results::RunResults;
use crate::stats;

/// Version of fleet.json's schema.
pub const SCHEMA_VERSION: u32 = 1;
/// Nodes of a model the fleet rule needs.
pub const MIN_NODES: usize = 3;
/// The least shortfall from the fleet reference that flags a node (4 %).
pub const MIN_SHORTFALL: f64 = 0.04;
/// The least robust z-score that flags a node.
pub const MIN_Z: f64 = 3.0;
/// MAD to standard deviation, for normally distributed figures.
pub const MAD_SCALE: f64 = 1.4826;
/// The least spread, as a fraction of the reference (0.5 %).
pub const SPREAD_FLOOR: f64 = 0.005;

/// One node's judged run.
#[derive(Debug, Clone, Copy)]
pub struct Node<'a> {
    /// The node's name (the run's `host`, i.e. `--node-name`).
    pub name: &'a str,
    /// Where the run was read from (its folder), for the reader.
    pub source: &'a str,
    /// The run.
    pub run: &'a RunResults,
    /// Its own judgement.
    pub judgement: &'a Judgement,
}

/// The fleet rule's numbers, recorded in fleet.json.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rule {
    /// Nodes of a model needed.
    pub min_nodes: usize,
    /// Least shortfall that flags, as a fraction.
    pub min_shortfall: f64,
    /// Least robust z-score that flags.
    pub min_z: f64,
    /// MAD scale factor.
    pub mad_scale: f64,
    /// Least spread, as a fraction of the reference.
    pub spread_floor: f64,
    /// The rule in words.
    pub description: String,
}

impl Default for Rule {
    fn default() -> Self {
        Rule {
            min_nodes: MIN_NODES,
            min_shortfall: MIN_SHORTFALL,
            min_z: MIN_Z,
            mad_scale: MAD_SCALE,
            spread_floor: SPREAD_FLOOR,
            description: format!(
                "per GPU model and metric, a node's median (over its accepted and rejected GPUs) is flagged fleet_outlier when it is at least {:.0} % under the median of the other nodes' medians and at least {MIN_Z} robust standard deviations under it (1.4826 x their MAD, at least {:.1} % of their median); needs at least {MIN_NODES} nodes of the model",
                MIN_SHORTFALL * 100.0,
                SPREAD_FLOOR * 100.0
            ),
        }
    }
}

/// The fleet's figure for one metric of one model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricFleet {
    /// Metric name.
    pub metric: String,
    /// Its unit.
    pub unit: String,
    /// GPUs with the figure, accepted or rejected by their run.
    pub gpus: usize,
    /// Median over those GPUs.
    pub median: f64,
    /// Accepted GPUs with the figure.
    pub accepted_gpus: usize,
    /// Median over the accepted GPUs alone.
    pub median_accepted: Option<f64>,
    /// Nodes with the figure.
    pub nodes: usize,
    /// The median of the node medians.
    pub reference: f64,
    /// 1.4826 x the MAD of the node medians, at least 0.5 % of their
    /// median (each node is compared with the other nodes' own, see
    /// [`Comparison`]).
    pub spread: f64,
    /// True when the fleet rule was applied to this metric.
    pub applied: bool,
}

/// The fleet's figures for one GPU model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelFleet {
    /// The model (device name).
    pub model: String,
    /// Nodes with GPUs of the model.
    pub nodes: usize,
    /// GPUs of the model, any verdict.
    pub gpus: usize,
    /// True when the fleet rule was applied to at least one metric.
    pub rule_applied: bool,
    /// Why it was not, when it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_note: Option<String>,
    /// Per metric, in first-seen order.
    pub metrics: Vec<MetricFleet>,
}

/// Why a node is flagged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Flag {
    /// `gpu_rejected`, `gpu_untested`, `gpu_incomplete` or `fleet_outlier`.
    pub code: &'static str,
    /// In words, with units.
    pub detail: String,
    /// The GPUs concerned (indices), for the node's own verdicts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<usize>,
    /// The model, for `fleet_outlier`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The metric, for `fleet_outlier`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// Shortfall from the fleet reference, as a fraction, for `fleet_outlier`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shortfall: Option<f64>,
    /// Robust z-score, for `fleet_outlier`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub z: Option<f64>,
}

/// One node's figure against the fleet's, passed or not.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// GPU model.
    pub model: String,
    /// Metric.
    pub metric: String,
    /// Unit of the figures.
    pub unit: String,
    /// The node's median.
    pub value: f64,
    /// The reference: the median of the other nodes' medians.
    pub reference: f64,
    /// The spread: 1.4826 x the MAD of the other nodes' medians, at least
    /// 0.5 % of the reference.
    pub spread: f64,
    /// (reference - value) / reference: positive when the node is slower.
    pub shortfall: f64,
    /// (reference - value) / spread.
    pub z: f64,
    /// False when the node was flagged for it.
    pub pass: bool,
}

/// The verdict on one node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeVerdict {
    /// Node name.
    pub node: String,
    /// The run folder.
    pub source: String,
    /// When its run started (RFC 3339 UTC).
    pub started_at: String,
    /// True when its figures come from a model (sim, virtual GPUs).
    pub simulated: bool,
    /// True when its run finished everything planned.
    pub complete: bool,
    /// Its own run's verdict: accept, reject, incomplete or untested.
    pub verdict: Decision,
    /// The exit code `kiln report` gives its run.
    pub run_exit_code: i32,
    /// True when flagged, for any reason.
    pub flagged: bool,
    /// Why, in order: its own GPUs' verdicts, then the fleet rule.
    pub flags: Vec<Flag>,
    /// GPUs, and how many of each verdict.
    pub gpus: usize,
    /// Accepted GPUs.
    pub accepted: usize,
    /// Rejected GPUs.
    pub rejected: usize,
    /// Incomplete GPUs.
    pub incomplete: usize,
    /// Untested GPUs.
    pub untested: usize,
    /// Every comparison of the fleet rule made for the node.
    pub comparisons: Vec<Comparison>,
}

impl NodeVerdict {
    /// Distinct flag codes, in order.
    pub fn codes(&self) -> Vec<&'static str> {
        let mut codes: Vec<&'static str> = Vec::new();
        for f in &self.flags {
            if !codes.contains(&f.code) {
                codes.push(f.code);
            }
        }
        codes
    }
}

/// One GPU of the fleet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GpuLine {
    /// Its node.
    pub node: String,
    /// Device index on the node.
    pub index: usize,
    /// Serial number.
    pub serial: Option<String>,
    /// UUID.
    pub uuid: Option<String>,
    /// Model (device name).
    pub model: String,
    /// PCI bus id.
    pub pci_bus_id: Option<String>,
    /// Its own run's verdict.
    pub verdict: Decision,
    /// Its own run's reason codes.
    pub reasons: Vec<String>,
    /// The flag codes of its node (`fleet_outlier` is a node's, not a
    /// GPU's: its GPUs' own verdicts stand).
    pub node_flags: Vec<&'static str>,
}

/// A run left out because a later run of the same node is judged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Superseded {
    /// Node name.
    pub node: String,
    /// The run folder left out.
    pub source: String,
    /// When it started.
    pub started_at: String,
    /// The run folder judged instead.
    pub by: String,
}

/// The judgement of a fleet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fleet {
    /// The fleet rule's numbers.
    pub rule: Rule,
    /// Per model, the fleet's medians.
    pub models: Vec<ModelFleet>,
    /// Per node, in input order.
    pub nodes: Vec<NodeVerdict>,
    /// Per GPU, node by node.
    pub gpus: Vec<GpuLine>,
    /// Runs left out for a later run of their node.
    pub superseded: Vec<Superseded>,
    /// Plain-words notes (the rule not applied, runs superseded).
    pub notes: Vec<String>,
}

impl Fleet {
    /// The exit code: 1 when a node is rejected or flagged by the fleet
    /// rule, else 5 when a GPU could not be tested, else 4 when a run is
    /// incomplete, else 0.
    pub fn exit_code(&self) -> ExitCode {
        let any = |f: &dyn Fn(&NodeVerdict) -> bool| self.nodes.iter().any(f);
        if any(&|n| n.verdict == Decision::Reject || n.codes().contains(&"fleet_outlier")) {
            ExitCode::Rejected
        } else if any(&|n| n.verdict == Decision::Untested) {
            ExitCode::Untested
        } else if any(&|n| n.verdict != Decision::Accept) {
            ExitCode::Incomplete
        } else {
            ExitCode::Accepted
        }
    }

    /// Nodes flagged, for any reason.
    pub fn flagged(&self) -> usize {
        self.nodes.iter().filter(|n| n.flagged).count()
    }
}

/// The median of `values` and their spread: 1.4826 x their MAD about it,
/// at least [`SPREAD_FLOOR`] of the median.
fn centre_and_spread(values: &[f64]) -> (f64, f64) {
    let centre = med(values);
    let deviations: Vec<f64> = values.iter().map(|v| (v - centre).abs()).collect();
    let spread = (MAD_SCALE * med(&deviations)).max(SPREAD_FLOOR * centre.abs());
    (centre, spread)
}

/// A figure to 4 significant digits (at least a whole number).
fn sig(v: f64) -> String {
    let digits = if v.abs() >= 1000.0 {
        0
    } else if v.abs() >= 100.0 {
        1
    } else if v.abs() >= 10.0 {
        2
    } else {
        3
    };
    format!("{v:.digits$}")
}

/// The median of a non-empty list (NaN for an empty one, never used).
fn med(v: &[f64]) -> f64 {
    stats::median(v).unwrap_or(f64::NAN)
}

/// The latest run of each node, in input order, and the runs left out.
fn latest_per_node<'a>(all: &[Node<'a>]) -> (Vec<Node<'a>>, Vec<Superseded>) {
    let mut keep: Vec<Node<'a>> = Vec::new();
    let mut left = Vec::new();
    for n in all {
        match keep.iter_mut().find(|k| k.name == n.name) {
            None => keep.push(*n),
            Some(k) => {
                // RFC 3339 UTC stamps of one format sort as text; the later
                // input wins a tie.
                let (old, new) = if n.run.header.started_at >= k.run.header.started_at {
                    (std::mem::replace(k, *n), *n)
                } else {
                    (*n, *k)
                };
                left.push(Superseded {
                    node: old.name.to_string(),
                    source: old.source.to_string(),
                    started_at: old.run.header.started_at.clone(),
                    by: new.source.to_string(),
                });
            }
        }
    }
    for s in &mut left {
        // A run superseded twice names the one finally judged.
        if let Some(k) = keep.iter().find(|k| k.name == s.node) {
            s.by = k.source.to_string();
        }
    }
    (keep, left)
}

/// A GPU's figure per metric, with its unit.
type Figures = BTreeMap<String, (f64, String)>;

/// Per GPU of a tested verdict (accept or reject), its figure per metric:
/// the median over cycles. Per-peer `p2p_gpuJ` figures are left out.
fn gpu_figures(run: &RunResults, j: &Judgement) -> Vec<(usize, Figures)> {
    run.devices
        .iter()
        .zip(&j.verdicts)
        .enumerate()
        .filter(|(_, (_, v))| matches!(v.decision, Decision::Accept | Decision::Reject))
        .map(|(slot, (d, _))| {
            let mut by: BTreeMap<String, (Vec<f64>, String)> = BTreeMap::new();
            for m in &d.metrics {
                if m.name.starts_with("p2p_gpu") || !m.value.is_finite() {
                    continue;
                }
                by.entry(m.name.clone())
                    .or_insert_with(|| (Vec::new(), m.unit.clone()))
                    .0
                    .push(m.value);
            }
            let figures = by
                .into_iter()
                .map(|(k, (v, u))| (k, (med(&v), u)))
                .collect();
            (slot, figures)
        })
        .collect()
}

/// Judges the fleet: each node by its own run's judgement, then the fleet
/// rule across nodes. When a node has several runs, its latest is judged.
pub fn judge(all: &[Node<'_>]) -> Fleet {
    let (nodes, superseded) = latest_per_node(all);
    let mut notes = Vec::new();
    for s in &superseded {
        notes.push(format!(
            "node {}: the run in {} (started {}) is superseded by the later run in {}",
            s.node, s.source, s.started_at, s.by
        ));
    }
    let figures: Vec<_> = nodes
        .iter()
        .map(|n| gpu_figures(n.run, n.judgement))
        .collect();

    // Models and metrics in first-seen order.
    let mut model_names: Vec<String> = Vec::new();
    for n in &nodes {
        for d in &n.run.devices {
            if !model_names.contains(&d.info.name) {
                model_names.push(d.info.name.clone());
            }
        }
    }
    let mut verdicts: Vec<NodeVerdict> = nodes.iter().map(own_verdict).collect();
    let mut models = Vec::new();
    for model in &model_names {
        let of_model = |n: &Node<'_>| {
            n.run
                .devices
                .iter()
                .filter(|d| &d.info.name == model)
                .count()
        };
        let node_count = nodes.iter().filter(|n| of_model(n) > 0).count();
        let gpu_count: usize = nodes.iter().map(of_model).sum();
        let mut metric_names: Vec<(String, String)> = Vec::new();
        for n in &nodes {
            for d in n.run.devices.iter().filter(|d| &d.info.name == model) {
                for m in &d.metrics {
                    if m.name.starts_with("p2p_gpu") {
                        continue;
                    }
                    if !metric_names.iter().any(|(k, _)| k == &m.name) {
                        metric_names.push((m.name.clone(), m.unit.clone()));
                    }
                }
            }
        }
        let mut metrics = Vec::new();
        for (metric, unit) in &metric_names {
            // (node position, node median), all and accepted GPU figures.
            let mut node_medians: Vec<(usize, f64)> = Vec::new();
            let mut all_gpus = Vec::new();
            let mut accepted = Vec::new();
            for (pos, (n, figs)) in nodes.iter().zip(&figures).enumerate() {
                let mut here = Vec::new();
                for (slot, f) in figs {
                    let d = &n.run.devices[*slot];
                    if &d.info.name != model {
                        continue;
                    }
                    if let Some((v, u)) = f.get(metric) {
                        if u != unit {
                            continue;
                        }
                        here.push(*v);
                        all_gpus.push(*v);
                        if n.judgement.verdicts[*slot].decision == Decision::Accept {
                            accepted.push(*v);
                        }
                    }
                }
                if !here.is_empty() {
                    node_medians.push((pos, med(&here)));
                }
            }
            if all_gpus.is_empty() {
                continue;
            }
            let values: Vec<f64> = node_medians.iter().map(|(_, v)| *v).collect();
            let (reference, spread) = centre_and_spread(&values);
            let applied = node_medians.len() >= MIN_NODES && reference > 0.0 && spread > 0.0;
            if applied {
                for (pos, value) in &node_medians {
                    // Each node against the others: an outlier must not
                    // widen the spread it is measured with (with 3 nodes,
                    // the MAD of all three is the smaller of two gaps).
                    let others: Vec<f64> = node_medians
                        .iter()
                        .filter(|(p, _)| p != pos)
                        .map(|(_, v)| *v)
                        .collect();
                    let (reference, spread) = centre_and_spread(&others);
                    if reference <= 0.0 || spread <= 0.0 {
                        continue;
                    }
                    let shortfall = (reference - value) / reference;
                    let z = (reference - value) / spread;
                    let pass = !(shortfall >= MIN_SHORTFALL && z >= MIN_Z);
                    let v = &mut verdicts[*pos];
                    v.comparisons.push(Comparison {
                        model: model.clone(),
                        metric: metric.clone(),
                        unit: unit.clone(),
                        value: *value,
                        reference,
                        spread,
                        shortfall,
                        z,
                        pass,
                    });
                    if !pass {
                        v.flags.push(Flag {
                            code: "fleet_outlier",
                            detail: format!(
                                "{metric} {:.1} % under the fleet: {} {unit} against a median of {} {unit} over the {} other node(s), {z:.1} robust standard deviations under it",
                                shortfall * 100.0,
                                sig(*value),
                                sig(reference),
                                others.len()
                            ),
                            gpus: Vec::new(),
                            model: Some(model.clone()),
                            metric: Some(metric.clone()),
                            shortfall: Some(shortfall),
                            z: Some(z),
                        });
                    }
                }
            }
            metrics.push(MetricFleet {
                metric: metric.clone(),
                unit: unit.clone(),
                gpus: all_gpus.len(),
                median: med(&all_gpus),
                accepted_gpus: accepted.len(),
                median_accepted: stats::median(&accepted),
                nodes: node_medians.len(),
                reference,
                spread,
                applied,
            });
        }
        let rule_applied = metrics.iter().any(|m| m.applied);
        let rule_note = if rule_applied {
            let partial: Vec<&str> = metrics
                .iter()
                .filter(|m| !m.applied)
                .map(|m| m.metric.as_str())
                .collect();
            (!partial.is_empty()).then(|| {
                format!(
                    "fleet rule not applied to {} of {model}: measured on fewer than {MIN_NODES} nodes",
                    partial.join(", ")
                )
            })
        } else {
            Some(format!(
                "fleet rule not applied to {model}: {node_count} node(s) with a tested GPU figure, at least {MIN_NODES} needed"
            ))
        };
        if let Some(n) = &rule_note {
            notes.push(n.clone());
        }
        models.push(ModelFleet {
            model: model.clone(),
            nodes: node_count,
            gpus: gpu_count,
            rule_applied,
            rule_note,
            metrics,
        });
    }
    for v in &mut verdicts {
        v.flagged = !v.flags.is_empty();
    }
    let gpus = nodes
        .iter()
        .zip(&verdicts)
        .flat_map(|(n, nv)| {
            n.run
                .devices
                .iter()
                .zip(&n.judgement.verdicts)
                .map(move |(d, v)| GpuLine {
                    node: n.name.to_string(),
                    index: d.info.index,
                    serial: d.info.serial.clone(),
                    uuid: d.info.uuid.clone(),
                    model: d.info.name.clone(),
                    pci_bus_id: d.info.pci_bus_id.clone(),
                    verdict: v.decision,
                    reasons: v.reasons.clone(),
                    node_flags: nv.codes(),
                })
        })
        .collect();
    Fleet {
        rule: Rule::default(),
        models,
        nodes: verdicts,
        gpus,
        superseded,
        notes,
    }
}

/// A node's verdict from its own run: its flags for GPUs not accepted.
fn own_verdict(n: &Node<'_>) -> NodeVerdict {
    let vs = &n.judgement.verdicts;
    let pick = |d: Decision| -> Vec<usize> {
        n.run
            .devices
            .iter()
            .zip(vs)
            .filter(|(_, v)| v.decision == d)
            .map(|(dev, _)| dev.info.index)
            .collect()
    };
    let code = exit_code(n.run, vs);
    let verdict = match code {
        ExitCode::Rejected => Decision::Reject,
        ExitCode::Untested => Decision::Untested,
        ExitCode::Accepted => Decision::Accept,
        _ => Decision::Incomplete,
    };
    let mut flags = Vec::new();
    let reasons_of = |idx: &[usize]| -> String {
        idx.iter()
            .filter_map(|i| {
                let (d, v) = n
                    .run
                    .devices
                    .iter()
                    .zip(vs)
                    .find(|(d, _)| d.info.index == *i)?;
                Some(format!(
                    "GPU {i} ({}): {}",
                    d.info.serial.as_deref().unwrap_or("no serial"),
                    if v.reasons.is_empty() {
                        "not every workload finished".to_string()
                    } else {
                        v.reasons.join(", ")
                    }
                ))
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    for (d, code, words) in [
        (
            Decision::Reject,
            "gpu_rejected",
            "rejected by the node's own checks",
        ),
        (
            Decision::Untested,
            "gpu_untested",
            "could not be tested (node state)",
        ),
        (
            Decision::Incomplete,
            "gpu_incomplete",
            "did not finish every workload",
        ),
    ] {
        let idx = pick(d);
        if !idx.is_empty() {
            flags.push(Flag {
                code,
                detail: format!("{} GPU(s) {words}: {}", idx.len(), reasons_of(&idx)),
                gpus: idx,
                model: None,
                metric: None,
                shortfall: None,
                z: None,
            });
        }
    }
    if verdict == Decision::Incomplete && !flags.iter().any(|f| f.code == "gpu_incomplete") {
        flags.push(Flag {
            code: "gpu_incomplete",
            detail: "the run did not finish (stopped early or killed)".into(),
            gpus: Vec::new(),
            model: None,
            metric: None,
            shortfall: None,
            z: None,
        });
    }
    let count = |d: Decision| vs.iter().filter(|v| v.decision == d).count();
    NodeVerdict {
        node: n.name.to_string(),
        source: n.source.to_string(),
        started_at: n.run.header.started_at.clone(),
        simulated: n.run.simulated(),
        complete: n.run.complete(),
        verdict,
        run_exit_code: code.code(),
        flagged: false,
        flags,
        gpus: vs.len(),
        accepted: count(Decision::Accept),
        rejected: count(Decision::Reject),
        incomplete: count(Decision::Incomplete),
        untested: count(Decision::Untested),
        comparisons: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::DeviceRun;
    use crate::run::journal::RunHeader;
    use crate::verdict::DeviceVerdict;
    use crate::workload::{Metric, WorkloadKind};

    /// A finished run of node `name`, started at `at`, with one GPU per
    /// figure of `bw` (GB/s) and the given decisions (accept by default).
    fn node(name: &str, at: &str, bw: &[f64], decisions: &[Decision]) -> (RunResults, Judgement) {
        let devices: Vec<DeviceRun> = bw
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let mut d = DeviceRun::blank();
                d.info.index = i;
                d.info.name = "GPU X".into();
                d.info.serial = Some(format!("{name}-{i}"));
                d.metrics.push(Metric {
                    workload: WorkloadKind::Bandwidth,
                    name: "bw_read".into(),
                    value: *v,
                    unit: "GB/s".into(),
                    median: *v,
                    p05: *v,
                    p95: *v,
                    cv: 0.001,
                    iterations: 5,
                    counted: String::new(),
                    simulated: true,
                    cycle: 0,
                });
                d
            })
            .collect();
        let verdicts = (0..bw.len())
            .map(|i| DeviceVerdict {
                device: i,
                decision: decisions.get(i).copied().unwrap_or(Decision::Accept),
                reasons: Vec::new(),
                baseline: None,
                time_to_fault_s: None,
                remedy: None,
                diagnosis: None,
                burnin: None,
                checks: Vec::new(),
            })
            .collect();
        let header = RunHeader {
            journal_version: 1,
            kiln_version: "0".into(),
            host: name.into(),
            started_at: at.into(),
            profile: crate::workload::Profile::Quick,
            backend: crate::device::BackendKind::Sim,
            seed: 1,
            duration_s: None,
            workloads: Vec::new(),
            devices: devices.iter().map(|d| d.info.clone()).collect(),
            notes: Vec::new(),
            operator: None,
            asset: None,
            driver: None,
            cuda: None,
        };
        let run = RunResults {
            header,
            finished_at: Some(at.into()),
            interrupted: false,
            cycles: 1,
            devices,
            torn_tail: false,
            damaged_lines: Vec::new(),
        };
        (
            run,
            Judgement {
                verdicts,
                notes: Vec::new(),
            },
        )
    }

    fn judge_all(runs: &[(RunResults, Judgement)]) -> Fleet {
        let sources: Vec<String> = (0..runs.len()).map(|i| format!("dir{i}")).collect();
        let nodes: Vec<Node<'_>> = runs
            .iter()
            .zip(&sources)
            .map(|((r, j), s)| Node {
                name: &r.header.host,
                source: s,
                run: r,
                judgement: j,
            })
            .collect();
        judge(&nodes)
    }

    fn outliers(f: &Fleet) -> Vec<&str> {
        f.nodes
            .iter()
            .filter(|n| n.codes().contains(&"fleet_outlier"))
            .map(|n| n.node.as_str())
            .collect()
    }

    const T: &str = "2026-01-01T00:00:00Z";

    #[test]
    fn with_two_nodes_the_rule_is_not_applied_and_says_so() {
        let f = judge_all(&[
            node("a", T, &[100.0; 4], &[]),
            node("b", T, &[80.0; 4], &[]),
        ]);
        assert!(!f.models[0].rule_applied);
        assert!(f
            .notes
            .iter()
            .any(|n| n.contains("not applied") && n.contains("2 node(s)")));
        assert!(f
            .nodes
            .iter()
            .all(|n| n.comparisons.is_empty() && !n.flagged));
        assert_eq!(f.exit_code(), ExitCode::Accepted);
    }

    #[test]
    fn a_node_uniformly_slow_is_flagged_and_one_bad_gpu_does_not_move_its_node() {
        let f = judge_all(&[
            node("a", T, &[100.0, 100.4, 99.7, 100.1], &[]),
            // One GPU 15 % slow (its own node rejects it): the median holds.
            node(
                "b",
                T,
                &[99.9, 100.2, 85.0, 100.3],
                &[Decision::Accept, Decision::Accept, Decision::Reject],
            ),
            node("c", T, &[94.6, 94.1, 94.3, 94.4], &[]),
            node("d", T, &[100.5, 99.8, 100.0, 100.2], &[]),
            // Slower by 3 %: under the 4 % that matters.
            node("e", T, &[97.0, 97.1, 96.9, 97.0], &[]),
            // Faster: never flagged.
            node("f", T, &[110.0; 4], &[]),
        ]);
        assert_eq!(outliers(&f), ["c"]);
        let flagged: Vec<&str> = f
            .nodes
            .iter()
            .filter(|n| n.flagged)
            .map(|n| n.node.as_str())
            .collect();
        assert_eq!(flagged, ["b", "c"]);
        assert_eq!(f.nodes[1].codes(), ["gpu_rejected"]);
        let c = &f.nodes[2].comparisons[0];
        assert!(
            (c.shortfall - (100.1 - 94.35) / 100.1).abs() < 0.002,
            "{c:?}"
        );
        let m = &f.models[0].metrics[0];
        assert_eq!((m.gpus, m.accepted_gpus, m.nodes), (24, 23, 6));
        assert_eq!(f.exit_code(), ExitCode::Rejected);
    }

    #[test]
    fn a_widely_spread_fleet_flags_no_one_for_a_few_percent() {
        // Nodes 10 % apart from each other: 7 % under the others is usual.
        let runs: Vec<_> = [90.0, 95.0, 100.0, 105.0, 110.0]
            .iter()
            .enumerate()
            .map(|(i, v)| node(&format!("n{i}"), T, &[*v; 2], &[]))
            .collect();
        let f = judge_all(&runs);
        assert!(f.models[0].rule_applied);
        assert!(outliers(&f).is_empty(), "{:?}", f.nodes);
        let first = &f.nodes[0].comparisons[0];
        assert!(first.shortfall > 0.04 && first.z < MIN_Z, "{first:?}");
    }

    #[test]
    fn the_latest_run_of_a_node_is_judged_and_the_others_named() {
        let f = judge_all(&[
            node("a", "2026-01-02T00:00:00Z", &[100.0; 2], &[]),
            node("a", "2026-01-01T00:00:00Z", &[50.0; 2], &[Decision::Reject]),
            node("b", T, &[100.0; 2], &[]),
        ]);
        assert_eq!(f.nodes.len(), 2);
        assert_eq!(f.nodes[0].source, "dir0");
        assert_eq!(f.superseded.len(), 1);
        assert_eq!(
            (f.superseded[0].source.as_str(), f.superseded[0].by.as_str()),
            ("dir1", "dir0")
        );
        assert_eq!(f.gpus.len(), 4);
        assert_eq!(f.exit_code(), ExitCode::Accepted);
    }

    #[test]
    fn untested_outranks_incomplete_and_rejected_outranks_both() {
        let untested = node("a", T, &[100.0], &[Decision::Untested]);
        let incomplete = node("b", T, &[100.0], &[Decision::Incomplete]);
        assert_eq!(
            judge_all(&[untested.clone(), incomplete.clone()]).exit_code(),
            ExitCode::Untested
        );
        assert_eq!(
            judge_all(std::slice::from_ref(&incomplete)).exit_code(),
            ExitCode::Incomplete
        );
        let rejected = node("c", T, &[100.0], &[Decision::Reject]);
        assert_eq!(
            judge_all(&[untested, incomplete, rejected]).exit_code(),
            ExitCode::Rejected
        );
    }
}

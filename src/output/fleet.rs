//! fleet.json and fleet.csv of `kiln fleet`: bytes only, no I/O.
//!
//! fleet.json is versioned by `schema_version` (fields are only ever added
//! within a version): the fleet rule's numbers, per model the fleet's
//! medians, per node its verdict, flags (with reasons) and every comparison
//! of the fleet rule, per GPU its node, index, serial, verdict and reasons.
//! fleet.csv has one line per node and GPU (a node without GPUs gets one
//! line with the GPU columns empty).

use serde::Serialize;

use crate::error::{KilnError, Result};
use crate::verdict::fleet::{self, Fleet};
use crate::verdict::Decision;

/// The top level of fleet.json.
#[derive(Debug, Serialize)]
struct Document<'a> {
    schema_version: u32,
    kiln_version: &'a str,
    generated_at: &'a str,
    exit_code: i32,
    summary: Summary,
    #[serde(flatten)]
    fleet: &'a Fleet,
}

/// Counts for the reader in a hurry.
#[derive(Debug, Serialize)]
struct Summary {
    nodes: usize,
    nodes_flagged: usize,
    nodes_fleet_outlier: usize,
    gpus: usize,
    gpus_accepted: usize,
    gpus_rejected: usize,
    gpus_incomplete: usize,
    gpus_untested: usize,
    fleet_rule_applied: bool,
}

/// fleet.json as bytes; `generated_at` is RFC 3339 UTC.
pub fn json(f: &Fleet, generated_at: &str) -> Result<Vec<u8>> {
    let gpus = |d: Decision| f.gpus.iter().filter(|g| g.verdict == d).count();
    let doc = Document {
        schema_version: fleet::SCHEMA_VERSION,
        kiln_version: crate::VERSION,
        generated_at,
        exit_code: f.exit_code().code(),
        summary: Summary {
            nodes: f.nodes.len(),
            nodes_flagged: f.flagged(),
            nodes_fleet_outlier: f
                .nodes
                .iter()
                .filter(|n| n.codes().contains(&"fleet_outlier"))
                .count(),
            gpus: f.gpus.len(),
            gpus_accepted: gpus(Decision::Accept),
            gpus_rejected: gpus(Decision::Reject),
            gpus_incomplete: gpus(Decision::Incomplete),
            gpus_untested: gpus(Decision::Untested),
            fleet_rule_applied: f.models.iter().any(|m| m.rule_applied),
        },
        fleet: f,
    };
    let mut bytes =
        serde_json::to_vec_pretty(&doc).map_err(|e| KilnError::output("fleet.json", e))?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// fleet.csv's columns, in order.
pub const CSV_HEADER: [&str; 13] = [
    "node",
    "node_verdict",
    "node_flagged",
    "node_flags",
    "node_flag_details",
    "source",
    "gpu",
    "serial",
    "uuid",
    "model",
    "pci_bus_id",
    "verdict",
    "reasons",
];

fn word(d: Decision) -> String {
    format!("{d:?}").to_lowercase()
}

/// fleet.csv as bytes.
pub fn csv(f: &Fleet) -> Result<Vec<u8>> {
    let err = |e: csv::Error| KilnError::output("fleet.csv", e);
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(CSV_HEADER).map_err(err)?;
    for n in &f.nodes {
        let node = [
            n.node.clone(),
            word(n.verdict),
            n.flagged.to_string(),
            n.codes().join(" "),
            n.flags
                .iter()
                .map(|f| format!("{}: {}", f.code, f.detail))
                .collect::<Vec<_>>()
                .join("; "),
            n.source.clone(),
        ];
        let mut any = false;
        for g in f.gpus.iter().filter(|g| g.node == n.node) {
            any = true;
            let gpu = [
                g.index.to_string(),
                g.serial.clone().unwrap_or_default(),
                g.uuid.clone().unwrap_or_default(),
                g.model.clone(),
                g.pci_bus_id.clone().unwrap_or_default(),
                word(g.verdict),
                g.reasons.join(" "),
            ];
            w.write_record(node.iter().chain(&gpu)).map_err(err)?;
        }
        if !any {
            w.write_record(
                node.iter()
                    .cloned()
                    .chain(std::iter::repeat_n(String::new(), 7)),
            )
            .map_err(err)?;
        }
    }
    w.into_inner()
        .map_err(|e| KilnError::output("fleet.csv", e.to_string()))
}

/// The summary `kiln fleet` prints: a line per node, its flags under it,
/// then the notes and the count.
pub fn summary(f: &Fleet) -> String {
    let mut out = String::new();
    let width = f
        .nodes
        .iter()
        .map(|n| n.node.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    out.push_str(&format!(
        "{:<width$}  {:<10} {:<10} GPUS ACC/REJ/OTHER\n",
        "NODE", "FLEET", "OWN RUN"
    ));
    for n in &f.nodes {
        out.push_str(&format!(
            "{:<width$}  {:<10} {:<10} {}/{}/{}\n",
            n.node,
            if n.flagged { "FLAGGED" } else { "OK" },
            n.verdict.word(),
            n.accepted,
            n.rejected,
            n.incomplete + n.untested
        ));
        for flag in &n.flags {
            out.push_str(&format!(
                "{:<width$}    {}: {}\n",
                "", flag.code, flag.detail
            ));
        }
    }
    for note in &f.notes {
        out.push_str(&format!("note: {note}\n"));
    }
    let outliers = f
        .nodes
        .iter()
        .filter(|n| n.codes().contains(&"fleet_outlier"))
        .count();
    out.push_str(&format!(
        "\n{} node(s), {} flagged ({} by the fleet rule); {} GPU(s)\n",
        f.nodes.len(),
        f.flagged(),
        outliers,
        f.gpus.len()
    ));
    out
}

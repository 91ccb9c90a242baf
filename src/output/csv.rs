//! results.csv: one row per device x metric, for spreadsheets and scripts.

use crate::error::{KilnError, Result};
use crate::results::RunResults;
use crate::verdict::DeviceVerdict;

/// Column names, in order.
pub const HEADER: [&str; 19] = [
    "device",
    "name",
    "uuid",
    "serial",
    "pci_bus_id",
    "simulated",
    "verdict",
    "reasons",
    "workload",
    "metric",
    "value",
    "unit",
    "median",
    "p05",
    "p95",
    "cv",
    "iterations",
    "cycle",
    "counted",
];

/// results.csv as bytes.
pub fn render(run: &RunResults, verdicts: &[DeviceVerdict]) -> Result<Vec<u8>> {
    let err = |e: csv::Error| KilnError::output("results.csv", e);
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(HEADER).map_err(err)?;
    for (d, v) in run.devices.iter().zip(verdicts) {
        let who = [
            d.info.index.to_string(),
            d.info.name.clone(),
            d.info.uuid.clone().unwrap_or_default(),
            d.info.serial.clone().unwrap_or_default(),
            d.info.pci_bus_id.clone().unwrap_or_default(),
            d.info.simulated.to_string(),
            format!("{:?}", v.decision).to_lowercase(),
            v.reasons.join(" "),
        ];
        if d.metrics.is_empty() {
            // A device that measured nothing (could not be tested, lost at
            // once) still has its row: who it is and its verdict.
            let mut row = who.to_vec();
            row.resize(HEADER.len(), String::new());
            w.write_record(row).map_err(err)?;
        }
        for m in &d.metrics {
            let [index, name, uuid, serial, bus, simulated, decision, reasons] = who.clone();
            w.write_record([
                index,
                name,
                uuid,
                serial,
                bus,
                simulated,
                decision,
                reasons,
                m.workload.to_string(),
                m.name.clone(),
                format!("{}", m.value),
                m.unit.clone(),
                format!("{}", m.median),
                format!("{}", m.p05),
                format!("{}", m.p95),
                format!("{}", m.cv),
                m.iterations.to_string(),
                m.cycle.to_string(),
                m.counted.clone(),
            ])
            .map_err(err)?;
        }
    }
    w.into_inner()
        .map_err(|e| KilnError::output("results.csv", e.error()))
}

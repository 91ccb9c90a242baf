//! telemetry.csv: every sensor reading of every device, one row per sample.
//! An absent sensor is an empty cell, never zero.

use crate::error::{KilnError, Result};
use crate::results::RunResults;

/// Column names, in order.
pub const HEADER: [&str; 23] = [
    "time_utc",
    "t_s",
    "device",
    "gpu_temp_c",
    "mem_temp_c",
    "power_w",
    "power_limit_w",
    "sm_clock_mhz",
    "mem_clock_mhz",
    "util_pct",
    "throttle",
    "ecc_corrected",
    "ecc_uncorrected",
    "remapped_rows_pending",
    "remapped_rows_failed",
    "xid",
    "pcie_gen",
    "pcie_width",
    "pcie_max_gen",
    "nvlink_links",
    "nvlink_active",
    "nvlink_replay",
    "nvlink_crc",
];

fn cell<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(String::new, |x| x.to_string())
}

/// telemetry.csv as bytes, rows in time order.
pub fn render(run: &RunResults) -> Result<Vec<u8>> {
    let err = |e: csv::Error| KilnError::output("telemetry.csv", e);
    let start = humantime::parse_rfc3339(&run.header.started_at).ok();
    let mut rows: Vec<(f64, usize, &crate::telemetry::Sample)> = run
        .devices
        .iter()
        .flat_map(|d| d.telemetry.iter().map(move |s| (s.t_s, d.info.index, s)))
        .collect();
    rows.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(HEADER).map_err(err)?;
    for (t, dev, s) in rows {
        let utc = start
            .and_then(|s0| s0.checked_add(std::time::Duration::from_secs_f64(t.max(0.0))))
            .map(|x| humantime::format_rfc3339_millis(x).to_string())
            .unwrap_or_default();
        let xid = s
            .xid
            .as_ref()
            .map(|v| v.iter().map(u32::to_string).collect::<Vec<_>>().join("|"));
        w.write_record([
            utc,
            format!("{t:.3}"),
            dev.to_string(),
            cell(s.gpu_temp_c.map(|v| format!("{v:.1}"))),
            cell(s.mem_temp_c.map(|v| format!("{v:.1}"))),
            cell(s.power_w.map(|v| format!("{v:.1}"))),
            cell(s.power_limit_w.map(|v| format!("{v:.1}"))),
            cell(s.sm_clock_mhz.map(|v| format!("{v:.0}"))),
            cell(s.mem_clock_mhz.map(|v| format!("{v:.0}"))),
            cell(s.util_pct.map(|v| format!("{v:.0}"))),
            s.throttle.join("|"),
            cell(s.ecc_corrected),
            cell(s.ecc_uncorrected),
            cell(s.remapped_rows_pending),
            cell(s.remapped_rows_failed),
            cell(xid),
            cell(s.pcie_gen),
            cell(s.pcie_width),
            cell(s.pcie_max_gen),
            cell(s.nvlink_links),
            cell(s.nvlink_active),
            cell(s.nvlink_replay),
            cell(s.nvlink_crc),
        ])
        .map_err(err)?;
    }
    w.into_inner()
        .map_err(|e| KilnError::output("telemetry.csv", e.error()))
}

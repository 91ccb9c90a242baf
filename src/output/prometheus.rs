//! Figures and verdicts in Prometheus' text exposition format, for
//! node_exporter's textfile collector (`kiln run --prometheus FILE`,
//! `kiln fleet --prometheus FILE`). Bytes only, no I/O: the output manager
//! ([`super::write_prometheus`]) writes the file atomically.
//!
//! Every family is a gauge (a run's figures are a state, not a count), named
//! `kiln_...` with its base unit as the suffix (`_bytes_per_second`,
//! `_flop_per_second`, `_hashes_per_second`, `_seconds`, `_celsius`,
//! `_watts`, `_ratio`), declared once with `# HELP` and `# TYPE`; every
//! series is unique; no sample carries a timestamp (the textfile collector
//! refuses them). README's "Prometheus metrics" lists the families.

use std::collections::BTreeMap;

use crate::error::ExitCode;
use crate::results::RunResults;
use crate::stats;
use crate::verdict::fleet::Fleet;
use crate::verdict::{Decision, Judgement};

/// A set of gauge families, in the order first declared.
#[derive(Debug, Default)]
pub struct Exposition {
    families: Vec<Family>,
}

#[derive(Debug)]
struct Family {
    name: String,
    help: String,
    series: Vec<(Vec<(String, String)>, f64)>,
}

/// True for a valid metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// True for a valid label name: `[a-zA-Z_][a-zA-Z0-9_]*`, not `__`-prefixed.
pub fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    !name.starts_with("__")
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A label value escaped: `\` as `\\`, `"` as `\"`, a line feed as `\n`.
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A HELP text escaped: `\` as `\\`, a line feed as `\n`.
pub fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A sample value as the format writes it.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

impl Exposition {
    /// Adds one gauge sample to family `name` (declared with `help` the
    /// first time). A name or label name that is not valid, or a series
    /// already present, is left out: the file stays loadable.
    pub fn gauge(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: f64) {
        if !valid_name(name) || labels.iter().any(|(k, _)| !valid_label_name(k)) {
            return;
        }
        let labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let fam = match self.families.iter_mut().position(|f| f.name == name) {
            Some(i) => &mut self.families[i],
            None => {
                self.families.push(Family {
                    name: name.to_string(),
                    help: help.to_string(),
                    series: Vec::new(),
                });
                let last = self.families.len() - 1;
                &mut self.families[last]
            }
        };
        if fam.series.iter().any(|(l, _)| *l == labels) {
            return;
        }
        fam.series.push((labels, value));
    }

    /// The text format.
    pub fn render(&self) -> Vec<u8> {
        let mut out = String::new();
        for f in self.families.iter().filter(|f| !f.series.is_empty()) {
            out.push_str(&format!("# HELP {} {}\n", f.name, escape_help(&f.help)));
            out.push_str(&format!("# TYPE {} gauge\n", f.name));
            for (labels, v) in &f.series {
                out.push_str(&f.name);
                if !labels.is_empty() {
                    let l: Vec<String> = labels
                        .iter()
                        .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                        .collect();
                    out.push_str(&format!("{{{}}}", l.join(",")));
                }
                out.push_str(&format!(" {}\n", number(*v)));
            }
        }
        out.into_bytes()
    }
}

/// A figure's Prometheus unit: the family suffix and the factor from kiln's
/// unit to it; `None` for a unit kiln does not know.
pub fn base_unit(unit: &str) -> Option<(&'static str, f64)> {
    Some(match unit {
        "TFLOP/s" => ("flop_per_second", 1e12),
        "GFLOP/s" => ("flop_per_second", 1e9),
        "GB/s" => ("bytes_per_second", 1e9),
        "MB/s" => ("bytes_per_second", 1e6),
        "MH/s" => ("hashes_per_second", 1e6),
        _ => return None,
    })
}

/// The help text of the throughput family for `suffix`.
fn throughput_help(suffix: &str) -> &'static str {
    match suffix {
        "flop_per_second" => "Matrix multiply throughput of the GPU (median over timed iterations, and over cycles in a burn-in), floating-point operations per second (2 n^3 per product); metric names the precision.",
        "bytes_per_second" => "Memory, memory-test and transfer throughput of the GPU (median over timed iterations, and over cycles in a burn-in), bytes per second; metric names the kernel or direction.",
        _ => "Double SHA-256 throughput of the GPU (median over timed iterations, and over cycles in a burn-in), nonces (2 compressions each) per second.",
    }
}

fn verdict_word(d: Decision) -> &'static str {
    match d {
        Decision::Accept => "accept",
        Decision::Reject => "reject",
        Decision::Incomplete => "incomplete",
        Decision::Untested => "untested",
    }
}

/// A verdict as a number: the exit code it gives (0 accept, 1 reject,
/// 4 incomplete, 5 untested).
pub fn verdict_code(d: Decision) -> f64 {
    match d {
        Decision::Accept => 0.0,
        Decision::Reject => 1.0,
        Decision::Incomplete => 4.0,
        Decision::Untested => 5.0,
    }
}

/// Seconds since the Unix epoch of an RFC 3339 time, when it reads.
fn unix(t: &str) -> Option<f64> {
    humantime::parse_rfc3339(t)
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs_f64())
}

/// Adds one judged run's families, every series labelled `node`.
fn add_run(x: &mut Exposition, run: &RunResults, judgement: &Judgement, exit: ExitCode) {
    let h = &run.header;
    let node = h.host.as_str();
    let simulated = run.simulated().to_string();
    x.gauge(
        "kiln_run_info",
        "A kiln run of the node: always 1; its labels say which kiln, profile and backend, and whether the figures are simulated.",
        &[
            ("node", node),
            ("kiln_version", &h.kiln_version),
            ("profile", &h.profile.to_string()),
            ("backend", &h.backend.to_string()),
            ("simulated", &simulated),
        ],
        1.0,
    );
    let start = unix(&h.started_at);
    if let Some(t) = start {
        x.gauge(
            "kiln_run_timestamp_seconds",
            "When the node's kiln run started, seconds since the Unix epoch (time() minus it is the age of the result).",
            &[("node", node)],
            t,
        );
    }
    if let (Some(a), Some(b)) = (start, run.finished_at.as_deref().and_then(unix)) {
        x.gauge(
            "kiln_run_duration_seconds",
            "How long the node's kiln run took, seconds.",
            &[("node", node)],
            (b - a).max(0.0),
        );
    }
    x.gauge(
        "kiln_run_complete",
        "1 when the node's kiln run finished every planned workload on every GPU, 0 when it was stopped early or killed.",
        &[("node", node)],
        if run.complete() { 1.0 } else { 0.0 },
    );
    x.gauge(
        "kiln_run_exit_code",
        "The exit code of the node's kiln run: 0 all accepted, 1 a GPU rejected, 2 bad input, 3 no usable device, 4 incomplete, 5 a GPU untested (node state).",
        &[("node", node)],
        f64::from(exit.code()),
    );
    for d in [
        Decision::Accept,
        Decision::Reject,
        Decision::Incomplete,
        Decision::Untested,
    ] {
        let n = judgement
            .verdicts
            .iter()
            .filter(|v| v.decision == d)
            .count();
        x.gauge(
            "kiln_run_gpus",
            "GPUs of the node's kiln run with this verdict.",
            &[("node", node), ("verdict", verdict_word(d))],
            n as f64,
        );
    }
    for (dev, v) in run.devices.iter().zip(&judgement.verdicts) {
        let gpu = dev.info.index.to_string();
        let serial = dev.info.serial.clone().unwrap_or_default();
        let uuid = dev.info.uuid.clone().unwrap_or_default();
        let id = [
            ("node", node),
            ("gpu", gpu.as_str()),
            ("serial", serial.as_str()),
            ("uuid", uuid.as_str()),
            ("model", dev.info.name.as_str()),
        ];
        let with = |extra: &[(&'static str, &str)]| -> Vec<(&str, String)> {
            id.iter()
                .map(|(k, v)| (*k, v.to_string()))
                .chain(extra.iter().map(|(k, v)| (*k, v.to_string())))
                .collect()
        };
        let gauge = |x: &mut Exposition, name: &str, help: &str, labels: Vec<(&str, String)>, v| {
            let l: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
            x.gauge(name, help, &l, v);
        };
        let bus = dev.info.pci_bus_id.clone().unwrap_or_default();
        gauge(
            x,
            "kiln_gpu_info",
            "A GPU kiln tested: always 1; pci_bus_id is where it sits.",
            with(&[("pci_bus_id", &bus)]),
            1.0,
        );
        for d in [
            Decision::Accept,
            Decision::Reject,
            Decision::Incomplete,
            Decision::Untested,
        ] {
            gauge(
                x,
                "kiln_gpu_verdict",
                "The GPU's verdict as a state set: 1 for its verdict (accept, reject, incomplete, untested), 0 for the others.",
                with(&[("verdict", verdict_word(d))]),
                if v.decision == d { 1.0 } else { 0.0 },
            );
        }
        gauge(
            x,
            "kiln_gpu_verdict_code",
            "The GPU's verdict as a number: 0 accept, 1 reject, 4 incomplete, 5 untested (the exit codes they give).",
            with(&[]),
            verdict_code(v.decision),
        );
        for r in &v.reasons {
            gauge(
                x,
                "kiln_gpu_reason",
                "A reason code the GPU was not accepted for (README's reason codes): 1 for each.",
                with(&[("reason", r)]),
                1.0,
            );
        }
        if let Some(t) = v.time_to_fault_s {
            gauge(
                x,
                "kiln_gpu_time_to_fault_seconds",
                "Seconds into the run when the GPU's first failure was seen.",
                with(&[]),
                t,
            );
        }
        // One figure per metric: the median over a burn-in's cycles.
        let mut by: BTreeMap<&str, (Vec<f64>, &str)> = BTreeMap::new();
        let mut order: Vec<&str> = Vec::new();
        for m in &dev.metrics {
            if !m.value.is_finite() {
                continue;
            }
            if !by.contains_key(m.name.as_str()) {
                order.push(&m.name);
            }
            by.entry(&m.name)
                .or_insert_with(|| (Vec::new(), &m.unit))
                .0
                .push(m.value);
        }
        for name in order {
            let (values, unit) = &by[name];
            let Some(value) = stats::median(values) else {
                continue;
            };
            match base_unit(unit) {
                Some((suffix, scale)) => gauge(
                    x,
                    &format!("kiln_gpu_throughput_{suffix}"),
                    throughput_help(suffix),
                    with(&[("metric", name)]),
                    value * scale,
                ),
                None => gauge(
                    x,
                    "kiln_gpu_figure",
                    "A figure of the GPU in kiln's own unit (the unit label), for a unit with no Prometheus base unit.",
                    with(&[("metric", name), ("unit", unit)]),
                    value,
                ),
            }
        }
        let max = |f: &dyn Fn(&crate::telemetry::Sample) -> Option<f64>| {
            dev.telemetry
                .iter()
                .filter_map(f)
                .filter(|v| v.is_finite())
                .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
        };
        if let Some(t) = max(&|s| s.gpu_temp_c) {
            gauge(
                x,
                "kiln_gpu_temperature_max_celsius",
                "The GPU's highest temperature during the run, degrees Celsius.",
                with(&[]),
                t,
            );
        }
        if let Some(t) = max(&|s| s.mem_temp_c) {
            gauge(
                x,
                "kiln_gpu_memory_temperature_max_celsius",
                "The GPU memory's highest temperature during the run, degrees Celsius.",
                with(&[]),
                t,
            );
        }
        if let Some(p) = max(&|s| s.power_w) {
            gauge(
                x,
                "kiln_gpu_power_max_watts",
                "The GPU's highest power draw during the run, watts.",
                with(&[]),
                p,
            );
        }
    }
}

/// The textfile of one judged run, ending with exit code `exit`.
pub fn run(run: &RunResults, judgement: &Judgement, exit: ExitCode) -> Vec<u8> {
    let mut x = Exposition::default();
    add_run(&mut x, run, judgement, exit);
    x.render()
}

/// The textfile of a run that could not start (bad input, no device):
/// its exit code and when, so a dashboard shows the failure rather than the
/// previous run's figures.
pub fn failed_run(node: &str, exit: ExitCode, now_unix_s: f64) -> Vec<u8> {
    let mut x = Exposition::default();
    x.gauge(
        "kiln_run_timestamp_seconds",
        "When the node's kiln run started, seconds since the Unix epoch (time() minus it is the age of the result).",
        &[("node", node)],
        now_unix_s,
    );
    x.gauge(
        "kiln_run_exit_code",
        "The exit code of the node's kiln run: 0 all accepted, 1 a GPU rejected, 2 bad input, 3 no usable device, 4 incomplete, 5 a GPU untested (node state).",
        &[("node", node)],
        f64::from(exit.code()),
    );
    x.render()
}

/// The textfile of a fleet: every judged node's run families, then the
/// fleet's. `nodes` are the runs `fleet` judged (superseded ones left out),
/// each with its own exit code; `now_unix_s` is when the fleet was judged.
pub fn fleet(
    nodes: &[(&RunResults, &Judgement, ExitCode)],
    fleet: &Fleet,
    now_unix_s: f64,
) -> Vec<u8> {
    let mut x = Exposition::default();
    for (run, j, code) in nodes {
        add_run(&mut x, run, j, *code);
    }
    x.gauge(
        "kiln_fleet_timestamp_seconds",
        "When `kiln fleet` judged the fleet, seconds since the Unix epoch.",
        &[],
        now_unix_s,
    );
    x.gauge(
        "kiln_fleet_exit_code",
        "The exit code of `kiln fleet`: 0 every node accepted and unflagged, 1 a node rejected or flagged, 4 a run incomplete, 5 a GPU untested.",
        &[],
        f64::from(fleet.exit_code().code()),
    );
    x.gauge(
        "kiln_fleet_nodes",
        "Nodes judged by `kiln fleet` (superseded runs left out).",
        &[],
        fleet.nodes.len() as f64,
    );
    x.gauge(
        "kiln_fleet_nodes_flagged",
        "Nodes flagged by `kiln fleet`, for any reason.",
        &[],
        fleet.flagged() as f64,
    );
    for n in &fleet.nodes {
        x.gauge(
            "kiln_fleet_node_flagged",
            "1 when `kiln fleet` flagged the node (a GPU not accepted by its run, or fleet_outlier), else 0.",
            &[("node", &n.node)],
            if n.flagged { 1.0 } else { 0.0 },
        );
        for code in n.codes() {
            x.gauge(
                "kiln_fleet_node_flag",
                "A reason the node was flagged (gpu_rejected, gpu_untested, gpu_incomplete, fleet_outlier): 1 for each.",
                &[("node", &n.node), ("flag", code)],
                1.0,
            );
        }
        for c in &n.comparisons {
            x.gauge(
                "kiln_fleet_node_shortfall_ratio",
                "How far the node's median is under the fleet's median of node medians, as a fraction (0.06 is 6 % slower; negative is faster); the fleet rule flags 0.04 and more when unusual for the fleet.",
                &[("node", &n.node), ("model", &c.model), ("metric", &c.metric)],
                c.shortfall,
            );
        }
    }
    for m in &fleet.models {
        x.gauge(
            "kiln_fleet_rule_applied",
            "1 when the fleet rule was applied to the model (at least 3 nodes of it), else 0.",
            &[("model", &m.model)],
            if m.rule_applied { 1.0 } else { 0.0 },
        );
        for f in &m.metrics {
            if let Some((suffix, scale)) = base_unit(&f.unit) {
                x.gauge(
                    &format!("kiln_fleet_median_{suffix}"),
                    "The fleet's median of the figure over every accepted or rejected GPU of the model, in the base unit of the family name.",
                    &[("model", &m.model), ("metric", &f.metric)],
                    f.median * scale,
                );
            }
        }
    }
    x.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_and_help_are_escaped() {
        assert_eq!(escape_label(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label("x\ny"), "x\\ny");
        assert_eq!(escape_help("a\\b\nc \"q\""), "a\\\\b\\nc \"q\"");
        let mut x = Exposition::default();
        x.gauge("kiln_t", "help", &[("node", "r\"1\\\n")], 1.0);
        let text = String::from_utf8(x.render()).unwrap_or_default();
        assert!(text.contains(r#"kiln_t{node="r\"1\\\n"} 1"#), "{text}");
    }

    #[test]
    fn a_family_is_declared_once_and_a_series_written_once() {
        let mut x = Exposition::default();
        x.gauge("kiln_a", "first", &[("gpu", "0")], 1.0);
        x.gauge("kiln_b", "other", &[], 2.5);
        x.gauge("kiln_a", "second", &[("gpu", "1")], 3.0);
        x.gauge("kiln_a", "again", &[("gpu", "0")], 9.0);
        let text = String::from_utf8(x.render()).unwrap_or_default();
        assert_eq!(
            text,
            "# HELP kiln_a first\n# TYPE kiln_a gauge\nkiln_a{gpu=\"0\"} 1\nkiln_a{gpu=\"1\"} 3\n\
             # HELP kiln_b other\n# TYPE kiln_b gauge\nkiln_b 2.5\n"
        );
    }

    #[test]
    fn invalid_names_are_refused_and_values_spelled_as_prometheus_reads_them() {
        for ok in ["kiln_a", "_x", "a:b", "kiln_gpu_throughput_flop_per_second"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "1a", "kiln-a", "kiln a", "kiln_é"] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert!(!valid_label_name("__name") && !valid_label_name("a:b"));
        let mut x = Exposition::default();
        x.gauge("kiln-bad", "h", &[], 1.0);
        x.gauge("kiln_ok", "h", &[("bad-label", "v")], 1.0);
        x.gauge("kiln_nan", "h", &[], f64::NAN);
        x.gauge("kiln_big", "h", &[], 3.2e12);
        let text = String::from_utf8(x.render()).unwrap_or_default();
        assert!(
            !text.contains("kiln-bad") && !text.contains("kiln_ok"),
            "{text}"
        );
        assert!(text.contains("kiln_nan NaN\n"), "{text}");
        let big = text
            .lines()
            .find(|l| l.starts_with("kiln_big "))
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|v| v.parse::<f64>().ok());
        assert_eq!(big, Some(3.2e12));
    }

    #[test]
    fn units_become_base_units() {
        assert_eq!(base_unit("TFLOP/s"), Some(("flop_per_second", 1e12)));
        assert_eq!(base_unit("GFLOP/s"), Some(("flop_per_second", 1e9)));
        assert_eq!(base_unit("GB/s"), Some(("bytes_per_second", 1e9)));
        assert_eq!(base_unit("MH/s"), Some(("hashes_per_second", 1e6)));
        assert_eq!(base_unit("furlongs"), None);
    }
}

//! Reading a baseline file and checking it against the schema: every
//! problem named by file, line and full dotted key. Also the files shipped
//! in `baselines/` ([`builtin`]) and the metrics kiln measures, with their
//! units ([`MEASURED`]), that a file is checked against.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::{Baseline, Limits, MetricBaseline, DEFAULT_PEER_TOLERANCE, THROTTLE_REASONS};
use crate::error::KilnError;

/// The baseline files shipped in `baselines/`, compiled into the binary.
const SHIPPED: [(&str, &str); 7] = [
    (
        "h100-sxm-80gb.toml",
        include_str!("../../../baselines/h100-sxm-80gb.toml"),
    ),
    (
        "h200-141gb.toml",
        include_str!("../../../baselines/h200-141gb.toml"),
    ),
    (
        "a100-sxm-80gb.toml",
        include_str!("../../../baselines/a100-sxm-80gb.toml"),
    ),
    ("l40s.toml", include_str!("../../../baselines/l40s.toml")),
    (
        "rtx-4090.toml",
        include_str!("../../../baselines/rtx-4090.toml"),
    ),
    (
        "sim-h100.toml",
        include_str!("../../../baselines/sim-h100.toml"),
    ),
    (
        "vgpu-hopper.toml",
        include_str!("../../../baselines/vgpu-hopper.toml"),
    ),
];

/// Every baseline shipped with kiln, parsed from the copies compiled into
/// the binary; each has `source` `builtin:NAME.toml`.
///
/// A unit test parses every shipped file, so none can fail here; should one
/// fail all the same, it is skipped with a warning on stderr rather than
/// stopping the run.
pub fn builtin() -> Vec<Baseline> {
    SHIPPED
        .iter()
        .filter_map(
            |(name, text)| match parse(&format!("builtin:{name}"), text) {
                Ok(b) => Some(b),
                Err(e) => {
                    eprintln!("kiln: warning: skipping a shipped baseline: {e}");
                    None
                }
            },
        )
        .collect()
}

/// Reads the baseline file at `path`.
pub fn load(path: &Path) -> Result<Baseline, KilnError> {
    let bytes = std::fs::read(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            KilnError::input(path, "no such baseline file")
        } else {
            KilnError::input(path, format!("cannot read the baseline file: {e}"))
        }
    })?;
    let text = String::from_utf8(bytes)
        .map_err(|_| KilnError::input(path, "not a baseline file: not UTF-8 text"))?;
    parse(&path.display().to_string(), &text)
}

/// Parses baseline `text`; `source` (a path, or `builtin:NAME.toml`) names
/// it in errors and in [`Baseline::source`].
///
/// Errors are [`KilnError::Input`] with `path` = `source` and a message
/// `line L: KEY: WHAT`, KEY being the full dotted key (`model.name`,
/// `metrics.matmul_bf16.floor`, `limits.max_xid`). When the file has
/// several problems, the first in the file is reported. A TOML syntax error
/// reads `line L: TOML syntax error: MESSAGE`.
pub fn parse(source: &str, text: &str) -> Result<Baseline, KilnError> {
    let root = DeTable::parse(text).map_err(|e| {
        let line = e.span().map_or(1, |s| line_of(text, s.start));
        let message = e.message().lines().next().unwrap_or("").trim();
        let message = if message.is_empty() {
            "invalid TOML"
        } else {
            message
        };
        KilnError::input(source, format!("line {line}: TOML syntax error: {message}"))
    })?;
    let mut r = Reader::default();
    let baseline = read_baseline(&mut r, source, root.get_ref());
    // A missing key is often the consequence of a misspelt one: report the
    // misspelling (or any other problem) first.
    let first = r.problems.into_iter().min_by_key(|p| (p.missing, p.at));
    match (first, baseline) {
        (Some(p), _) | (None, Err(p)) => Err(KilnError::input(
            source,
            format!("line {}: {}: {}", line_of(text, p.at), p.key, p.what),
        )),
        (None, Ok(b)) => Ok(b),
    }
}

/// One problem found in a baseline file.
#[derive(Debug)]
struct Problem {
    /// Byte offset in the file.
    at: usize,
    /// Full dotted key.
    key: String,
    /// What is wrong.
    what: String,
    /// True for a required key that is absent.
    missing: bool,
}

/// The 1-based line of byte offset `at` in `text`.
pub(super) fn line_of(text: &str, at: usize) -> usize {
    let end = at.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// A key as written in a dotted path: bare when TOML allows it, quoted
/// otherwise.
pub(super) fn key_text(key: &str) -> String {
    if bare_key(key) {
        key.to_string()
    } else {
        toml::Value::String(key.to_string()).to_string()
    }
}

/// True for a key TOML allows unquoted (and kiln allows as a metric name).
fn bare_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// True for a metric name kiln accepts: letters, digits and `_`.
fn metric_name_ok(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `parent.key`, or `key` at the top level.
fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key_text(key)
    } else {
        format!("{parent}.{}", key_text(key))
    }
}

/// A value with the byte offset where it starts.
struct At<T> {
    value: T,
    at: usize,
}

/// "a string", "an integer", ... for messages.
fn a_type(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

type Entry<'a, 'i> = (&'a Spanned<Cow<'i, str>>, &'a Spanned<DeValue<'i>>);

/// Collects the problems of one file while reading it.
#[derive(Default)]
struct Reader {
    problems: Vec<Problem>,
}

impl Reader {
    fn report(&mut self, at: usize, key: String, what: impl Into<String>) {
        self.problems.push(Problem {
            at,
            key,
            what: what.into(),
            missing: false,
        });
    }

    /// Reports every key of `table` not in `allowed`.
    fn known_keys(&mut self, table: &DeTable<'_>, path: &str, allowed: &[&str]) {
        for (k, _) in table.iter() {
            if !allowed.contains(&k.get_ref().as_ref()) {
                self.report(
                    k.span().start,
                    join(path, k.get_ref()),
                    format!("unknown key; expected one of {}", allowed.join(", ")),
                );
            }
        }
    }

    fn entry<'a, 'i>(table: &'a DeTable<'i>, key: &str) -> Option<Entry<'a, 'i>> {
        table.iter().find(|(k, _)| k.get_ref().as_ref() == key)
    }

    /// Reports a wrong type and gives up on the value.
    fn wrong<T>(&mut self, v: &Spanned<DeValue<'_>>, key: String, expected: &str) -> Option<T> {
        self.report(
            v.span().start,
            key,
            format!("expected {expected}, found {}", a_type(v.get_ref())),
        );
        None
    }

    fn table<'a, 'i>(
        &mut self,
        table: &'a DeTable<'i>,
        path: &str,
        key: &str,
    ) -> Option<At<&'a DeTable<'i>>> {
        let (k, v) = Self::entry(table, key)?;
        match v.get_ref() {
            DeValue::Table(t) => Some(At {
                value: t,
                at: k.span().start,
            }),
            _ => self.wrong(v, join(path, key), "a table"),
        }
    }

    fn string(&mut self, table: &DeTable<'_>, path: &str, key: &str) -> Option<At<String>> {
        let (_, v) = Self::entry(table, key)?;
        match v.get_ref() {
            DeValue::String(s) => Some(At {
                value: s.to_string(),
                at: v.span().start,
            }),
            _ => self.wrong(v, join(path, key), "a string"),
        }
    }

    fn strings(
        &mut self,
        table: &DeTable<'_>,
        path: &str,
        key: &str,
    ) -> Option<At<Vec<At<String>>>> {
        let (_, v) = Self::entry(table, key)?;
        let DeValue::Array(items) = v.get_ref() else {
            return self.wrong(v, join(path, key), "an array of strings");
        };
        let mut out = Vec::new();
        for item in items {
            match item.get_ref() {
                DeValue::String(s) => out.push(At {
                    value: s.to_string(),
                    at: item.span().start,
                }),
                other => {
                    self.report(
                        item.span().start,
                        join(path, key),
                        format!(
                            "expected an array of strings, found {} in it",
                            a_type(other)
                        ),
                    );
                    return None;
                }
            }
        }
        Some(At {
            value: out,
            at: v.span().start,
        })
    }

    fn number(&mut self, table: &DeTable<'_>, path: &str, key: &str) -> Option<At<f64>> {
        let (_, v) = Self::entry(table, key)?;
        let at = v.span().start;
        let value = match v.get_ref() {
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => n as f64,
                Err(_) => {
                    self.report(at, join(path, key), "integer out of range");
                    return None;
                }
            },
            DeValue::Float(f) => match f.as_str().parse::<f64>() {
                Ok(x) => x,
                Err(_) => {
                    self.report(at, join(path, key), "not a valid number");
                    return None;
                }
            },
            _ => return self.wrong(v, join(path, key), "a number"),
        };
        Some(At { value, at })
    }

    /// An optional boolean; false when absent.
    fn boolean(&mut self, table: &DeTable<'_>, path: &str, key: &str) -> bool {
        let Some((_, v)) = Self::entry(table, key) else {
            return false;
        };
        match v.get_ref() {
            DeValue::Boolean(b) => *b,
            _ => self
                .wrong::<bool>(v, join(path, key), "true or false")
                .unwrap_or(false),
        }
    }

    fn integer(&mut self, table: &DeTable<'_>, path: &str, key: &str) -> Option<At<i64>> {
        let (_, v) = Self::entry(table, key)?;
        let at = v.span().start;
        match v.get_ref() {
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Some(At { value: n, at }),
                Err(_) => {
                    self.report(at, join(path, key), "integer out of range");
                    None
                }
            },
            _ => self.wrong(v, join(path, key), "an integer"),
        }
    }

    /// A count: an integer of 0 or more; 0 when absent.
    fn count(&mut self, table: &DeTable<'_>, path: &str, key: &str) -> u64 {
        match self.integer(table, path, key) {
            Some(At { value, at }) => match u64::try_from(value) {
                Ok(n) => n,
                Err(_) => {
                    self.report(
                        at,
                        join(path, key),
                        format!("must be 0 or more, found {value}"),
                    );
                    0
                }
            },
            None => 0,
        }
    }

    /// An optional fraction from 0 to 1.
    fn fraction(&mut self, table: &DeTable<'_>, path: &str, key: &str) -> Option<f64> {
        let At { value, at } = self.number(table, path, key)?;
        if (0.0..=1.0).contains(&value) {
            Some(value)
        } else {
            self.report(
                at,
                join(path, key),
                format!("must be a fraction from 0 to 1 (e.g. 0.05), found {value}"),
            );
            None
        }
    }

    /// An optional temperature in degrees C.
    fn temperature(&mut self, table: &DeTable<'_>, path: &str, key: &str) -> Option<f64> {
        let At { value, at } = self.number(table, path, key)?;
        if (0.0..=150.0).contains(&value) {
            Some(value)
        } else {
            self.report(
                at,
                join(path, key),
                format!("must be a temperature from 0 to 150 (degrees C), found {value}"),
            );
            None
        }
    }

    fn missing(&mut self, at: usize, key: String) {
        self.problems.push(Problem {
            at,
            key,
            what: "required key is missing".into(),
            missing: true,
        });
    }
}

/// Reads a whole baseline; `Err` carries a problem only where no more
/// specific one was reported (the caller reports the first of all).
fn read_baseline(r: &mut Reader, source: &str, root: &DeTable<'_>) -> Result<Baseline, Problem> {
    r.known_keys(root, "", &["model", "metrics", "limits"]);

    // [model]
    const MODEL_KEYS: [&str; 4] = ["name", "match", "pci_device_ids", "peer_tolerance"];
    let model_table = r.table(root, "", "model");
    let (model, match_names, pci_device_ids, peer_tolerance) = match &model_table {
        Some(At { value: t, at }) => {
            r.known_keys(t, "model", &MODEL_KEYS);
            let name = r.string(t, "model", "name");
            let name = match name {
                Some(n) if n.value.trim().is_empty() => {
                    r.report(n.at, "model.name".into(), "must not be empty");
                    None
                }
                Some(n) => Some(n.value),
                None => {
                    if Reader::entry(t, "name").is_none() {
                        r.missing(*at, "model.name".into());
                    }
                    None
                }
            };
            let pci = read_pci_ids(r, t);
            let matches = match r.strings(t, "model", "match") {
                Some(list) => {
                    let mut names = Vec::new();
                    for m in list.value {
                        if m.value.trim().is_empty() {
                            r.report(m.at, "model.match".into(), "entries must not be empty");
                        } else {
                            names.push(m.value);
                        }
                    }
                    if names.is_empty() && pci.is_empty() {
                        r.report(
                            list.at,
                            "model.match".into(),
                            "no name to match and no pci_device_ids: this baseline could never match a device",
                        );
                    }
                    names
                }
                None => name.iter().cloned().collect(),
            };
            let tol = r
                .fraction(t, "model", "peer_tolerance")
                .unwrap_or(DEFAULT_PEER_TOLERANCE);
            (name, matches, pci, tol)
        }
        None => {
            if Reader::entry(root, "model").is_none() {
                r.missing(0, "model.name".into());
            }
            (None, Vec::new(), Vec::new(), DEFAULT_PEER_TOLERANCE)
        }
    };

    // [metrics.NAME]
    let mut metrics = BTreeMap::new();
    if let Some(At { value: t, .. }) = r.table(root, "", "metrics") {
        for (k, v) in t.iter() {
            let name: &str = k.get_ref();
            let path = join("metrics", name);
            if !metric_name_ok(name) {
                r.report(
                    k.span().start,
                    path.clone(),
                    "a metric name is letters, digits and _ (e.g. matmul_bf16)",
                );
                continue;
            }
            let DeValue::Table(m) = v.get_ref() else {
                r.wrong::<()>(v, path, "a table");
                continue;
            };
            if let Some(mb) = read_metric(r, &path, k.span().start, m) {
                metrics.insert(name.to_string(), mb);
            }
        }
    }

    // [limits]
    let limits = match r.table(root, "", "limits") {
        Some(At { value: t, .. }) => read_limits(r, t),
        None => Limits::standard(),
    };

    let model = model.ok_or(Problem {
        at: 0,
        key: "model.name".into(),
        what: "required key is missing".into(),
        missing: true,
    })?;
    Ok(Baseline {
        source: source.to_string(),
        model,
        match_names,
        pci_device_ids,
        peer_tolerance,
        metrics,
        limits,
    })
}

/// `model.pci_device_ids`: strings "0x" + 4 hex digits.
fn read_pci_ids(r: &mut Reader, t: &DeTable<'_>) -> Vec<u16> {
    let mut ids = Vec::new();
    for s in r
        .strings(t, "model", "pci_device_ids")
        .map(|l| l.value)
        .unwrap_or_default()
    {
        let v = s.value.trim();
        let hex = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X"));
        let id = hex
            .filter(|h| h.len() == 4 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|h| u16::from_str_radix(h, 16).ok());
        match id {
            Some(id) => ids.push(id),
            None => r.report(
                s.at,
                "model.pci_device_ids".into(),
                format!(
                    "{} is not a PCI device id; expected \"0x\" and 4 hex digits, e.g. \"0x2330\"",
                    toml::Value::String(s.value.clone())
                ),
            ),
        }
    }
    ids
}

/// Every metric kiln measures and the units it reports it in (matmul in
/// TFLOP/s on GPUs and GFLOP/s on CPUs; [`convert`] moves between the two).
pub const MEASURED: &[(&str, &[&str])] = &[
    ("matmul_bf16", &["TFLOP/s", "GFLOP/s"]),
    ("matmul_fp16", &["TFLOP/s", "GFLOP/s"]),
    ("matmul_tf32", &["TFLOP/s", "GFLOP/s"]),
    ("matmul_fp8", &["TFLOP/s", "GFLOP/s"]),
    ("matmul_fp32", &["TFLOP/s", "GFLOP/s"]),
    ("matmul_fp64", &["TFLOP/s", "GFLOP/s"]),
    ("matmul_mma_bf16", &["TFLOP/s", "GFLOP/s"]),
    ("matmul_mma_fp16", &["TFLOP/s", "GFLOP/s"]),
    ("bw_read", &["GB/s"]),
    ("bw_write", &["GB/s"]),
    ("bw_copy", &["GB/s"]),
    ("bw_triad", &["GB/s"]),
    ("sha256d", &["MH/s"]),
    ("memtest", &["GB/s"]),
    ("h2d", &["GB/s"]),
    ("d2h", &["GB/s"]),
    ("p2p", &["GB/s"]),
    ("p2p_nvlink", &["GB/s"]),
    ("p2p_pcie", &["GB/s"]),
    ("pulse_bf16", &["TFLOP/s", "GFLOP/s"]),
    ("pulse_mma_bf16", &["TFLOP/s", "GFLOP/s"]),
    ("pulse_fp32", &["TFLOP/s", "GFLOP/s"]),
];

/// `value` in `from` expressed in `to`, when the two units measure the same
/// quantity (GFLOP/s and TFLOP/s); None otherwise.
pub fn convert(value: f64, from: &str, to: &str) -> Option<f64> {
    let scale = |u: &str| match u {
        "GFLOP/s" => Some(1e9),
        "TFLOP/s" => Some(1e12),
        _ => None,
    };
    if from == to {
        return Some(value);
    }
    Some(value * scale(from)? / scale(to)?)
}

/// One `[metrics.NAME]` table; `path` is `metrics.NAME`, `at` where it opens.
fn read_metric(r: &mut Reader, path: &str, at: usize, t: &DeTable<'_>) -> Option<MetricBaseline> {
    r.known_keys(t, path, &["unit", "expected", "floor", "peer_tolerance"]);
    let unit = r.string(t, path, "unit");
    let expected = r.number(t, path, "expected");
    let floor = r.number(t, path, "floor");
    let peer_tolerance = r.fraction(t, path, "peer_tolerance");
    for key in ["unit", "expected", "floor"] {
        if Reader::entry(t, key).is_none() {
            r.missing(at, format!("{path}.{key}"));
        }
    }
    let name = path.strip_prefix("metrics.").unwrap_or(path);
    let known = MEASURED.iter().find(|(m, _)| *m == name).map(|(_, u)| *u);
    if known.is_none() {
        let names: Vec<&str> = MEASURED.iter().map(|(m, _)| *m).collect();
        r.report(
            at,
            path.to_string(),
            format!(
                "kiln measures no metric called {name:?}, so its floor would never be compared; expected one of {}",
                names.join(", ")
            ),
        );
    }
    let unit = match unit {
        Some(u) if u.value.trim().is_empty() => {
            r.report(
                u.at,
                format!("{path}.unit"),
                "must not be empty; write the unit of the measured metric, e.g. \"TFLOP/s\"",
            );
            None
        }
        Some(u) if known.is_some_and(|k| !k.contains(&u.value.as_str())) => {
            let k = known.unwrap_or_default();
            r.report(
                u.at,
                format!("{path}.unit"),
                format!(
                    "{}: kiln measures {name} in {}, so this floor could never be compared",
                    toml::Value::String(u.value.clone()),
                    k.join(" or ")
                ),
            );
            None
        }
        u => u.map(|u| u.value),
    };
    let expected = match expected {
        Some(e) if !(e.value.is_finite() && e.value > 0.0) => {
            r.report(
                e.at,
                format!("{path}.expected"),
                format!("must be a number above 0, found {}", e.value),
            );
            None
        }
        e => e.map(|e| e.value),
    };
    let floor = match floor {
        Some(f) if !(f.value.is_finite() && f.value >= 0.0) => {
            r.report(
                f.at,
                format!("{path}.floor"),
                format!("must be a number of 0 or more, found {}", f.value),
            );
            None
        }
        Some(f) => {
            if let Some(e) = expected {
                if f.value > e {
                    r.report(
                        f.at,
                        format!("{path}.floor"),
                        format!("floor {} is above expected {e}", f.value),
                    );
                }
            }
            Some(f.value)
        }
        None => None,
    };
    Some(MetricBaseline {
        unit: unit?,
        expected: expected?,
        floor: floor?,
        peer_tolerance,
    })
}

/// The `[limits]` table.
fn read_limits(r: &mut Reader, t: &DeTable<'_>) -> Limits {
    const P: &str = "limits";
    r.known_keys(
        t,
        P,
        &[
            "max_gpu_temp_c",
            "max_mem_temp_c",
            "tolerated_throttle",
            "max_ecc_uncorrectable",
            "max_xid",
            "max_remapped_rows_pending",
            "max_remapped_rows_failed",
            "pcie_gen",
            "pcie_width",
            "nvlink_links",
            "max_nvlink_crc_per_s",
            "min_power_fraction",
            "multinode_nvlink",
        ],
    );
    let tolerated_throttle = match r.strings(t, P, "tolerated_throttle") {
        Some(list) => {
            let mut names = Vec::new();
            for s in list.value {
                if THROTTLE_REASONS.contains(&s.value.as_str()) {
                    names.push(s.value);
                } else {
                    r.report(
                        s.at,
                        "limits.tolerated_throttle".into(),
                        format!(
                            "unknown throttle reason {}; expected any of {}",
                            toml::Value::String(s.value.clone()),
                            THROTTLE_REASONS.join(", ")
                        ),
                    );
                }
            }
            names
        }
        None => Limits::standard().tolerated_throttle,
    };
    let pcie_gen = r.integer(t, P, "pcie_gen").and_then(|g| {
        if (1..=7).contains(&g.value) {
            u32::try_from(g.value).ok()
        } else {
            r.report(
                g.at,
                "limits.pcie_gen".into(),
                format!("must be a PCIe generation from 1 to 7, found {}", g.value),
            );
            None
        }
    });
    let pcie_width = r.integer(t, P, "pcie_width").and_then(|w| {
        if [1, 2, 4, 8, 16, 32].contains(&w.value) {
            u32::try_from(w.value).ok()
        } else {
            r.report(
                w.at,
                "limits.pcie_width".into(),
                format!(
                    "must be a link width of 1, 2, 4, 8, 16 or 32 lanes, found {}",
                    w.value
                ),
            );
            None
        }
    });
    let nvlink_links = r.integer(t, P, "nvlink_links").and_then(|n| {
        if (1..=18).contains(&n.value) {
            u32::try_from(n.value).ok()
        } else {
            r.report(
                n.at,
                "limits.nvlink_links".into(),
                format!(
                    "must be a number of NVLinks from 1 to 18, found {}",
                    n.value
                ),
            );
            None
        }
    });
    let max_nvlink_crc_per_s = r.number(t, P, "max_nvlink_crc_per_s").and_then(|x| {
        if x.value.is_finite() && x.value >= 0.0 {
            Some(x.value)
        } else {
            r.report(
                x.at,
                "limits.max_nvlink_crc_per_s".into(),
                format!("must be errors per second, 0 or more, found {}", x.value),
            );
            None
        }
    });
    let min_power_fraction = r.number(t, P, "min_power_fraction").and_then(|x| {
        if x.value > 0.0 && x.value <= 1.0 {
            Some(x.value)
        } else {
            r.report(
                x.at,
                "limits.min_power_fraction".into(),
                format!(
                    "must be a fraction of the enforced power limit, above 0 and at most 1, found {}",
                    x.value
                ),
            );
            None
        }
    });
    Limits {
        nvlink_links,
        max_nvlink_crc_per_s,
        min_power_fraction,
        multinode_nvlink: r.boolean(t, P, "multinode_nvlink"),
        max_gpu_temp_c: r.temperature(t, P, "max_gpu_temp_c"),
        max_mem_temp_c: r.temperature(t, P, "max_mem_temp_c"),
        tolerated_throttle,
        max_ecc_uncorrectable: r.count(t, P, "max_ecc_uncorrectable"),
        max_xid: r.count(t, P, "max_xid"),
        max_remapped_rows_pending: r.count(t, P, "max_remapped_rows_pending"),
        max_remapped_rows_failed: r.count(t, P, "max_remapped_rows_failed"),
        pcie_gen,
        pcie_width,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::baseline::find;

    /// The error `parse` gives for `text` read as `f.toml`.
    fn err(text: &str) -> String {
        match parse("f.toml", text) {
            Ok(b) => panic!("expected an error, parsed {b:?}"),
            Err(e) => e.to_string(),
        }
    }

    const HEAD: &str = "[model]\nname = \"X\"\n";

    /// A minimal file with one metric whose table body is `body` (metric
    /// keys start on line 4).
    fn metric(body: &str) -> String {
        format!("{HEAD}[metrics.matmul_bf16]\n{body}")
    }

    #[test]
    fn a_minimal_file_gets_the_defaults() {
        let b = parse("f.toml", HEAD).expect("parses");
        assert_eq!(b.source, "f.toml");
        assert_eq!(b.model, "X");
        assert_eq!(b.match_names, vec!["X".to_string()]);
        assert!(b.pci_device_ids.is_empty());
        assert_eq!(b.peer_tolerance, DEFAULT_PEER_TOLERANCE);
        assert!(b.metrics.is_empty());
        assert_eq!(b.limits, Limits::standard());
        assert_eq!(b.limits.tolerated_throttle.len(), 5);
        assert_eq!(b.limits.max_xid, 0);
    }

    #[test]
    fn every_field_is_read() {
        let text = r#"
[model]
name = "NVIDIA H100 80GB HBM3"
match = ["H100 80GB HBM3", "H100 SXM"]
pci_device_ids = ["0x2330", "0X20B2"]
peer_tolerance = 0.07

[metrics.matmul_bf16]
unit = "TFLOP/s"
expected = 790
floor = 700.5
peer_tolerance = 0.1

[metrics.bw_copy]
unit = "GB/s"
expected = 3_000.0
floor = 2.7e3

[limits]
max_gpu_temp_c = 87
max_mem_temp_c = 95.0
tolerated_throttle = ["gpu_idle", "hw_slowdown"]
max_ecc_uncorrectable = 1
max_xid = 2
max_remapped_rows_pending = 3
max_remapped_rows_failed = 4
pcie_gen = 5
pcie_width = 16
"#;
        let b = parse("x.toml", text).expect("parses");
        assert_eq!(b.match_names, vec!["H100 80GB HBM3", "H100 SXM"]);
        assert_eq!(b.pci_device_ids, vec![0x2330, 0x20b2]);
        assert_eq!(b.peer_tolerance, 0.07);
        assert_eq!(
            b.metrics["matmul_bf16"],
            MetricBaseline {
                unit: "TFLOP/s".into(),
                expected: 790.0,
                floor: 700.5,
                peer_tolerance: Some(0.1),
            }
        );
        assert_eq!(b.metrics["bw_copy"].expected, 3000.0);
        assert_eq!(b.metrics["bw_copy"].floor, 2700.0);
        assert_eq!(b.peer_tolerance_for("matmul_bf16"), 0.1);
        assert_eq!(b.peer_tolerance_for("bw_copy"), 0.07);
        assert_eq!(b.peer_tolerance_for("no_such_metric"), 0.07);
        assert_eq!(
            b.limits,
            Limits {
                max_gpu_temp_c: Some(87.0),
                max_mem_temp_c: Some(95.0),
                tolerated_throttle: vec!["gpu_idle".into(), "hw_slowdown".into()],
                max_ecc_uncorrectable: 1,
                max_xid: 2,
                max_remapped_rows_pending: 3,
                max_remapped_rows_failed: 4,
                pcie_gen: Some(5),
                pcie_width: Some(16),
                nvlink_links: None,
                max_nvlink_crc_per_s: None,
                min_power_fraction: None,
                multinode_nvlink: false,
            }
        );
    }

    #[test]
    fn an_empty_tolerated_list_tolerates_nothing() {
        let b = parse(
            "f.toml",
            &format!("{HEAD}[limits]\ntolerated_throttle = []\n"),
        )
        .expect("parses");
        assert!(b.limits.tolerated_throttle.is_empty());
        let b = parse("f.toml", &format!("{HEAD}[limits]\nmax_xid = 1\n")).expect("parses");
        assert_eq!(
            b.limits.tolerated_throttle,
            Limits::standard().tolerated_throttle
        );
    }

    #[test]
    fn a_wrong_type_names_line_key_and_types() {
        assert_eq!(
            err(&metric(
                "unit = \"TFLOP/s\"\nexpected = 790.0\nfloor = \"700\"\n"
            )),
            "f.toml: line 6: metrics.matmul_bf16.floor: expected a number, found a string"
        );
        assert_eq!(
            err("[model]\nname = 5\n"),
            "f.toml: line 2: model.name: expected a string, found an integer"
        );
        assert_eq!(
            err("model = \"X\"\n"),
            "f.toml: line 1: model: expected a table, found a string"
        );
        assert_eq!(
            err(&format!("{HEAD}[metrics]\nmatmul_bf16 = 5\n")),
            "f.toml: line 4: metrics.matmul_bf16: expected a table, found an integer"
        );
        assert_eq!(
            err(&format!("{HEAD}[limits]\nmax_xid = 1.5\n")),
            "f.toml: line 4: limits.max_xid: expected an integer, found a float"
        );
        assert_eq!(
            err("[model]\nname = \"X\"\nmatch = \"X\"\n"),
            "f.toml: line 3: model.match: expected an array of strings, found a string"
        );
        assert_eq!(
            err("[model]\nname = \"X\"\nmatch = [\n  \"X\",\n  true,\n]\n"),
            "f.toml: line 5: model.match: expected an array of strings, found a boolean in it"
        );
    }

    #[test]
    fn an_unknown_key_lists_the_known_ones() {
        assert_eq!(
            err("# c\n[model]\nnmae = \"X\"\n"),
            "f.toml: line 3: model.nmae: unknown key; expected one of name, match, pci_device_ids, peer_tolerance"
        );
        assert_eq!(
            err(&format!("{HEAD}modle = 1\n")),
            "f.toml: line 3: model.modle: unknown key; expected one of name, match, pci_device_ids, peer_tolerance"
        );
        assert_eq!(
            err(&format!("metric = 1\n{HEAD}")),
            "f.toml: line 1: metric: unknown key; expected one of model, metrics, limits"
        );
        assert_eq!(
            err(&metric("unit = \"TFLOP/s\"\nexpected = 1.0\nfloor = 1.0\nflor = 2\n")),
            "f.toml: line 7: metrics.matmul_bf16.flor: unknown key; expected one of unit, expected, floor, peer_tolerance"
        );
        assert_eq!(
            err(&format!("{HEAD}[limits]\nmax_gpu_temp = 80\n")),
            "f.toml: line 4: limits.max_gpu_temp: unknown key; expected one of max_gpu_temp_c, max_mem_temp_c, tolerated_throttle, max_ecc_uncorrectable, max_xid, max_remapped_rows_pending, max_remapped_rows_failed, pcie_gen, pcie_width, nvlink_links, max_nvlink_crc_per_s, min_power_fraction, multinode_nvlink"
        );
        // Dotted keys and inline tables get the same full path.
        assert_eq!(
            err(&format!(
                "{HEAD}[metrics]\nbw_copy = {{ unit = \"GB/s\", expected = 1.0, floor = 1.0, x = 1 }}\n"
            )),
            "f.toml: line 4: metrics.bw_copy.x: unknown key; expected one of unit, expected, floor, peer_tolerance"
        );
    }

    #[test]
    fn a_tolerance_must_be_a_fraction() {
        let file = |v: &str| {
            format!(
                "[model]\nname = \"X\"\nmatch = [\"X\"]\npci_device_ids = [\"0x2330\"]\npeer_tolerance = {v}\n"
            )
        };
        assert_eq!(
            err(&file("-0.1")),
            "f.toml: line 5: model.peer_tolerance: must be a fraction from 0 to 1 (e.g. 0.05), found -0.1"
        );
        assert_eq!(
            err(&file("nan")),
            "f.toml: line 5: model.peer_tolerance: must be a fraction from 0 to 1 (e.g. 0.05), found NaN"
        );
        assert_eq!(
            err(&file("5")),
            "f.toml: line 5: model.peer_tolerance: must be a fraction from 0 to 1 (e.g. 0.05), found 5"
        );
        assert!(parse("f.toml", &file("0")).is_ok());
        assert!(parse("f.toml", &file("1")).is_ok());
        assert_eq!(
            err(&metric(
                "unit = \"TFLOP/s\"\nexpected = 1.0\nfloor = 1.0\npeer_tolerance = 1.5\n"
            )),
            "f.toml: line 7: metrics.matmul_bf16.peer_tolerance: must be a fraction from 0 to 1 (e.g. 0.05), found 1.5"
        );
    }

    #[test]
    fn expected_and_floor_are_checked() {
        assert_eq!(
            err(&metric(
                "unit = \"TFLOP/s\"\nexpected = 790.0\nfloor = 900.0\n"
            )),
            "f.toml: line 6: metrics.matmul_bf16.floor: floor 900 is above expected 790"
        );
        assert_eq!(
            err(&metric("unit = \"TFLOP/s\"\nexpected = -1\nfloor = 0\n")),
            "f.toml: line 5: metrics.matmul_bf16.expected: must be a number above 0, found -1"
        );
        assert_eq!(
            err(&metric("unit = \"TFLOP/s\"\nexpected = nan\nfloor = 0\n")),
            "f.toml: line 5: metrics.matmul_bf16.expected: must be a number above 0, found NaN"
        );
        assert_eq!(
            err(&metric("unit = \"TFLOP/s\"\nexpected = 0.0\nfloor = 0\n")),
            "f.toml: line 5: metrics.matmul_bf16.expected: must be a number above 0, found 0"
        );
        assert_eq!(
            err(&metric(
                "unit = \"TFLOP/s\"\nexpected = 1.0\nfloor = -0.5\n"
            )),
            "f.toml: line 6: metrics.matmul_bf16.floor: must be a number of 0 or more, found -0.5"
        );
        assert_eq!(
            err(&metric("unit = \"TFLOP/s\"\nexpected = 1.0\nfloor = nan\n")),
            "f.toml: line 6: metrics.matmul_bf16.floor: must be a number of 0 or more, found NaN"
        );
        assert_eq!(
            err(&metric("unit = \"TFLOP/s\"\nexpected = inf\nfloor = 1\n")),
            "f.toml: line 5: metrics.matmul_bf16.expected: must be a number above 0, found inf"
        );
        // A floor equal to expected is allowed (the floor is the expectation).
        assert!(parse(
            "f.toml",
            &metric("unit = \"TFLOP/s\"\nexpected = 1\nfloor = 1\n")
        )
        .is_ok());
    }

    #[test]
    fn units_and_names_are_checked_against_what_kiln_measures() {
        assert_eq!(
            err(&metric("unit = \"MB/s\"\nexpected = 1\nfloor = 1\n")),
            "f.toml: line 4: metrics.matmul_bf16.unit: \"MB/s\": kiln measures matmul_bf16 in TFLOP/s or GFLOP/s, so this floor could never be compared"
        );
        let e = err(&format!(
            "{HEAD}[metrics.bw_cpy]\nunit = \"GB/s\"\nexpected = 1\nfloor = 1\n"
        ));
        assert!(
            e.starts_with(
                "f.toml: line 3: metrics.bw_cpy: kiln measures no metric called \"bw_cpy\""
            ),
            "{e}"
        );
        assert!(parse(
            "f.toml",
            &metric("unit = \"GFLOP/s\"\nexpected = 1\nfloor = 1\n")
        )
        .is_ok());
        assert_eq!(convert(1500.0, "GFLOP/s", "TFLOP/s"), Some(1.5));
        assert_eq!(convert(1.0, "GB/s", "TFLOP/s"), None);
    }

    #[test]
    fn a_metric_needs_unit_expected_and_floor() {
        assert_eq!(
            err(&metric("expected = 1.0\nfloor = 1.0\n")),
            "f.toml: line 3: metrics.matmul_bf16.unit: required key is missing"
        );
        assert_eq!(
            err(&metric("unit = \"TFLOP/s\"\nfloor = 1.0\n")),
            "f.toml: line 3: metrics.matmul_bf16.expected: required key is missing"
        );
        assert_eq!(
            err(&metric("unit = \" \"\nexpected = 1.0\nfloor = 1.0\n")),
            "f.toml: line 4: metrics.matmul_bf16.unit: must not be empty; write the unit of the measured metric, e.g. \"TFLOP/s\""
        );
        assert_eq!(
            err(&format!("{HEAD}[metrics.\"bw.copy\"]\nunit = \"GB/s\"\nexpected = 1\nfloor = 1\n")),
            "f.toml: line 3: metrics.\"bw.copy\": a metric name is letters, digits and _ (e.g. matmul_bf16)"
        );
    }

    #[test]
    fn the_model_needs_a_name() {
        assert_eq!(
            err(""),
            "f.toml: line 1: model.name: required key is missing"
        );
        assert_eq!(
            err("# nothing\n\n[limits]\nmax_xid = 0\n"),
            "f.toml: line 1: model.name: required key is missing"
        );
        assert_eq!(
            err("# a\n\n[model]\nmatch = [\"X\"]\n"),
            "f.toml: line 3: model.name: required key is missing"
        );
        assert_eq!(
            err("[model]\nname = \"\"\n"),
            "f.toml: line 2: model.name: must not be empty"
        );
        assert_eq!(
            err("[model]\nname = \"X\"\nmatch = [\"\"]\npci_device_ids = [\"0x2330\"]\n"),
            "f.toml: line 3: model.match: entries must not be empty"
        );
        assert_eq!(
            err("[model]\nname = \"X\"\nmatch = []\n"),
            "f.toml: line 3: model.match: no name to match and no pci_device_ids: this baseline could never match a device"
        );
        // An empty match list is fine when the PCI ids identify the model.
        let b = parse(
            "f.toml",
            "[model]\nname = \"X\"\nmatch = []\npci_device_ids = [\"0x2330\"]\n",
        )
        .expect("parses");
        assert!(b.match_names.is_empty());
        assert!(b.matches("anything", Some(0x2330)));
        assert!(!b.matches("X", None));
    }

    #[test]
    fn pci_ids_are_0x_and_four_hex_digits() {
        for bad in ["2330", "0x233", "0x23300", "0xg330", "0x"] {
            assert_eq!(
                err(&format!("[model]\nname = \"X\"\npci_device_ids = [\n  \"0x2330\",\n  \"{bad}\",\n]\n")),
                format!("f.toml: line 5: model.pci_device_ids: \"{bad}\" is not a PCI device id; expected \"0x\" and 4 hex digits, e.g. \"0x2330\"")
            );
        }
        assert_eq!(
            err("[model]\nname = \"X\"\npci_device_ids = [0x2330]\n"),
            "f.toml: line 3: model.pci_device_ids: expected an array of strings, found an integer in it"
        );
    }

    #[test]
    fn limits_are_checked() {
        let lim = |body: &str| err(&format!("{HEAD}[limits]\n{body}\n"));
        assert_eq!(
            lim("tolerated_throttle = [\"gpu_idle\", \"thermal\"]"),
            "f.toml: line 4: limits.tolerated_throttle: unknown throttle reason \"thermal\"; expected any of gpu_idle, applications_clocks_setting, sw_power_cap, hw_slowdown, sync_boost, sw_thermal_slowdown, hw_thermal_slowdown, hw_power_brake_slowdown, display_clock_setting, board_limit, reliability"
        );
        assert_eq!(
            lim("max_xid = -1"),
            "f.toml: line 4: limits.max_xid: must be 0 or more, found -1"
        );
        assert_eq!(
            lim("max_gpu_temp_c = 300"),
            "f.toml: line 4: limits.max_gpu_temp_c: must be a temperature from 0 to 150 (degrees C), found 300"
        );
        assert_eq!(
            lim("max_mem_temp_c = nan"),
            "f.toml: line 4: limits.max_mem_temp_c: must be a temperature from 0 to 150 (degrees C), found NaN"
        );
        assert_eq!(
            lim("pcie_gen = 9"),
            "f.toml: line 4: limits.pcie_gen: must be a PCIe generation from 1 to 7, found 9"
        );
        assert_eq!(
            lim("pcie_width = 12"),
            "f.toml: line 4: limits.pcie_width: must be a link width of 1, 2, 4, 8, 16 or 32 lanes, found 12"
        );
    }

    #[test]
    fn a_syntax_error_names_its_line() {
        assert_eq!(
            err("[model]\nname = \"X\"\nname = \"Y\"\n"),
            "f.toml: line 3: TOML syntax error: duplicate key"
        );
        assert_eq!(
            err("# c\n[model\nname = \"X\"\n"),
            "f.toml: line 2: TOML syntax error: unclosed table, expected `]`"
        );
    }

    #[test]
    fn the_first_problem_in_the_file_is_reported() {
        let text = format!(
            "{HEAD}[limits]\nmax_xid = -1\n\n[metrics.a]\nunit = \"u\"\nexpected = 1\nfloor = 2\n"
        );
        assert_eq!(
            err(&text),
            "f.toml: line 4: limits.max_xid: must be 0 or more, found -1"
        );
    }

    /// The unit each metric name must carry in a shipped file.
    fn unit_of(metric: &str) -> Option<&'static str> {
        match metric {
            "matmul_bf16" | "matmul_fp16" | "matmul_tf32" | "matmul_fp32" | "matmul_fp64"
            | "matmul_fp8" | "matmul_mma_bf16" | "matmul_mma_fp16" => Some("TFLOP/s"),
            "bw_read" | "bw_write" | "bw_copy" | "bw_triad" | "memtest" | "h2d" | "d2h"
            | "p2p_nvlink" => Some("GB/s"),
            "sha256d" => Some("MH/s"),
            _ => None,
        }
    }

    /// A recorded baseline holds every figure a run reported: each must
    /// be a name a file may hold, or the recorded file would not load.
    #[test]
    fn every_figure_kiln_reports_may_have_a_floor() {
        use crate::device::{MatmulVariant, PeerLink};
        let mut names: Vec<String> = MatmulVariant::GPU
            .iter()
            .map(|v| format!("matmul_{}", v.name()))
            .chain(
                crate::workload::pulse::VARIANTS
                    .iter()
                    .map(|v| format!("pulse_{}", v.name())),
            )
            .chain([PeerLink::Nvlink, PeerLink::Pcie].map(|l| format!("p2p_{}", l.name())))
            .collect();
        names.extend(
            [
                "bw_read", "bw_write", "bw_copy", "bw_triad", "sha256d", "memtest", "h2d", "d2h",
                "p2p",
            ]
            .map(String::from),
        );
        for n in names {
            assert!(MEASURED.iter().any(|(m, _)| *m == n), "{n}");
        }
    }

    #[test]
    fn every_shipped_file_parses() {
        for (name, text) in SHIPPED {
            let b = parse(&format!("builtin:{name}"), text)
                .unwrap_or_else(|e| panic!("shipped baseline does not parse: {e}"));
            assert!(!b.metrics.is_empty(), "{name}");
            for (m, mb) in &b.metrics {
                assert_eq!(unit_of(m), Some(mb.unit.as_str()), "{name}: {m}");
                assert!(mb.floor < mb.expected, "{name}: {m}");
                // The rule stated at the top of every shipped file.
                assert!(
                    (mb.floor - 0.9 * mb.expected).abs() <= 1e-9 * mb.expected,
                    "{name}: {m}: floor {} is not 90 % of {}",
                    mb.floor,
                    mb.expected
                );
            }
            assert_eq!(b.limits.max_ecc_uncorrectable, 0, "{name}");
            assert_eq!(b.limits.max_xid, 0, "{name}");
            assert!(
                b.limits.pcie_gen.is_some() && b.limits.pcie_width == Some(16),
                "{name}"
            );
            assert!(b.limits.max_gpu_temp_c.is_some(), "{name}");
        }
        let all = builtin();
        assert_eq!(all.len(), SHIPPED.len());
        assert_eq!(all.len(), 7);
        assert!(all.iter().all(|b| b.source.starts_with("builtin:")));
    }

    #[test]
    fn gpu_files_have_the_gpu_metrics() {
        for b in builtin()
            .iter()
            .filter(|b| !b.model.starts_with("Simulated") && !b.model.starts_with("vgpu "))
        {
            for m in [
                "matmul_bf16",
                "matmul_fp16",
                "matmul_tf32",
                "matmul_fp32",
                "matmul_fp64",
                "bw_read",
                "bw_copy",
                "bw_triad",
                "sha256d",
                "h2d",
                "d2h",
            ] {
                assert!(b.metrics.contains_key(m), "{}: {m}", b.source);
            }
            assert!(!b.pci_device_ids.is_empty(), "{}", b.source);
            let fp8 = !b.model.contains("A100");
            assert_eq!(b.metrics.contains_key("matmul_fp8"), fp8, "{}", b.source);
            let nvlink =
                b.model.contains("H100") || b.model.contains("H200") || b.model.contains("A100");
            assert_eq!(b.metrics.contains_key("p2p_nvlink"), nvlink, "{}", b.source);
            // Every peer of these models is on NVLink: no PCIe floor, so a
            // PCIe peer is p2p_over_pcie; no generic p2p floor.
            assert!(!b.metrics.contains_key("p2p_pcie"), "{}", b.source);
            assert!(!b.metrics.contains_key("p2p"), "{}", b.source);
        }
    }

    #[test]
    fn the_sim_file_follows_the_sim_model() {
        use crate::device::sim::NOMINAL;
        let all = builtin();
        let sim = find(&all, "Simulated H100 80GB HBM3", None).expect("sim baseline");
        assert_eq!(sim.source, "builtin:sim-h100.toml");
        let mut nominal: Vec<(String, f64)> = crate::device::MatmulVariant::GPU
            .iter()
            .map(|&v| (format!("matmul_{}", v.name()), NOMINAL.matmul_tflops(v)))
            .collect();
        nominal.extend(
            [
                ("bw_read", NOMINAL.bw_read),
                ("bw_write", NOMINAL.bw_write),
                ("bw_copy", NOMINAL.bw_copy),
                ("bw_triad", NOMINAL.bw_triad),
                ("sha256d", NOMINAL.sha256d),
                ("memtest", NOMINAL.memtest),
                ("h2d", NOMINAL.h2d),
                ("d2h", NOMINAL.d2h),
                ("p2p_nvlink", NOMINAL.p2p),
            ]
            .map(|(m, v)| (m.to_string(), v)),
        );
        assert_eq!(sim.metrics.len(), nominal.len());
        for (m, v) in nominal {
            let mb = &sim.metrics[&m];
            assert_eq!(mb.expected, v, "{m}");
            // Healthy: device factor >= 0.99, median noise well within 1.5 %.
            assert!(mb.floor < v * 0.99 * 0.985, "{m}");
            // slow=0.85: at most 0.85 x 1.01 x 1.015.
            assert!(mb.floor > v * 0.85 * 1.01 * 1.015, "{m}");
        }
        assert_eq!(sim.limits.pcie_gen, Some(5));
        assert_eq!(sim.limits.max_gpu_temp_c, Some(87.0));
        assert_eq!(sim.limits.max_mem_temp_c, Some(95.0));
    }
}

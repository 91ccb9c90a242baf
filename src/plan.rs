//! The validated plan of a run: what the user asked for, checked before any
//! device is touched.
//!
//! Every problem with the arguments is found here and reported in one line
//! that names the flag and what was expected (exit code 2).
//!
//! Layer: above `cli` (the raw arguments it validates), `workload` and
//! `device`; below `run`, which carries it out. It must not import `run` or any
//! layer above (tests/layers.rs checks it).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::RunArgs;
use crate::device::{BackendChoice, SimOptions};
use crate::error::{KilnError, Result};
use crate::workload::{Profile, WorkloadKind};

/// The most simulated GPUs a run accepts.
pub const MAX_SIM_GPUS: usize = 64;

/// Default burn-in duration.
pub const DEFAULT_BURNIN: Duration = Duration::from_secs(30 * 60);

/// A validated run.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// How much work.
    pub profile: Profile,
    /// How long a burn-in runs (burn-in only).
    pub duration: Option<Duration>,
    /// Which backend.
    pub backend: BackendChoice,
    /// Options of the sim backend.
    pub sim: SimOptions,
    /// Selected device indices, ascending, or all when `None`.
    pub devices: Option<Vec<usize>>,
    /// Workload families, in run order.
    pub workloads: Vec<WorkloadKind>,
    /// Output folder (created when the run starts).
    pub out: PathBuf,
    /// Seed of inputs and noise.
    pub seed: u64,
    /// Time between two telemetry samples of a device.
    pub sample_interval: Duration,
}

impl Plan {
    /// Validates `args`. `host` and `now` name the default output folder.
    /// `host` is the node's name ([`node_name`]): it also names the
    /// simulated GPUs' node.
    pub fn from_args(args: &RunArgs, host: &str, now: std::time::SystemTime) -> Result<Plan> {
        let mut sim = sim_with_faults(&args.backend, args.seed, &args.inject)?;
        sim.node = host.to_string();
        let duration = match (&args.duration, args.profile) {
            (Some(d), Profile::Burnin) => Some(parse_duration(d)?),
            (None, Profile::Burnin) => Some(DEFAULT_BURNIN),
            (Some(_), p) => {
                return Err(KilnError::Usage(format!(
                    "--duration applies to --profile burnin only (the {p} profile has a fixed size)"
                )))
            }
            (None, _) => None,
        };
        let devices = args.devices.as_deref().map(parse_devices).transpose()?;
        if let Some(selected) = &devices {
            for (text, inj) in args.inject.iter().zip(&sim.faults) {
                if !selected.contains(&inj.device) {
                    return Err(KilnError::Usage(format!(
                        "--inject {text:?}: device {} is not among --devices {}, so the fault would never run",
                        inj.device,
                        args.devices.as_deref().unwrap_or_default()
                    )));
                }
            }
        }
        if !(args.sample_rate >= 0.1 && args.sample_rate <= 10.0) {
            return Err(KilnError::Usage(format!(
                "--sample-rate {}: expected samples per second from 0.1 to 10",
                args.sample_rate
            )));
        }
        if args.profile == Profile::Burnin {
            // A simulated workload computes in microseconds; in a burn-in it
            // takes a second of wall time, so that faults and telemetry that
            // depend on time behave as on hardware.
            sim.pace = Duration::from_secs(1);
        }
        let workloads = match args.workloads.as_deref() {
            Some(w) => parse_workloads(w)?,
            None => crate::workload::default_workloads(args.profile),
        };
        let out = match &args.out {
            Some(p) => p.clone(),
            None => default_out(host, now),
        };
        if let Ok(meta) = std::fs::metadata(&out) {
            if !meta.is_dir() {
                return Err(KilnError::Usage(format!(
                    "--out {}: a file is there ({} bytes), not a folder; --out names the folder kiln writes the run to (new, or empty)",
                    out.display(),
                    meta.len()
                )));
            }
        }
        Ok(Plan {
            profile: args.profile,
            duration,
            backend: args.backend.backend,
            sim,
            devices,
            workloads,
            out,
            seed: args.seed,
            sample_interval: Duration::from_secs_f64(1.0 / args.sample_rate),
        })
    }
}

/// The most characters a node name may have (a DNS name's limit).
pub const MAX_NODE_NAME: usize = 253;

/// The node's name: `--node-name` when given, checked (it ends up in file
/// names, PDF and CSV cells and Prometheus labels), else `host`.
pub fn node_name(given: Option<&str>, host: &str) -> Result<String> {
    let Some(name) = given else {
        return Ok(host.to_string());
    };
    let bad = |why: &str| {
        Err(KilnError::Usage(format!(
            "--node-name {name:?}: {why}; expected a printable name such as a host name or rack-node tag (e.g. rack12-node03)"
        )))
    };
    if name.trim().is_empty() {
        return bad("the name is empty");
    }
    if name.trim() != name {
        return bad("the name starts or ends with a space");
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return bad(&format!("it holds the control character {c:?}"));
    }
    if name.contains(['/', '\\']) {
        return bad("a node name may not hold a slash or backslash (it is used in file names)");
    }
    if name == "." || name == ".." {
        return bad("\".\" and \"..\" name folders, not nodes");
    }
    if name.chars().count() > MAX_NODE_NAME {
        return bad(&format!(
            "{} characters, at most {MAX_NODE_NAME}",
            name.chars().count()
        ));
    }
    Ok(name.to_string())
}

/// Checks `--sim-gpus`.
pub fn sim_options(gpus: usize, seed: u64) -> Result<SimOptions> {
    if gpus == 0 || gpus > MAX_SIM_GPUS {
        return Err(KilnError::Usage(format!(
            "--sim-gpus {gpus}: expected a number of simulated GPUs from 1 to {MAX_SIM_GPUS}"
        )));
    }
    Ok(SimOptions {
        gpus,
        seed,
        faults: Vec::new(),
        pace: Duration::ZERO,
        node: String::new(),
    })
}

/// The simulated node of `backend`, with the `--inject` faults checked
/// against it (only into simulated GPUs, only into GPUs it has).
pub fn sim_with_faults(
    backend: &crate::cli::BackendArgs,
    seed: u64,
    inject: &[String],
) -> Result<SimOptions> {
    let mut sim = sim_options(backend.sim_gpus, seed)?;
    for text in inject {
        let inj = crate::device::sim::parse_injection(text).map_err(KilnError::Usage)?;
        if backend.backend != BackendChoice::Sim {
            return Err(KilnError::Usage(format!(
                "--inject {text:?}: faults can only be injected into simulated GPUs (--backend sim)"
            )));
        }
        if inj.device >= sim.gpus {
            return Err(KilnError::Usage(format!(
                "--inject {text:?}: there is no simulated GPU {}; --sim-gpus is {}",
                inj.device, sim.gpus
            )));
        }
        sim.faults.push(inj);
    }
    Ok(sim)
}

/// The longest burn-in kiln accepts.
pub const MAX_BURNIN: Duration = Duration::from_secs(30 * 24 * 3600);

/// Parses a duration such as `30m`, `8h`, `90s` or `1h30m`: more than zero,
/// at most [`MAX_BURNIN`] (30 days).
pub fn parse_duration(text: &str) -> Result<Duration> {
    if text.trim().starts_with('-') {
        return Err(KilnError::Usage(format!(
            "--duration {text:?}: a duration cannot be negative; expected e.g. 90s, 30m, 8h or 1h30m"
        )));
    }
    let d = humantime::parse_duration(text.trim()).map_err(|e| {
        KilnError::Usage(format!(
            "--duration {text:?}: {e}; expected e.g. 90s, 30m, 8h or 1h30m"
        ))
    })?;
    if d.is_zero() {
        return Err(KilnError::Usage(format!(
            "--duration {text:?}: a burn-in must last longer than zero"
        )));
    }
    if d > MAX_BURNIN {
        return Err(KilnError::Usage(format!(
            "--duration {text:?}: longer than the most kiln accepts, 30 days (720h)"
        )));
    }
    Ok(d)
}

/// Parses `--devices 0,2,5` into sorted, distinct indices.
pub fn parse_devices(text: &str) -> Result<Vec<usize>> {
    let mut out = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        let i: usize = part.parse().map_err(|_| {
            KilnError::Usage(format!(
                "--devices {text:?}: {part:?} is not a device index; expected comma-separated indices as printed by `kiln list`, e.g. 0,2"
            ))
        })?;
        if out.contains(&i) {
            return Err(KilnError::Usage(format!(
                "--devices {text:?}: device {i} is listed twice"
            )));
        }
        out.push(i);
    }
    out.sort_unstable();
    Ok(out)
}

/// Parses `--workloads matmul,hash`.
pub fn parse_workloads(text: &str) -> Result<Vec<WorkloadKind>> {
    let mut out = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        let k = WorkloadKind::ALL
            .into_iter()
            .find(|k| k.name() == part)
            .ok_or_else(|| {
                KilnError::Usage(format!(
                    "--workloads {text:?}: unknown workload {part:?}; expected any of matmul, bandwidth, hash, memtest, transfer, pulse"
                ))
            })?;
        if !out.contains(&k) {
            out.push(k);
        }
    }
    out.sort();
    Ok(out)
}

/// `reports/<host>-<UTC timestamp>`.
pub fn default_out(host: &str, now: std::time::SystemTime) -> PathBuf {
    let stamp = humantime::format_rfc3339_seconds(now)
        .to_string()
        .replace([':', '-'], "");
    let host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Path::new("reports").join(format!("{host}-{stamp}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").ok(), Some(Duration::from_secs(90)));
        assert_eq!(
            parse_duration("1h30m").ok(),
            Some(Duration::from_secs(5400))
        );
        let e = parse_duration("ten minutes").unwrap_err().to_string();
        assert!(e.contains("--duration") && e.contains("30m"), "{e}");
        assert!(parse_duration("0s").is_err());
        let e = parse_duration("-5m").unwrap_err().to_string();
        assert!(
            e.contains("--duration \"-5m\": a duration cannot be negative"),
            "{e}"
        );
        assert!(parse_duration("30days").is_ok());
        let e = parse_duration("31days").unwrap_err().to_string();
        assert!(e.contains("30 days"), "{e}");
        let e = parse_duration("99999h").unwrap_err().to_string();
        assert!(e.contains("longer than the most kiln accepts"), "{e}");
    }

    #[test]
    fn devices_are_sorted_and_checked() {
        assert_eq!(parse_devices("2, 0,5").ok(), Some(vec![0, 2, 5]));
        let e = parse_devices("0,x").unwrap_err().to_string();
        assert!(e.contains("\"x\" is not a device index"), "{e}");
        assert!(parse_devices("1,1")
            .unwrap_err()
            .to_string()
            .contains("twice"));
        assert!(parse_devices("-1").is_err());
    }

    #[test]
    fn workloads_are_named() {
        assert_eq!(
            parse_workloads("hash,matmul").ok(),
            Some(vec![WorkloadKind::Matmul, WorkloadKind::Hash])
        );
        let e = parse_workloads("gemm").unwrap_err().to_string();
        assert!(e.contains("unknown workload \"gemm\""), "{e}");
    }

    #[test]
    fn default_out_is_host_and_utc_stamp() {
        let t = std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            default_out("node/7", t),
            PathBuf::from("reports/node_7-20231114T221320Z")
        );
    }

    #[test]
    fn node_names_are_checked() {
        assert_eq!(node_name(None, "host1").ok().as_deref(), Some("host1"));
        assert_eq!(
            node_name(Some("rack 4 node-02.dc1"), "h").ok().as_deref(),
            Some("rack 4 node-02.dc1")
        );
        for (bad, says) in [
            ("", "empty"),
            ("  ", "empty"),
            (" n1", "space"),
            ("a/b", "slash"),
            ("a\\b", "slash"),
            ("n\n1", "control"),
            ("..", "folders"),
        ] {
            let e = node_name(Some(bad), "h").expect_err(bad).to_string();
            assert!(
                e.contains("--node-name") && e.contains(says),
                "{bad:?}: {e}"
            );
        }
        let long = "n".repeat(MAX_NODE_NAME + 1);
        assert!(node_name(Some(&long), "h").is_err());
        assert!(node_name(Some(&long[1..]), "h").is_ok());
    }

    #[test]
    fn sim_gpu_count_is_bounded() {
        assert!(sim_options(0, 1).is_err());
        assert!(sim_options(65, 1).is_err());
        assert_eq!(sim_options(8, 3).ok().map(|s| s.gpus), Some(8));
    }
}

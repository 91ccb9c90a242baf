//! `kiln fleet` as a user gets it: three simulated nodes, one with a slow
//! GPU (rejected by its own node), one with every GPU 6 % slow (accepted by
//! its own node, flagged by the fleet rule), one clean; the files it writes
//! (fleet.json, fleet.csv, fleet.pdf, the Prometheus textfile), its exit
//! codes, too few nodes, reruns of a node and bad input. Also `kiln run
//! --prometheus` read back, and `--node-name`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn kiln(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("kiln starts")
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The cheapest run that still exercises every rule: 4 simulated GPUs,
/// two short workloads (5 metrics).
fn sim_run(out: &Path, node: &str, seed: u64, extra: &[&str]) -> Output {
    let seed = seed.to_string();
    let mut args = vec![
        "run",
        "--backend",
        "sim",
        "--sim-gpus",
        "4",
        "--profile",
        "quick",
        "--workloads",
        "hash,bandwidth",
        "--node-name",
        node,
        "--seed",
        &seed,
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    kiln(&args)
}

const ALL_SLOW: [&str; 8] = [
    "--inject",
    "0:slow=0.94",
    "--inject",
    "1:slow=0.94",
    "--inject",
    "2:slow=0.94",
    "--inject",
    "3:slow=0.94",
];

/// The three nodes of the acceptance scenario under `dir/runs`.
fn three_nodes(dir: &Path) -> PathBuf {
    let runs = dir.join("runs");
    let o = sim_run(&runs.join("clean"), "rack1-n01", 11, &[]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let o = sim_run(
        &runs.join("onebad"),
        "rack1-n02",
        12,
        &["--inject", "2:slow=0.85"],
    );
    assert_eq!(code(&o), 1, "{}", text(&o));
    // Every GPU 6 % slow: its own peers are as slow, the floor is 10 %
    // under: its own run accepts it.
    let o = sim_run(&runs.join("allslow"), "rack1-n03", 13, &ALL_SLOW);
    assert_eq!(code(&o), 0, "{}", text(&o));
    runs
}

fn json(path: &Path) -> serde_json::Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One sample of a textfile: family name, labels, value.
type Series = (String, BTreeMap<String, String>, f64);

/// Reads Prometheus' text format back strictly: every family declared once
/// by HELP and TYPE (gauge) before its samples, valid names, escaped label
/// values, no duplicate series, no timestamps.
fn parse_prometheus(text: &str) -> Vec<Series> {
    let valid = |name: &str| {
        let mut c = name.chars();
        c.next()
            .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
            && c.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    let mut help = BTreeSet::new();
    let mut types = BTreeMap::new();
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, h) = rest.split_once(' ').expect("HELP has a text");
            assert!(!h.trim().is_empty(), "{line}");
            assert!(help.insert(name.to_string()), "HELP twice: {line}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, t) = rest.split_once(' ').expect("TYPE has a type");
            assert_eq!(t, "gauge", "{line}");
            assert!(help.contains(name), "TYPE before HELP: {line}");
            assert!(
                types.insert(name.to_string(), t.to_string()).is_none(),
                "TYPE twice: {line}"
            );
            continue;
        }
        assert!(!line.starts_with('#') && !line.is_empty(), "{line:?}");
        let name_end = line.find(['{', ' ']).expect("a sample line");
        let name = &line[..name_end];
        assert!(valid(name), "bad name {name:?}");
        assert!(types.contains_key(name), "{name} has no TYPE before it");
        assert!(!name.ends_with("_total"), "a gauge named like a counter");
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if let Some(r) = rest.strip_prefix('{') {
            let mut chars = r.char_indices().peekable();
            let end;
            loop {
                // key
                let start = chars.peek().map(|(i, _)| *i).expect("label");
                let mut key_end = start;
                for (i, c) in chars.by_ref() {
                    if c == '=' {
                        key_end = i;
                        break;
                    }
                }
                let key = &r[start..key_end];
                assert!(
                    !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "bad label name {key:?} in {line}"
                );
                assert_eq!(chars.next().map(|x| x.1), Some('"'), "{line}");
                let mut value = String::new();
                loop {
                    match chars.next().expect("closed value").1 {
                        '\\' => match chars.next().expect("escape").1 {
                            '\\' => value.push('\\'),
                            '"' => value.push('"'),
                            'n' => value.push('\n'),
                            c => panic!("bad escape \\{c} in {line}"),
                        },
                        '"' => break,
                        '\n' => panic!("raw newline"),
                        c => value.push(c),
                    }
                }
                assert!(labels.insert(key.to_string(), value).is_none(), "{line}");
                match chars.next().expect("more").1 {
                    ',' => continue,
                    '}' => {
                        end = chars.peek().map(|(i, _)| *i);
                        break;
                    }
                    c => panic!("unexpected {c:?} in {line}"),
                }
            }
            rest = &r[end.expect("a value after the labels")..];
        }
        let value = rest.strip_prefix(' ').expect("a space before the value");
        assert!(!value.contains(' '), "a timestamp or junk: {line}");
        let v: f64 = match value {
            "NaN" => f64::NAN,
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        assert!(
            seen.insert((name.to_string(), labels.clone())),
            "duplicate series: {line}"
        );
        out.push((name.to_string(), labels, v));
    }
    for name in &help {
        assert!(types.contains_key(name), "{name}: HELP without TYPE");
    }
    out
}

fn find<'a>(series: &'a [Series], name: &str, labels: &[(&str, &str)]) -> Vec<&'a Series> {
    series
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .collect()
}

fn pdf_text(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(bytes.starts_with(b"%PDF-"));
    pdf_extract::extract_text_from_mem_by_pages(&bytes)
        .expect("the PDF's text extracts")
        .concat()
}

#[test]
fn exactly_the_two_faulty_nodes_of_three_are_flagged() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = three_nodes(tmp.path());
    let out = tmp.path().join("fleet");
    let prom = tmp.path().join("kiln_fleet.prom");
    // The folder that holds the run folders, as a Slurm job's results.
    let o = kiln(&[
        "fleet",
        runs.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--prometheus",
        prom.to_str().unwrap(),
    ]);
    let said = text(&o);
    assert_eq!(code(&o), 1, "{said}");
    assert!(
        said.contains("fleet_outlier") && said.contains("gpu_rejected"),
        "{said}"
    );

    let doc = json(&out.join("fleet.json"));
    assert_eq!(doc["schema_version"], 1);
    assert_eq!(doc["exit_code"], 1);
    let nodes = doc["nodes"].as_array().unwrap();
    let node = |name: &str| {
        nodes
            .iter()
            .find(|n| n["node"] == name)
            .unwrap_or_else(|| panic!("no node {name} in {nodes:?}"))
    };
    let codes = |n: &serde_json::Value| -> BTreeSet<String> {
        n["flags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["code"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(nodes.len(), 3);
    let clean = node("rack1-n01");
    assert_eq!(clean["flagged"], false, "{clean}");
    assert!(clean["flags"].as_array().unwrap().is_empty());
    assert_eq!(clean["verdict"], "accept");
    let onebad = node("rack1-n02");
    assert_eq!(onebad["flagged"], true);
    assert_eq!(onebad["verdict"], "reject");
    assert_eq!(codes(onebad), BTreeSet::from(["gpu_rejected".to_string()]));
    assert_eq!(onebad["flags"][0]["gpus"], serde_json::json!([2]));
    let slow = node("rack1-n03");
    assert_eq!(slow["flagged"], true);
    assert_eq!(slow["verdict"], "accept", "its own run accepts it");
    assert_eq!(codes(slow), BTreeSet::from(["fleet_outlier".to_string()]));
    let flagged_metrics: BTreeSet<&str> = slow["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let s = f["shortfall"].as_f64().unwrap();
            assert!((0.04..0.09).contains(&s), "{f}");
            assert!(f["z"].as_f64().unwrap() >= 3.0, "{f}");
            let detail = f["detail"].as_str().unwrap();
            let metric = f["metric"].as_str().unwrap();
            assert!(
                detail.starts_with(metric) && detail.contains("% under"),
                "{detail}"
            );
            metric
        })
        .collect();
    assert_eq!(
        flagged_metrics,
        BTreeSet::from(["bw_read", "bw_write", "bw_copy", "bw_triad", "sha256d"])
    );
    // Every comparison of the clean nodes passed, and is recorded.
    for n in [clean, onebad] {
        let c = n["comparisons"].as_array().unwrap();
        assert_eq!(c.len(), 5, "{n}");
        assert!(c.iter().all(|c| c["pass"] == true), "{n}");
    }
    // The fleet medians, per model, say over which GPUs.
    let model = &doc["models"][0];
    assert_eq!(model["model"], "Simulated H100 80GB HBM3");
    assert_eq!(model["rule_applied"], true);
    assert_eq!(
        (model["nodes"].as_u64(), model["gpus"].as_u64()),
        (Some(3), Some(12))
    );
    for m in model["metrics"].as_array().unwrap() {
        assert_eq!(m["gpus"], 12, "accepted and rejected GPUs: {m}");
        assert_eq!(m["accepted_gpus"], 11, "{m}");
        assert!(
            m["median"].as_f64().unwrap() > 0.0 && m["unit"].is_string(),
            "{m}"
        );
    }

    // Per GPU: node, index, serial (each node its own), verdict, reasons.
    let gpus = doc["gpus"].as_array().unwrap();
    assert_eq!(gpus.len(), 12);
    let serials: BTreeSet<&str> = gpus.iter().map(|g| g["serial"].as_str().unwrap()).collect();
    let uuids: BTreeSet<&str> = gpus.iter().map(|g| g["uuid"].as_str().unwrap()).collect();
    assert_eq!((serials.len(), uuids.len()), (12, 12), "{gpus:?}");
    let bad: Vec<_> = gpus.iter().filter(|g| g["verdict"] != "accept").collect();
    assert_eq!(bad.len(), 1);
    assert_eq!(
        (bad[0]["node"].as_str(), bad[0]["index"].as_u64()),
        (Some("rack1-n02"), Some(2))
    );
    assert!(bad[0]["reasons"]
        .as_array()
        .unwrap()
        .contains(&"peer_outlier".into()));

    // fleet.csv: a line per node and GPU.
    let csv = std::fs::read_to_string(out.join("fleet.csv")).unwrap();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header = reader.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 12, "{csv}");
    for r in &rows {
        let (node, gpu) = (&r[col("node")], &r[col("gpu")]);
        let flags = &r[col("node_flags")];
        match node {
            "rack1-n01" => assert_eq!((flags, &r[col("node_flagged")]), ("", "false")),
            "rack1-n02" => assert_eq!(flags, "gpu_rejected"),
            "rack1-n03" => assert_eq!(flags, "fleet_outlier"),
            other => panic!("node {other}"),
        }
        let verdict = &r[col("verdict")];
        let want = if node == "rack1-n02" && gpu == "2" {
            "reject"
        } else {
            "accept"
        };
        assert_eq!(verdict, want, "{r:?}");
        assert!(serials.contains(&r[col("serial")]));
    }

    // fleet.pdf shows the node flags and the fleet medians.
    let pdf = pdf_text(&out.join("fleet.pdf"));
    for want in [
        "2 of 3 node(s) FLAGGED",
        "fleet_outlier",
        "gpu_rejected",
        "Fleet medians",
        "rack1-n01",
        "rack1-n03",
        "sha256d",
        "SIMULATED",
    ] {
        assert!(pdf.contains(want), "fleet.pdf lacks {want:?}");
    }

    // The textfile: every node's GPUs and the fleet's flags.
    let series = parse_prometheus(&std::fs::read_to_string(&prom).unwrap());
    let value = |name: &str, labels: &[(&str, &str)]| {
        let f = find(&series, name, labels);
        assert_eq!(f.len(), 1, "{name} {labels:?}: {f:?}");
        f[0].2
    };
    assert_eq!(value("kiln_fleet_exit_code", &[]), 1.0);
    assert_eq!(value("kiln_fleet_nodes_flagged", &[]), 2.0);
    assert_eq!(
        value("kiln_fleet_node_flagged", &[("node", "rack1-n01")]),
        0.0
    );
    assert_eq!(
        value("kiln_fleet_node_flagged", &[("node", "rack1-n03")]),
        1.0
    );
    assert_eq!(
        value(
            "kiln_fleet_node_flag",
            &[("node", "rack1-n03"), ("flag", "fleet_outlier")]
        ),
        1.0
    );
    let short = value(
        "kiln_fleet_node_shortfall_ratio",
        &[("node", "rack1-n03"), ("metric", "sha256d")],
    );
    assert!((0.04..0.09).contains(&short), "{short}");
    assert_eq!(find(&series, "kiln_gpu_verdict_code", &[]).len(), 12);
    assert_eq!(
        value(
            "kiln_gpu_verdict_code",
            &[("node", "rack1-n02"), ("gpu", "2")]
        ),
        1.0
    );
    assert_eq!(value("kiln_run_exit_code", &[("node", "rack1-n02")]), 1.0);
    assert_eq!(value("kiln_run_exit_code", &[("node", "rack1-n03")]), 0.0);
    assert_eq!(
        find(
            &series,
            "kiln_fleet_median_hashes_per_second",
            &[("metric", "sha256d")]
        )
        .len(),
        1
    );
}

#[test]
fn with_two_nodes_the_fleet_rule_is_reported_not_applied_and_a_rerun_supersedes() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs");
    assert_eq!(code(&sim_run(&runs.join("a"), "n-a", 1, &[])), 0);
    assert_eq!(code(&sim_run(&runs.join("b1"), "n-b", 2, &ALL_SLOW)), 0);
    // The same node again: its later run is the one judged.
    assert_eq!(code(&sim_run(&runs.join("b2"), "n-b", 3, &ALL_SLOW)), 0);
    let out = tmp.path().join("fleet");
    let o = kiln(&[
        "fleet",
        runs.join("a").to_str().unwrap(),
        runs.join("b1").to_str().unwrap(),
        runs.join("b2").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let said = text(&o);
    // Both nodes accepted by their own runs, and the fleet rule cannot
    // tell which of two is slow: 0, and it says so.
    assert_eq!(code(&o), 0, "{said}");
    assert!(
        said.contains("fleet rule not applied") && said.contains("at least 3"),
        "{said}"
    );
    assert!(said.contains("superseded"), "{said}");
    let doc = json(&out.join("fleet.json"));
    assert_eq!(doc["models"][0]["rule_applied"], false);
    assert!(doc["models"][0]["rule_note"]
        .as_str()
        .unwrap()
        .contains("2 node(s)"));
    assert_eq!(doc["summary"]["fleet_rule_applied"], false);
    assert_eq!(doc["nodes"].as_array().unwrap().len(), 2);
    let sup = doc["superseded"].as_array().unwrap();
    assert_eq!(sup.len(), 1);
    assert!(
        sup[0]["source"].as_str().unwrap().ends_with("b1"),
        "{sup:?}"
    );
    assert!(sup[0]["by"].as_str().unwrap().ends_with("b2"), "{sup:?}");
    assert!(pdf_text(&out.join("fleet.pdf")).contains("NOT APPLIED"));
}

#[test]
fn bad_input_exits_2_and_names_the_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nowhere");
    let o = kiln(&["fleet", missing.to_str().unwrap()]);
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(text(&o).contains("nowhere") && text(&o).contains("does not exist"));

    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(empty.join("not-a-run")).unwrap();
    let o = kiln(&["fleet", empty.to_str().unwrap()]);
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(
        text(&o).contains("no kiln run found") && text(&o).contains("empty"),
        "{}",
        text(&o)
    );

    let broken = tmp.path().join("runs").join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("journal.jsonl"), "this is not json\n").unwrap();
    let o = kiln(&["fleet", tmp.path().join("runs").to_str().unwrap()]);
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(text(&o).contains("broken"), "{}", text(&o));

    let o = kiln(&[
        "fleet",
        broken.to_str().unwrap(),
        "--prometheus",
        tmp.path().join("no/such/dir/k.prom").to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(text(&o).contains("--prometheus"), "{}", text(&o));
}

#[test]
fn run_prometheus_textfile_reads_back_with_the_run_figures() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let prom = tmp.path().join("kiln.prom");
    // A name with quotes: the label value is escaped.
    let node = "rack \"7\" node-1";
    let o = sim_run(
        &run,
        node,
        5,
        &[
            "--inject",
            "1:slow=0.85",
            "--prometheus",
            prom.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&o), 1, "{}", text(&o));
    let raw = std::fs::read_to_string(&prom).unwrap();
    assert!(raw.contains(r#"node="rack \"7\" node-1""#), "{raw}");
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    let series = parse_prometheus(&raw);
    let one = |name: &str, labels: &[(&str, &str)]| {
        let f = find(&series, name, labels);
        assert_eq!(f.len(), 1, "{name} {labels:?}: {f:?}");
        f[0].2
    };
    assert_eq!(one("kiln_run_exit_code", &[("node", node)]), 1.0);
    assert_eq!(one("kiln_run_complete", &[("node", node)]), 1.0);
    assert!(one("kiln_run_timestamp_seconds", &[]) > 1.7e9);
    assert_eq!(one("kiln_run_gpus", &[("verdict", "reject")]), 1.0);
    assert_eq!(one("kiln_run_gpus", &[("verdict", "accept")]), 3.0);
    assert_eq!(
        one("kiln_gpu_verdict", &[("gpu", "1"), ("verdict", "reject")]),
        1.0
    );
    assert_eq!(
        one("kiln_gpu_verdict", &[("gpu", "1"), ("verdict", "accept")]),
        0.0
    );
    assert_eq!(
        one(
            "kiln_gpu_reason",
            &[("gpu", "1"), ("reason", "peer_outlier")]
        ),
        1.0
    );
    // Every figure of results.json, in its base unit, with the GPU's labels.
    let results = json(&run.join("results.json"));
    assert_eq!(results["host"], node);
    for d in results["devices"].as_array().unwrap() {
        let gpu = d["index"].to_string();
        let serial = d["serial"].as_str().unwrap();
        for m in d["metrics"].as_array().unwrap() {
            let (family, scale) = match m["unit"].as_str().unwrap() {
                "GB/s" => ("kiln_gpu_throughput_bytes_per_second", 1e9),
                "MH/s" => ("kiln_gpu_throughput_hashes_per_second", 1e6),
                u => panic!("unit {u}"),
            };
            let metric = m["name"].as_str().unwrap();
            let v = one(
                family,
                &[
                    ("gpu", &gpu),
                    ("serial", serial),
                    ("metric", metric),
                    ("model", "Simulated H100 80GB HBM3"),
                ],
            );
            let want = m["value"].as_f64().unwrap() * scale;
            assert!((v - want).abs() <= want * 1e-12, "{metric}: {v} vs {want}");
        }
    }
    assert!(one("kiln_gpu_temperature_max_celsius", &[("gpu", "0")]) > 20.0);

    // A run that cannot start still says so, and replaces the figures.
    let o = kiln(&[
        "run",
        "--backend",
        "sim",
        "--sim-gpus",
        "2",
        "--devices",
        "7",
        "--node-name",
        "n9",
        "--out",
        tmp.path().join("never").to_str().unwrap(),
        "--prometheus",
        prom.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 2, "{}", text(&o));
    let series = parse_prometheus(&std::fs::read_to_string(&prom).unwrap());
    assert_eq!(
        find(&series, "kiln_run_exit_code", &[("node", "n9")])[0].2,
        2.0
    );
    assert!(find(&series, "kiln_gpu_verdict", &[]).is_empty());
}

#[test]
fn node_name_is_checked_and_names_the_simulated_gpus() {
    let tmp = tempfile::tempdir().unwrap();
    for bad in ["", "a/b", "x\ty"] {
        let o = kiln(&[
            "run",
            "--backend",
            "sim",
            "--node-name",
            bad,
            "--out",
            tmp.path().join("r").to_str().unwrap(),
        ]);
        assert_eq!(code(&o), 2, "{bad:?}: {}", text(&o));
        assert!(text(&o).contains("--node-name"), "{}", text(&o));
    }
    assert!(!tmp.path().join("r").exists(), "nothing ran");
    // `kiln list` shows the serials `kiln run` will have on that node.
    let serials = |name: &str| -> Vec<String> {
        let o = kiln(&[
            "list",
            "--backend",
            "sim",
            "--sim-gpus",
            "3",
            "--json",
            "--node-name",
            name,
        ]);
        assert_eq!(code(&o), 0, "{}", text(&o));
        let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(doc["node"], name);
        doc["devices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["serial"].as_str().unwrap().to_string())
            .collect()
    };
    let a = serials("dc1-r01-n01");
    assert_eq!(a, serials("dc1-r01-n01"));
    assert!(a.iter().all(|s| !serials("dc1-r01-n02").contains(s)));
    let o = kiln(&[
        "run",
        "--backend",
        "sim",
        "--sim-gpus",
        "3",
        "--workloads",
        "hash",
        "--node-name",
        "dc1-r01-n01",
        "--out",
        tmp.path().join("run").to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let doc = json(&tmp.path().join("run").join("results.json"));
    assert_eq!(doc["host"], "dc1-r01-n01");
    let run_serials: Vec<String> = doc["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["serial"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(run_serials, a);
}

//! Every GPU's history by serial, as a user and a script see it: `kiln db
//! ingest`, `kiln history`, `kiln baseline record --from-db`, the database
//! file they share (read back with rusqlite), its migrations, a kill in the
//! middle of an ingest, and bad input.
//!
//! The runs are simulated 2-GPU nodes on the quick profile with two
//! workloads (a tenth of a second each); the three runs of one node most
//! tests use are made once and only read.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use kiln::history::{MIGRATIONS, SCHEMA_VERSION};
use rusqlite::Connection;
use serde_json::Value;

fn kiln_cmd(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kiln"));
    c.args(args)
        .env_remove("KILN_DB")
        .env_remove("KILN_DB_INGEST_DELAY_MS")
        .stdin(Stdio::null());
    c
}

fn kiln(args: &[&str]) -> Output {
    kiln_cmd(args).output().expect("kiln starts")
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Asserts exit 2 with one `kiln: error:` line containing every needle,
/// and no panic.
fn assert_error(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(code(o), 2, "stdout: {}\nstderr: {err}", stdout(o));
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected: {err}");
    assert!(lines[0].starts_with("kiln: error: "), "{err}");
    for n in needles {
        assert!(err.contains(n), "expected {n:?} in: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

/// A quick simulated run of 2 GPUs (hash and bandwidth) into `dir`.
fn sim_run(dir: &Path, seed: u64, extra: &[&str]) {
    let seed = seed.to_string();
    let mut args = vec![
        "run",
        "--backend",
        "sim",
        "--sim-gpus",
        "2",
        "--profile",
        "quick",
        "--workloads",
        "hash,bandwidth",
        "--seed",
        &seed,
        "--out",
        s(dir),
    ];
    args.extend_from_slice(extra);
    let o = kiln(&args);
    assert!(matches!(code(&o), 0 | 1), "kiln run failed: {}", stderr(&o));
}

/// Three runs of one simulated node, oldest first: two clean ones, then one
/// where GPU 1 runs at 80 % (rejected below_baseline). Made once for every
/// test of this file, which only read them.
fn three_runs() -> &'static [PathBuf; 3] {
    static RUNS: OnceLock<(tempfile::TempDir, [PathBuf; 3])> = OnceLock::new();
    &RUNS
        .get_or_init(|| {
            let dir = tempfile::Builder::new()
                .prefix("kiln-history-runs")
                .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
                .expect("temp dir");
            let runs = [
                dir.path().join("r1"),
                dir.path().join("r2"),
                dir.path().join("r3"),
            ];
            sim_run(&runs[0], 11, &[]);
            sim_run(&runs[1], 12, &[]);
            sim_run(&runs[2], 13, &["--inject", "1:slow=0.8"]);
            (dir, runs)
        })
        .1
}

fn results_json(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("results.json")).expect("results.json");
    serde_json::from_str(&text).expect("valid JSON")
}

/// The serial of device `index` in a run's results.json.
fn serial(dir: &Path, index: usize) -> String {
    results_json(dir)["devices"][index]["serial"]
        .as_str()
        .expect("a serial")
        .to_string()
}

fn ingest(db: &Path, dirs: &[&Path]) -> Output {
    let mut args = vec!["db", "ingest", "--db", s(db)];
    args.extend(dirs.iter().map(|d| s(d)));
    kiln(&args)
}

fn count(conn: &Connection, table: &str) -> i64 {
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .expect("count")
}

/// (runs, devices, reasons, metrics) rows.
fn counts(db: &Path) -> (i64, i64, i64, i64) {
    let c = Connection::open(db).expect("open db");
    (
        count(&c, "runs"),
        count(&c, "devices"),
        count(&c, "reasons"),
        count(&c, "metrics"),
    )
}

fn ingest_all(db: &Path) -> Output {
    let runs = three_runs();
    let o = ingest(db, &[&runs[0], &runs[1], &runs[2]]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    o
}

#[test]
fn history_shows_every_run_of_a_gpu_and_its_degradation_since_its_first_accepted_run() {
    let runs = three_runs();
    let tmp = tempfile::tempdir().expect("tmp");
    let db = tmp.path().join("fleet.db");
    let o = ingest_all(&db);
    let out = stdout(&o);
    assert_eq!(out.matches(": ingested run ").count(), 3, "{out}");
    assert!(
        out.contains("3 run(s), 6 device record(s) of 2 serial(s)"),
        "{out}"
    );

    // The stored verdicts are the ones each run's results.json has.
    let c = Connection::open(&db).expect("open");
    for dir in runs {
        let doc = results_json(dir);
        for d in doc["devices"].as_array().expect("devices") {
            let (verdict, reasons): (String, String) = c
                .query_row(
                    "SELECT d.verdict, coalesce((SELECT group_concat(code, ',') FROM (SELECT code FROM reasons x WHERE x.run_id = d.run_id AND x.idx = d.idx ORDER BY pos)), '')
                     FROM devices d JOIN runs r ON r.run_id = d.run_id
                     WHERE d.serial = ?1 AND r.started_at = ?2 AND r.seed = ?3",
                    rusqlite::params![
                        d["serial"].as_str().expect("serial"),
                        doc["started_at"].as_str().expect("start"),
                        doc["seed"].as_i64().expect("seed"),
                    ],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .expect("the device is stored");
            assert_eq!(verdict, d["verdict"].as_str().expect("verdict"));
            let want: Vec<&str> = d["reasons"]
                .as_array()
                .expect("reasons")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            assert_eq!(reasons, want.join(","));
        }
    }
    let (host, profile, backend, version): (String, String, String, String) = c
        .query_row(
            "SELECT host, profile, backend, kiln_version FROM runs LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .expect("a run");
    let doc = results_json(&runs[0]);
    assert_eq!(host, doc["host"].as_str().expect("host"));
    assert_eq!((profile.as_str(), backend.as_str()), ("quick", "sim"));
    assert_eq!(version, doc["kiln_version"].as_str().expect("version"));

    // GPU 1: accepted, accepted, then rejected at 80 %.
    let gpu1 = serial(&runs[0], 1);
    assert_eq!(serial(&runs[2], 1), gpu1, "one node, the same serials");
    let o = kiln(&["history", &gpu1, "--db", s(&db)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains(&format!("GPU serial {gpu1}")), "{text}");
    assert!(text.contains("3 run(s)"), "{text}");
    assert!(text.contains("against run #1"), "{text}");
    let verdicts: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with(['1', '2', '3']))
        .filter_map(|l| l.split_whitespace().nth(6))
        .collect();
    assert_eq!(verdicts, ["ACCEPT", "ACCEPT", "REJECT"], "{text}");
    assert!(text.contains("below_baseline"), "{text}");
    // Its sha256d rows: the reference, then about 0 %, then about -20 %.
    let at = text.find("\nsha256d").expect("a sha256d row");
    let rows: Vec<&str> = text[at + 1..].lines().take(3).collect();
    assert!(
        rows[0].contains("MH/s") && rows[0].ends_with("reference"),
        "{text}"
    );
    let pct = |row: &str| -> f64 {
        let t: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(t.last(), Some(&"%"), "{row}");
        t[t.len() - 2].parse().expect("a percentage")
    };
    assert!(pct(rows[1]).abs() < 3.0, "{text}");
    assert!((-25.0..-15.0).contains(&pct(rows[2])), "{text}");
    assert!(text.contains("latest run #3"), "{text}");

    // The same as JSON, every figure with its unit and change.
    let o = kiln(&["history", &gpu1, "--db", s(&db), "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let h: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(h["query"], gpu1.as_str());
    assert_eq!(h["reference"], 0);
    let hr = h["runs"].as_array().expect("runs");
    assert_eq!(hr.len(), 3);
    let v: Vec<&str> = hr.iter().filter_map(|r| r["verdict"].as_str()).collect();
    assert_eq!(v, ["accept", "accept", "reject"]);
    assert_eq!(hr[2]["reasons"], serde_json::json!(["below_baseline"]));
    assert_eq!(hr[2]["remedy"], "reset_gpu");
    assert_eq!(hr[0]["serial"], gpu1.as_str());
    for (k, run) in hr.iter().enumerate() {
        assert_eq!(run["device"], 1);
        assert_eq!(run["uuid"], results_json(&runs[k])["devices"][1]["uuid"]);
        let metrics = run["metrics"].as_array().expect("metrics");
        assert_eq!(metrics.len(), 5, "sha256d and 4 bandwidth figures");
        let measured = results_json(&runs[k])["devices"][1]["metrics"].clone();
        for m in metrics {
            let name = m["name"].as_str().expect("name");
            let unit = m["unit"].as_str().expect("unit");
            assert!(unit == "MH/s" || unit == "GB/s", "{m}");
            let same = measured
                .as_array()
                .expect("metrics")
                .iter()
                .find(|x| x["name"] == name)
                .expect("measured");
            assert_eq!(m["value"], same["value"], "stored exactly: {name}");
            let change = m["change_pct"].as_f64().expect("a change");
            match k {
                0 => assert_eq!(change, 0.0),
                1 => assert!(change.abs() < 3.0, "{name}: {change}"),
                _ => assert!((-25.0..-15.0).contains(&change), "{name}: {change}"),
            }
        }
    }
    // GPU 0 was accepted every time, within a few percent.
    let o = kiln(&["history", &serial(&runs[0], 0), "--db", s(&db), "--json"]);
    let h: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    for run in h["runs"].as_array().expect("runs") {
        assert_eq!(run["verdict"], "accept");
        for m in run["metrics"].as_array().expect("metrics") {
            assert!(m["change_pct"].as_f64().expect("change").abs() < 3.0, "{m}");
        }
    }
    // By UUID as by serial.
    let uuid = results_json(&runs[0])["devices"][1]["uuid"]
        .as_str()
        .expect("uuid")
        .to_string();
    let o = kiln(&["history", &uuid, "--db", s(&db), "--json"]);
    let h: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(h["runs"].as_array().map(Vec::len), Some(3));
    assert_eq!(h["runs"][0]["serial"], gpu1.as_str());

    // An unknown serial: one line that names it and some known ones.
    let o = kiln(&["history", "NO-SUCH-SERIAL", "--db", s(&db)]);
    assert_error(&o, &["NO-SUCH-SERIAL", &gpu1, "3 run(s)"]);
    assert!(o.stdout.is_empty());
}

#[test]
fn ingesting_the_same_run_twice_changes_nothing() {
    let runs = three_runs();
    let tmp = tempfile::tempdir().expect("tmp");
    let db = tmp.path().join("h.db");
    ingest_all(&db);
    let before = counts(&db);
    assert_eq!(before.0, 3);
    assert_eq!(before.1, 6);
    assert_eq!(before.2, 1, "one reason code: GPU 1 of run 3");
    assert_eq!(before.3, 30, "3 runs x 2 GPUs x 5 figures");
    let bytes = std::fs::read(&db).expect("db");
    // Again, and the first run from another path to the same folder.
    let o = ingest(&db, &[&runs[0], &runs[1], &runs[2]]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        stdout(&o).matches("already ingested").count(),
        3,
        "{}",
        stdout(&o)
    );
    assert!(!stdout(&o).contains("ingested run"), "{}", stdout(&o));
    let other = runs[0].join("..").join("r1");
    let o = ingest(&db, &[&other]);
    assert!(stdout(&o).contains("already ingested"), "{}", stdout(&o));
    assert_eq!(counts(&db), before);
    assert_eq!(std::fs::read(&db).expect("db"), bytes, "not a byte changed");
}

#[test]
fn an_ingest_killed_midway_loses_nothing_committed_and_a_reingest_completes_it() {
    let runs = three_runs();
    let tmp = tempfile::tempdir().expect("tmp");
    let db = tmp.path().join("h.db");
    // Each device sleeps 1 s inside its run's transaction: the kill lands
    // while the second run is half written (its device 0 in, device 1 not).
    let mut child = kiln_cmd(&["db", "ingest", "--db", s(&db)])
        .args(runs.iter().map(|r| s(r)))
        .env("KILN_DB_INGEST_DELAY_MS", "1000")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kiln starts");
    let out = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(out).lines();
    let first = lines.next().and_then(|l| l.ok()).unwrap_or_default();
    assert!(first.contains("ingested run"), "{first}");
    // Run 2 now sleeps after its first device, its transaction open.
    std::thread::sleep(Duration::from_millis(300));
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("wait");
    assert!(!status.success(), "killed: {status:?}");

    let c = Connection::open(&db).expect("open after the kill");
    let check: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(check, "ok");
    let fk: i64 = c
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .expect("foreign_key_check");
    assert_eq!(fk, 0, "no device or metric without its run");
    assert_eq!(count(&c, "runs"), 1, "run 1 committed, run 2 rolled back");
    assert_complete(&c, runs);
    drop(c);

    let o = ingest(&db, &[&runs[0], &runs[1], &runs[2]]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("r1: already ingested"), "{out}");
    assert!(out.contains("r2: ingested run"), "{out}");
    assert!(out.contains("r3: ingested run"), "{out}");
    let c = Connection::open(&db).expect("open");
    assert_eq!(count(&c, "runs"), 3);
    assert_complete(&c, runs);
}

/// Every run in the database has all its devices and all its metrics, as
/// its results.json lists them: never half a run.
fn assert_complete(c: &Connection, runs: &[PathBuf]) {
    let mut stmt = c
        .prepare("SELECT run_id, started_at, seed FROM runs")
        .expect("prepare");
    let stored: Vec<(String, String, i64)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .and_then(|rows| rows.collect())
        .expect("runs");
    for (id, started, seed) in stored {
        let doc = runs
            .iter()
            .map(|r| results_json(r))
            .find(|d| d["started_at"] == started.as_str() && d["seed"] == seed)
            .expect("a stored run is one of the three");
        let devices = doc["devices"].as_array().expect("devices");
        let n: i64 = c
            .query_row(
                "SELECT count(*) FROM devices WHERE run_id = ?1",
                [&id],
                |r| r.get(0),
            )
            .expect("devices");
        assert_eq!(n as usize, devices.len(), "run {id}: every device");
        for d in devices {
            let idx = d["index"].as_i64().expect("index");
            let m: i64 = c
                .query_row(
                    "SELECT count(*) FROM metrics WHERE run_id = ?1 AND idx = ?2",
                    rusqlite::params![id, idx],
                    |r| r.get(0),
                )
                .expect("metrics");
            assert_eq!(
                m as usize,
                d["metrics"].as_array().map_or(0, Vec::len),
                "run {id} device {idx}: every metric"
            );
        }
    }
}

#[test]
fn an_older_database_is_migrated_and_a_newer_one_refused_naming_both_versions() {
    let runs = three_runs();
    let tmp = tempfile::tempdir().expect("tmp");

    // A database written by a kiln at schema version 1, with one run in it.
    let old = tmp.path().join("old.db");
    {
        let c = Connection::open(&old).expect("create");
        c.execute_batch(MIGRATIONS[0].sql).expect("step 1");
        c.pragma_update(None, "user_version", 1).expect("version");
        c.execute_batch(
            "INSERT INTO runs VALUES ('old-run', 'node-a', '2020-01-01T00:00:00Z', '2020-01-01T00:01:00Z',
                 'quick', '0.0.9', 'sim', 1, 1, 'x', '/old', '2020-01-01T00:02:00Z');
             INSERT INTO devices VALUES ('old-run', 0, 'Simulated H100 80GB HBM3', 'OLD-SERIAL', NULL, NULL, 'accept');
             INSERT INTO metrics VALUES ('old-run', 0, 0, 'hash', 'sha256d', 0, 5000.0, 'MH/s');",
        )
        .expect("old rows");
    }
    // There is a step to migrate through.
    const { assert!(SCHEMA_VERSION > 1) };
    let o = ingest(&old, &[&runs[0]]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!(
            "migrated from schema version 1 to {SCHEMA_VERSION}"
        )),
        "{}",
        stderr(&o)
    );
    let c = Connection::open(&old).expect("open");
    let v: u32 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(v, SCHEMA_VERSION);
    let index: i64 = c
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'devices_serial'",
            [],
            |r| r.get(0),
        )
        .expect("index");
    assert_eq!(index, 1, "step 2's index");
    assert_eq!(count(&c, "runs"), 2, "the old run kept, the new one added");
    drop(c);
    let o = kiln(&["history", "OLD-SERIAL", "--db", s(&old), "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let h: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(h["runs"][0]["host"], "node-a");
    assert_eq!(h["runs"][0]["remedy"], Value::Null, "a column step 2 added");
    assert_eq!(h["runs"][0]["metrics"][0]["value"], 5000.0);

    // A database from a newer kiln: refused, untouched.
    let newer = tmp.path().join("newer.db");
    {
        let c = Connection::open(&newer).expect("create");
        for m in MIGRATIONS {
            c.execute_batch(m.sql).expect("step");
        }
        c.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .expect("version");
    }
    let bytes = std::fs::read(&newer).expect("db");
    let want_new = format!("schema version {}", SCHEMA_VERSION + 1);
    let want_ours = format!("this kiln's {SCHEMA_VERSION}");
    let o = ingest(&newer, &[&runs[0]]);
    assert_error(&o, &[s(&newer), &want_new, &want_ours, "newer"]);
    let o = kiln(&["history", "X", "--db", s(&newer)]);
    assert_error(&o, &[&want_new, &want_ours]);
    assert_eq!(std::fs::read(&newer).expect("db"), bytes, "left untouched");
}

#[test]
fn baseline_record_from_db_is_the_rule_of_baseline_record_from_run_folders() {
    let runs = three_runs();
    let tmp = tempfile::tempdir().expect("tmp");
    let db = tmp.path().join("h.db");
    ingest_all(&db);
    let from_db = tmp.path().join("from-db.toml");
    let o = kiln(&[
        "baseline",
        "record",
        "--from-db",
        "--db",
        s(&db),
        "--model",
        "Simulated H100",
        "--out",
        s(&from_db),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = kiln(&["baseline", "check", s(&from_db)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let from_dirs = tmp.path().join("from-dirs.toml");
    let o = kiln(&[
        "baseline",
        "record",
        s(&runs[0]),
        s(&runs[1]),
        s(&runs[2]),
        "--model",
        "Simulated H100",
        "--out",
        s(&from_dirs),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let a = std::fs::read_to_string(&from_db).expect("from db");
    let b = std::fs::read_to_string(&from_dirs).expect("from dirs");
    assert_eq!(a, b);
    // 5 accepted devices; the slow GPU left out, and named.
    assert!(a.contains("5 accepted device(s)"), "{a}");
    assert!(
        a.contains("device 1 of") && a.contains("reject (below_baseline)"),
        "{a}"
    );

    // Fewer than 3 accepted devices: both refuse, with the same words.
    let one = tmp.path().join("one.db");
    assert_eq!(code(&ingest(&one, &[&runs[0]])), 0);
    let refuse_db = kiln(&[
        "baseline",
        "record",
        "--from-db",
        "--db",
        s(&one),
        "--model",
        "Simulated",
        "--out",
        s(&tmp.path().join("x.toml")),
    ]);
    let refuse_dir = kiln(&[
        "baseline",
        "record",
        s(&runs[0]),
        "--model",
        "Simulated",
        "--out",
        s(&tmp.path().join("y.toml")),
    ]);
    assert_error(&refuse_db, &["only 2 accepted device(s)", "at least 3"]);
    assert_eq!(stderr(&refuse_db), stderr(&refuse_dir));
    assert!(!tmp.path().join("x.toml").exists());

    // Run folders and --from-db exclude each other; --db needs --from-db.
    let o = kiln(&[
        "baseline",
        "record",
        s(&runs[0]),
        "--from-db",
        "--model",
        "S",
        "--out",
        "z.toml",
    ]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("cannot be used with"), "{}", stderr(&o));
    let o = kiln(&[
        "baseline",
        "record",
        s(&runs[0]),
        "--db",
        s(&db),
        "--model",
        "S",
        "--out",
        "z.toml",
    ]);
    assert_error(&o, &["--from-db"]);
}

#[test]
fn the_database_is_db_else_kiln_db_env_else_kiln_db_in_the_current_folder() {
    let runs = three_runs();
    let tmp = tempfile::tempdir().expect("tmp");
    let o = kiln_cmd(&["db", "ingest", s(&runs[0])])
        .current_dir(tmp.path())
        .output()
        .expect("kiln");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(tmp.path().join("kiln.db").is_file());
    let env_db = tmp.path().join("env.db");
    let o = kiln_cmd(&["history", &serial(&runs[0], 0)])
        .current_dir(tmp.path())
        .env("KILN_DB", &env_db)
        .output()
        .expect("kiln");
    assert_error(&o, &[s(&env_db), "no history database", "kiln db ingest"]);
    let o = kiln_cmd(&["history", &serial(&runs[0], 0), "--db", "kiln.db"])
        .current_dir(tmp.path())
        .env("KILN_DB", &env_db)
        .output()
        .expect("kiln");
    assert_eq!(code(&o), 0, "--db wins over KILN_DB: {}", stderr(&o));
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    let runs = three_runs();
    let tmp = tempfile::tempdir().expect("tmp");
    let db = tmp.path().join("h.db");

    // Not a run folder: an empty folder, a file, a missing path. Nothing
    // is created, nothing ingested (every folder is checked first).
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let o = ingest(&db, &[&runs[0], &empty]);
    assert_error(&o, &[s(&empty), "not a run folder", "journal.jsonl"]);
    assert!(!db.exists(), "no database created for bad input");
    let file = tmp.path().join("file.txt");
    std::fs::write(&file, "hello").expect("write");
    assert_error(&ingest(&db, &[&file]), &["not a folder"]);
    assert_error(
        &ingest(&db, &[&tmp.path().join("nope")]),
        &["does not exist"],
    );
    // A journal that is not one.
    let fake = tmp.path().join("fake");
    std::fs::create_dir(&fake).expect("mkdir");
    std::fs::write(fake.join("journal.jsonl"), "not json\n").expect("write");
    assert_error(&ingest(&db, &[&fake]), &["journal.jsonl", "line 1"]);

    // A corrupt database file: refused, left as it is.
    let corrupt = tmp.path().join("corrupt.db");
    std::fs::write(&corrupt, "this is not a database\n".repeat(200)).expect("write");
    let o = ingest(&corrupt, &[&runs[0]]);
    assert_error(&o, &[s(&corrupt), "not an SQLite database"]);
    let o = kiln(&["history", "X", "--db", s(&corrupt)]);
    assert_error(&o, &["not an SQLite database"]);
    // A database whose pages were overwritten past its header.
    let damaged = tmp.path().join("damaged.db");
    assert_eq!(code(&ingest(&damaged, &[&runs[0], &runs[1]])), 0);
    let mut bytes = std::fs::read(&damaged).expect("db");
    for b in bytes.iter_mut().skip(100) {
        *b = 0xa5;
    }
    std::fs::write(&damaged, &bytes).expect("write");
    let o = kiln(&["history", &serial(&runs[0], 0), "--db", s(&damaged)]);
    assert_error(&o, &[s(&damaged), "damaged"]);
    let o = ingest(&damaged, &[&runs[2]]);
    assert_error(&o, &[s(&damaged), "damaged"]);
    // Another program's SQLite database.
    let foreign = tmp.path().join("foreign.db");
    Connection::open(&foreign)
        .and_then(|c| c.execute_batch("CREATE TABLE t (x)"))
        .expect("foreign db");
    assert_error(
        &ingest(&foreign, &[&runs[0]]),
        &["not kiln's history database"],
    );

    // A path kiln cannot write: its folder does not exist, or is a file.
    let o = ingest(&tmp.path().join("no/such/folder/h.db"), &[&runs[0]]);
    assert_error(&o, &["cannot write", "does not exist"]);
    let o = ingest(&file.join("h.db"), &[&runs[0]]);
    assert_error(&o, &["cannot write"]);
    // The database is a folder.
    assert_error(&ingest(&empty, &[&runs[0]]), &["is a folder"]);
    // No database for history.
    let o = kiln(&["history", "X", "--db", s(&tmp.path().join("none.db"))]);
    assert_error(&o, &["no history database"]);
    assert!(!tmp.path().join("none.db").exists());
}

#[test]
fn a_run_whose_results_json_was_judged_against_another_baseline_is_stored_only_with_it() {
    let tmp = tempfile::tempdir().expect("tmp");
    // A baseline that sha256d at about 5000 MH/s cannot clear.
    let strict = tmp.path().join("strict.toml");
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("baselines/sim-h100.toml"),
    )
    .expect("shipped baseline");
    let text = shipped.replace(
        "expected = 5000.0    # NOMINAL.sha256d\nfloor = 4500.0",
        "expected = 9000.0\nfloor = 8000.0",
    );
    assert_ne!(text, shipped);
    std::fs::write(&strict, text).expect("write");
    let run = tmp.path().join("run");
    sim_run(&run, 21, &["--baseline", s(&strict)]);
    assert_eq!(results_json(&run)["devices"][0]["verdict"], "reject");

    let db = tmp.path().join("h.db");
    let o = ingest(&db, &[&run]);
    assert_error(
        &o,
        &[
            "results.json",
            "device 0",
            "\"reject\"",
            "\"accept\"",
            "--baseline",
        ],
    );
    let o = kiln(&[
        "db",
        "ingest",
        "--db",
        s(&db),
        "--baseline",
        s(&strict),
        s(&run),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let c = Connection::open(&db).expect("open");
    let rejected: i64 = c
        .query_row(
            "SELECT count(*) FROM devices WHERE verdict = 'reject'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(rejected, 2);
}

#[test]
fn help_explains_the_database_and_the_exit_codes() {
    let o = kiln(&["db", "ingest", "--help"]);
    let t = stdout(&o);
    for want in [
        "KILN_DB",
        "kiln.db",
        "already ingested",
        "transaction",
        "Exit codes",
    ] {
        assert!(t.contains(want), "{want}: {t}");
    }
    let o = kiln(&["history", "--help"]);
    let t = stdout(&o);
    for want in ["first accepted run", "--json", "KILN_DB", "Exit codes"] {
        assert!(t.contains(want), "{want}: {t}");
    }
    let o = kiln(&["baseline", "record", "--help"]);
    assert!(stdout(&o).contains("--from-db"), "{}", stdout(&o));
}

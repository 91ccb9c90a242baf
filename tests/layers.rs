//! The layering check: every module of src/ imports only from the layers
//! below its own, so the tree reads as kiln's data flow and has no circle.
//!
//! It reads every `.rs` file under src/ with std::fs, finds each path into the
//! crate (`use crate::X`, `crate::X::...`, `crate::{X, Y}`, and `super::`
//! chains that climb to the crate root), maps the file and the imported
//! module to their layers ([`LAYERS`]) and fails on any import of a higher
//! layer, or of another module of the same layer, naming the file, the line
//! and the import. Comments and string literals are not code and are skipped.
//! README's "Layout" section describes the same table; `.ci/run` runs this
//! test with the others (`cargo test`).

use std::fs;
use std::path::{Path, PathBuf};

/// The layers of src/, bottom first. A module may import its own submodules
/// and the modules of every layer below its own; nothing of a higher layer
/// and nothing of another module in its own layer. Items of the crate root
/// (`crate::VERSION`) may be used from anywhere. src/lib.rs (the crate root,
/// which only declares the modules) and src/main.rs (the binary, which goes
/// through `kiln::`) stand above every layer.
const LAYERS: &[&[&str]] = &[
    // Pure definitions: what each workload computes, summary statistics,
    // errors and exit codes.
    &["reference", "stats", "error"],
    // Sensors, beside the devices that own them.
    &["telemetry"],
    // Backends: execute, never judge.
    &["device"],
    // What runs, how big, and how each result is checked.
    &["workload"],
    // Raw arguments (their types come from device and workload).
    &["cli"],
    // Validated jobs.
    &["plan"],
    // All devices in parallel, the journal.
    &["run"],
    // A run rebuilt from its journal.
    &["results"],
    // Accept or reject.
    &["verdict"],
    // json, csv, telemetry.csv, charts, report.pdf, the summary table; and
    // beside them the history database (every GPU's runs by serial).
    &["output", "history"],
    // The subcommands, wiring everything together.
    &["commands"],
];

/// The layer of a top-level module, `None` for a name that is no module.
fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// One path into the crate found in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Import {
    /// 1-based line of the path.
    line: usize,
    /// The top-level module (or crate-root item) the path goes to.
    target: String,
    /// The path as written, up to its first item (e.g. `crate::workload::gen`).
    text: String,
    /// The whole source line the path is on, trimmed.
    source: String,
}

/// `src` with every comment, string literal and character literal replaced
/// by spaces, newlines kept, so that line numbers stay right and nothing in
/// prose or text is taken for code.
fn strip(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let blank = |out: &mut String, ch: char| out.push(if ch == '\n' { '\n' } else { ' ' });
    let mut i = 0;
    while i < c.len() {
        let next = c.get(i + 1).copied();
        if c[i] == '/' && next == Some('/') {
            while i < c.len() && c[i] != '\n' {
                blank(&mut out, c[i]);
                i += 1;
            }
        } else if c[i] == '/' && next == Some('*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, c[i]);
                    i += 1;
                }
            }
        } else if c[i] == 'r'
            && (next == Some('"') || next == Some('#'))
            && (i == 0 || !is_ident(c[i - 1]))
        {
            // A raw string: r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while c.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if c.get(j) != Some(&'"') {
                out.push(c[i]);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                match c.get(j) {
                    None => break,
                    Some('"') if (1..=hashes).all(|h| c.get(j + h) == Some(&'#')) => {
                        j += 1 + hashes;
                        break;
                    }
                    _ => j += 1,
                }
            }
            for &ch in &c[i..j.min(c.len())] {
                blank(&mut out, ch);
            }
            i = j;
        } else if c[i] == '"' {
            blank(&mut out, c[i]);
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' && i + 1 < c.len() {
                    blank(&mut out, c[i]);
                    i += 1;
                }
                blank(&mut out, c[i]);
                i += 1;
            }
            if i < c.len() {
                blank(&mut out, c[i]);
                i += 1;
            }
        } else if c[i] == '\'' {
            // A character literal ('x', '\n', '\u{..}') or a lifetime ('a).
            let end = if next == Some('\\') {
                (i + 2..c.len()).find(|&j| c[j] == '\'')
            } else if c.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match end {
                Some(e) => {
                    for &ch in &c[i..=e] {
                        blank(&mut out, ch);
                    }
                    i = e + 1;
                }
                None => {
                    out.push(c[i]);
                    i += 1;
                }
            }
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

fn is_ident(ch: char) -> bool {
    ch.is_alphanumeric() || ch == '_'
}

/// The tokens of stripped code: identifiers, `::` and single punctuation,
/// each with its line.
fn tokens(code: &str) -> Vec<(usize, String)> {
    let c: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < c.len() {
        if c[i] == '\n' {
            line += 1;
            i += 1;
        } else if c[i].is_whitespace() {
            i += 1;
        } else if is_ident(c[i]) {
            let start = i;
            while i < c.len() && is_ident(c[i]) {
                i += 1;
            }
            out.push((line, c[start..i].iter().collect()));
        } else if c[i] == ':' && c.get(i + 1) == Some(&':') {
            out.push((line, "::".to_string()));
            i += 2;
        } else {
            out.push((line, c[i].to_string()));
            i += 1;
        }
    }
    out
}

/// The first segment of every item of a `{ .. }` group starting at token
/// `open` (a `{`), and the index after its closing `}`.
fn group_heads(t: &[(usize, String)], open: usize) -> (Vec<(usize, String)>, usize) {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut expect_head = true;
    let mut i = open;
    while i < t.len() {
        match t[i].1.as_str() {
            "{" => {
                depth += 1;
                if depth == 1 {
                    expect_head = true;
                }
            }
            "}" => {
                depth -= 1;
                if depth == 0 {
                    return (heads, i + 1);
                }
            }
            "," if depth == 1 => expect_head = true,
            s if depth == 1 && expect_head => {
                expect_head = false;
                if s.chars().all(is_ident) && s != "self" {
                    heads.push(t[i].clone());
                }
            }
            _ => {}
        }
        i += 1;
    }
    (heads, i)
}

/// Every path into the crate in `src`, a file whose module path is `module`
/// (`["device", "cuda", "transfer"]` for src/device/cuda/transfer.rs).
/// Paths that stay inside the file's own top-level module are left out.
fn imports(module: &[String], src: &str) -> Vec<Import> {
    let t = tokens(&strip(src));
    let lines: Vec<&str> = src.lines().collect();
    let mut found = Vec::new();
    // Inline modules (`mod tests { .. }`) open around the current token:
    // their names and the brace depth inside them.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < t.len() {
        let tok = t[i].1.as_str();
        match tok {
            "{" => depth += 1,
            "}" => {
                depth = depth.saturating_sub(1);
                while inline.last().is_some_and(|m| m.1 > depth) {
                    inline.pop();
                }
            }
            "mod" if t.get(i + 2).is_some_and(|x| x.1 == "{") => {
                inline.push((t[i + 1].1.clone(), depth + 1));
            }
            _ => {}
        }
        let preceded_by_path = i > 0 && t[i - 1].1 == "::";
        let is_root = tok == "crate" && !preceded_by_path;
        let is_super = tok == "super" && !preceded_by_path;
        if !(is_root || is_super) || t.get(i + 1).is_none_or(|x| x.1 != "::") {
            i += 1;
            continue;
        }
        let line = t[i].0;
        // Where the path starts: the crate root, or as many modules up from
        // here as it has `super::`s.
        let mut j = i;
        let mut climbed_to_root = is_root;
        if is_super {
            let mut here: Vec<String> = module.to_vec();
            here.extend(inline.iter().map(|m| m.0.clone()));
            while t.get(j).is_some_and(|x| x.1 == "super")
                && t.get(j + 1).is_some_and(|x| x.1 == "::")
            {
                here.pop();
                j += 2;
            }
            climbed_to_root = here.is_empty();
            j -= 2;
        }
        let after = j + 2;
        if climbed_to_root {
            let prefix: String = t[i..after].iter().map(|x| x.1.as_str()).collect();
            let heads = match t.get(after).map(|x| x.1.as_str()) {
                Some("{") => group_heads(&t, after).0,
                Some(s) if s.chars().all(is_ident) => vec![t[after].clone()],
                _ => Vec::new(),
            };
            for (l, head) in heads {
                if module.first() != Some(&head) {
                    let line = l.max(line);
                    found.push(Import {
                        line,
                        target: head.clone(),
                        text: format!("{prefix}{head}"),
                        source: lines.get(line - 1).map_or("", |s| s.trim()).to_string(),
                    });
                }
            }
        }
        i = after;
    }
    found
}

/// A file's module path: src/device/cuda/transfer.rs is
/// `["device", "cuda", "transfer"]`, src/device/mod.rs `["device"]`.
fn module_path(src_dir: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src_dir).unwrap_or(file);
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// Every import of a higher layer (or of a sibling in the same layer) in
/// `src` of a file whose module path is `module`, as a message naming the
/// file, the line and the import; `modules` are the top-level modules of
/// src/, so that a crate-root item such as `crate::VERSION` is told apart.
fn violations(file: &str, module: &[String], src: &str, modules: &[String]) -> Vec<String> {
    let Some(own) = module.first() else {
        return Vec::new();
    };
    let Some(own_layer) = layer_of(own) else {
        return vec![format!(
            "{file}: module `{own}` is in no layer: add it to LAYERS in tests/layers.rs and to README's Layout"
        )];
    };
    let mut out = Vec::new();
    for imp in imports(module, src) {
        if !modules.contains(&imp.target) {
            continue; // an item of the crate root, e.g. crate::VERSION
        }
        match layer_of(&imp.target) {
            Some(l) if l < own_layer => {}
            Some(l) => out.push(format!(
                "{file}:{}: `{}`: {own} (layer {own_layer}) must not import {} (layer {l}{}), in: {}",
                imp.line,
                imp.text,
                imp.target,
                if l == own_layer {
                    ", the same layer"
                } else {
                    ", higher"
                },
                imp.source
            )),
            None => out.push(format!(
                "{file}:{}: `{}`: module `{}` is in no layer, in: {}",
                imp.line, imp.text, imp.target, imp.source
            )),
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        panic!("cannot read {}", dir.display());
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The top-level modules of src/ (files and folders, not lib.rs or main.rs).
fn top_modules(src_dir: &Path, files: &[PathBuf]) -> Vec<String> {
    let mut m: Vec<String> = files
        .iter()
        .filter_map(|f| module_path(src_dir, f).first().cloned())
        .filter(|m| m != "lib" && m != "main")
        .collect();
    m.sort();
    m.dedup();
    m
}

#[test]
fn no_module_imports_a_higher_layer() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src_dir = root.join("src");
    let mut files = Vec::new();
    rust_files(&src_dir, &mut files);
    let modules = top_modules(&src_dir, &files);
    let mut problems = Vec::new();
    let mut checked = 0;
    for m in &modules {
        if layer_of(m).is_none() {
            problems.push(format!(
                "src/{m}: module `{m}` is in no layer: add it to LAYERS in tests/layers.rs and to README's Layout"
            ));
        }
    }
    for f in &files {
        let module = module_path(&src_dir, f);
        if matches!(module.first().map(String::as_str), Some("lib" | "main")) {
            continue;
        }
        let Ok(text) = fs::read_to_string(f) else {
            panic!("cannot read {}", f.display());
        };
        let name = f.strip_prefix(root).unwrap_or(f).display().to_string();
        checked += imports(&module, &text).len();
        problems.extend(violations(&name, &module, &text, &modules));
    }
    // The scan sees the tree's real imports (a parser that found nothing
    // would pass every tree).
    assert!(checked > 100, "only {checked} imports found under src/");
    assert!(
        problems.is_empty(),
        "upward imports (layers, bottom first: {}):\n{}",
        LAYERS
            .iter()
            .map(|l| l.join(" "))
            .collect::<Vec<_>>()
            .join(" < "),
        problems.join("\n")
    );
}

#[test]
fn no_backend_imports_the_workloads() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src/device"), &mut files);
    assert!(files.len() > 5, "src/device has its backends");
    for f in files {
        let module = module_path(&root.join("src"), &f);
        let Ok(text) = fs::read_to_string(&f) else {
            panic!("cannot read {}", f.display());
        };
        for imp in imports(&module, &text) {
            assert_ne!(
                imp.target,
                "workload",
                "{}:{}: `{}`, in: {}",
                f.display(),
                imp.line,
                imp.text,
                imp.source
            );
        }
    }
}

#[test]
fn the_virtual_gpu_stays_independent_of_kiln() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let Ok(manifest) = fs::read_to_string(root.join("vgpu/Cargo.toml")) else {
        panic!("cannot read vgpu/Cargo.toml");
    };
    assert!(
        !manifest.lines().any(|l| l.trim_start().starts_with("kiln")),
        "vgpu/Cargo.toml depends on kiln"
    );
    let mut files = Vec::new();
    rust_files(&root.join("vgpu/src"), &mut files);
    rust_files(&root.join("src"), &mut files);
    for f in files {
        let Ok(text) = fs::read_to_string(&f) else {
            panic!("cannot read {}", f.display());
        };
        let code = strip(&text);
        let vgpu = f.starts_with(root.join("vgpu"));
        let other = if vgpu { "kiln" } else { "vgpu" };
        for (n, line) in code.lines().enumerate() {
            let uses = line
                .match_indices(&format!("{other}::"))
                .any(|(at, _)| !line[..at].ends_with(|c: char| is_ident(c) || c == ':'));
            assert!(!uses, "{}:{}: {}", f.display(), n + 1, line.trim());
        }
    }
}

/// The parser on a synthetic file with upward imports in every form it must
/// see, and look-alikes in comments and strings it must not.
#[test]
fn the_check_finds_upward_imports_and_ignores_comments_and_strings() {
    let modules: Vec<String> = LAYERS
        .iter()
        .flat_map(|l| l.iter())
        .map(|m| m.to_string())
        .collect();
    let snippet = r#"//! Docs may name crate::workload::gen freely.
use crate::reference::gen;
use crate::stats;
/* a block comment: crate::output::json */
use crate::{
    error::Result,
    workload::{hash, memtest},
};
fn f() -> String {
    let s = "crate::verdict in a string";
    let c = '"';
    let _ = crate::VERSION;
    crate::verdict::secs(1.0) + s
}
mod tests {
    use super::*;
    use super::super::run::Plan;
}
"#;
    let module = vec!["device".to_string(), "sim".to_string()];
    let found: Vec<(usize, String)> = imports(&module, snippet)
        .into_iter()
        .map(|i| (i.line, i.target))
        .collect();
    assert_eq!(
        found,
        [
            (2, "reference".to_string()),
            (3, "stats".to_string()),
            (6, "error".to_string()),
            (7, "workload".to_string()),
            (12, "VERSION".to_string()),
            (13, "verdict".to_string()),
        ]
    );
    let v = violations("src/device/sim.rs", &module, snippet, &modules);
    assert_eq!(v.len(), 2, "{v:?}");
    assert!(
        v[0].starts_with("src/device/sim.rs:7: `crate::workload`"),
        "{}",
        v[0]
    );
    assert!(
        v[1].starts_with("src/device/sim.rs:13: `crate::verdict`"),
        "{}",
        v[1]
    );
    // From a top-level file, `super::super::` inside `mod tests` is the crate
    // root: the same snippet in src/plan.rs imports run, a higher layer.
    let plan = vec!["plan".to_string()];
    let v = violations("src/plan.rs", &plan, snippet, &modules);
    assert_eq!(v.len(), 2, "{v:?}");
    assert!(v[0].contains(":13: `crate::verdict`"), "{}", v[0]);
    assert!(v[1].contains(":17: `super::super::run`"), "{}", v[1]);
    assert!(v[1].contains("must not import run"), "{}", v[1]);
    // The same layer counts as upward: stats must not import reference.
    let stats = vec!["stats".to_string()];
    let v = violations(
        "src/stats.rs",
        &stats,
        "use crate::reference::gen;\n",
        &modules,
    );
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(v[0].contains("the same layer"), "{}", v[0]);
    // A module in no layer is reported.
    let v = violations("src/extra.rs", &["extra".to_string()], "", &modules);
    assert_eq!(v.len(), 1, "{v:?}");
}

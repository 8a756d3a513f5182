//! The layering the code promises, checked rather than hoped for:
//!
//! - `tollgate-core` links no I/O (no tokio, AWS SDK, reqwest or SQLite);
//! - the HTTP layer (`web`) imports nothing else of the crate;
//! - the top-level modules of `shared/src` form no cycle;
//! - the store knows no marketplace, and no leaf module imports the
//!   composition root (`setup`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn the_core_crate_links_no_runtime_aws_http_client_or_database() {
    let out = Command::new(env!("CARGO"))
        .current_dir(workspace_root())
        .args([
            "tree",
            "-p",
            "tollgate-core",
            "-e",
            "normal,build",
            "--prefix",
            "none",
            "--locked",
            "--offline",
        ])
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout).unwrap();
    assert!(tree.contains("tollgate-core"), "{tree}");
    assert!(tree.contains("serde"), "the tree is read: {tree}");
    // `aws-lc-rs` (HMAC, pure computation) is allowed; the AWS SDK is not.
    for banned in [
        "tokio",
        "aws-config",
        "aws-sdk",
        "aws-smithy",
        "aws-sigv4",
        "reqwest",
        "rusqlite",
        "hyper",
    ] {
        let hits: Vec<&str> = tree.lines().filter(|l| l.starts_with(banned)).collect();
        assert!(hits.is_empty(), "tollgate-core depends on {hits:?}");
    }
}

/// Top-level module of `shared/src` → the top-level modules it names as
/// `crate::<module>` (test code included: a test must not need a cycle
/// either).
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = workspace_root().join("shared/src");
    let mut graph = BTreeMap::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        // `testing` is the test harness (compiled for tests only): it builds
        // the functions, and their unit tests use it.
        if name == "lib" || name == "testing" {
            continue;
        }
        let mut uses = BTreeSet::new();
        for file in rust_files(&path) {
            let text = std::fs::read_to_string(&file).unwrap();
            for (i, _) in text.match_indices("crate::") {
                let rest = &text[i + "crate::".len()..];
                let module: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !module.is_empty() && module != name {
                    uses.insert(module);
                }
            }
        }
        graph.insert(name, uses);
    }
    graph
}

fn rust_files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_owned()];
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).unwrap() {
        files.extend(rust_files(&entry.unwrap().path()));
    }
    files
}

/// Re-exports of `tollgate-core`: leaves every module may use.
const CORE: [&str; 6] = ["clock", "config", "entitlement", "model", "rules", "secret"];

#[test]
fn the_http_layer_imports_nothing_of_the_crate_but_the_core() {
    let graph = module_graph();
    let web = &graph["web"];
    let foreign: Vec<_> = web.iter().filter(|m| !CORE.contains(&m.as_str())).collect();
    assert!(foreign.is_empty(), "web imports {foreign:?}");
}

#[test]
fn the_store_knows_no_marketplace_pipeline_or_api() {
    let graph = module_graph();
    for forbidden in ["marketplace", "ingest", "api", "functions", "setup"] {
        assert!(
            !graph["store"].contains(forbidden),
            "store imports {forbidden}"
        );
    }
}

#[test]
fn only_the_wiring_imports_the_composition_root() {
    let graph = module_graph();
    let importers: BTreeSet<&str> = graph
        .iter()
        .filter(|(_, uses)| uses.contains("setup"))
        .map(|(m, _)| m.as_str())
        .collect();
    assert_eq!(
        importers,
        BTreeSet::from(["functions"]),
        "modules importing setup"
    );
}

#[test]
fn the_top_level_modules_form_no_cycle() {
    let graph = module_graph();
    assert!(graph.len() >= 8, "the graph was read: {graph:?}");
    // Depth-first search for a back edge.
    fn visit<'a>(
        m: &'a str,
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if done.contains(m) {
            return;
        }
        if let Some(start) = path.iter().position(|p| *p == m) {
            panic!("module cycle: {:?} -> {m}", &path[start..]);
        }
        path.push(m);
        for next in graph.get(m).into_iter().flatten() {
            visit(next, graph, path, done);
        }
        path.pop();
        done.insert(m);
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        visit(m, &graph, &mut Vec::new(), &mut done);
    }
}

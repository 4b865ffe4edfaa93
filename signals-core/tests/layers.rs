//! The module layering of signals-core, checked: every file uses only the layers below its own
//! (the order of `LAYERS`, as `lib.rs` and the README list them), and no two files use each
//! other, directly or through others. A new module goes into `LAYERS` where it belongs.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The top-level modules, lowest first.
const LAYERS: &[&str] = &[
    "kind",
    "error",
    "backend",
    "value",
    "meta",
    "sql",
    "query",
    "conn",
    "tx",
    "model",
    "signal",
    "ops",
    "schema",
    "migrate",
    "makemigrations",
    "__private",
    "lib",
];

/// Every `.rs` file under `dir`, as its module path (`["tx", "scope"]`, `["tx"]` for
/// `tx/mod.rs`, `["lib"]` for `lib.rs`).
fn modules(dir: &Path, prefix: &[String], out: &mut BTreeMap<Vec<String>, PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let mut module = prefix.to_vec();
        if path.is_dir() {
            module.push(name);
            modules(&path, &module, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            if name != "mod" {
                module.push(name);
            }
            out.insert(module, path);
        }
    }
}

/// The module paths a file refers to through `crate::` and `super::` (code only: comments,
/// doc links and the unit tests at the end of a file are not uses).
fn references(module: &[String], source: &str) -> Vec<Vec<String>> {
    let mut refs = Vec::new();
    let code = source.split("#[cfg(test)]").next().unwrap_or_default();
    for line in code.lines() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        let code = code.split("//").next().unwrap_or_default();
        let bytes = code.as_bytes();
        let mut i = 0;
        while i < code.len() {
            let rest = &code[i..];
            let starts_word = i == 0
                || !(bytes[i - 1].is_ascii_alphanumeric()
                    || bytes[i - 1] == b'_'
                    || bytes[i - 1] == b'$');
            let (base, skip): (Vec<String>, usize) = if starts_word && rest.starts_with("crate::") {
                (Vec::new(), "crate::".len())
            } else if starts_word && rest.starts_with("super::") {
                // One module up: from `tx/scope.rs` (`tx::scope`) to `tx`, from `tx/mod.rs`
                // (`tx`) to the crate root.
                (
                    module[..module.len().saturating_sub(1)].to_vec(),
                    "super::".len(),
                )
            } else {
                i += rest.chars().next().map_or(1, char::len_utf8);
                continue;
            };
            let tail: String = rest[skip..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':' || *c == '{')
                .collect();
            let mut path = base;
            for segment in tail.split("::") {
                let segment = segment.trim_end_matches('{');
                if segment.is_empty() {
                    break;
                }
                path.push(segment.to_owned());
            }
            refs.push(path);
            i += skip;
        }
    }
    refs
}

/// The file a path refers to: its longest non-empty prefix that is a file of the crate.
fn resolve(path: &[String], files: &BTreeMap<Vec<String>, PathBuf>) -> Option<Vec<String>> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|prefix| files.contains_key(prefix))
}

fn layer(module: &[String]) -> usize {
    let top = module.first().map_or("lib", String::as_str);
    LAYERS
        .iter()
        .position(|l| *l == top)
        .unwrap_or_else(|| panic!("module `{top}` is not in LAYERS: add it where it belongs"))
}

#[test]
fn imports_point_down_and_form_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = BTreeMap::new();
    modules(&src, &[], &mut files);
    assert!(files.len() > 20, "found the sources: {files:?}");

    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    let mut upward = Vec::new();
    for (module, path) in &files {
        let source = std::fs::read_to_string(path).unwrap();
        for reference in references(module, &source) {
            // A path no file matches names an item of the crate root (`crate::Tx`, a
            // re-export): a use of `lib`.
            let target = resolve(&reference, &files).unwrap_or_else(|| vec!["lib".to_owned()]);
            if target == *module || module.starts_with(&target) {
                continue; // itself, or its own folder's `mod.rs` re-exports
            }
            if layer(&target) > layer(module) {
                upward.push(format!(
                    "{} uses {}",
                    module.join("::"),
                    reference.join("::")
                ));
            }
            edges.entry(module.clone()).or_default().insert(target);
        }
    }
    assert!(
        upward.is_empty(),
        "imports pointing up:\n{}",
        upward.join("\n")
    );

    // Depth-first search for a cycle among files.
    fn visit(
        node: &Vec<String>,
        edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        state: &mut BTreeMap<Vec<String>, u8>,
        stack: &mut Vec<Vec<String>>,
    ) -> Option<Vec<Vec<String>>> {
        match state.get(node) {
            Some(2) => return None,
            Some(1) => {
                let start = stack.iter().position(|n| n == node).unwrap_or(0);
                return Some(stack[start..].to_vec());
            }
            _ => {}
        }
        state.insert(node.clone(), 1);
        stack.push(node.clone());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, state, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        state.insert(node.clone(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in files.keys() {
        let mut stack = Vec::new();
        if let Some(cycle) = visit(node, &edges, &mut state, &mut stack) {
            let names: Vec<String> = cycle.iter().map(|m| m.join("::")).collect();
            panic!("import cycle: {}", names.join(" -> "));
        }
    }
}

#[test]
fn no_file_is_over_700_lines() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = BTreeMap::new();
    modules(&src, &[], &mut files);
    let long: Vec<String> = files
        .values()
        .filter_map(|path| {
            let lines = std::fs::read_to_string(path).unwrap().lines().count();
            (lines > 700).then(|| format!("{} ({lines} lines)", path.display()))
        })
        .collect();
    assert!(long.is_empty(), "files past 700 lines: {long:?}");
}

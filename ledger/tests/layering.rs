//! The house rules, checked: the top-level modules ("rooms") of the `ledger` and
//! `partners-gateway` crates depend on each other without a circle, the pure core knows no
//! other room and does no I/O, and the gateway's operations know nothing of HTTP.
//!
//! A room is a file or folder directly under `src/`. An edge `a -> b` is a `crate::b` path in
//! code of room `a` (comments and `#[cfg(test)] mod tests` blocks are left out: a test may
//! reach anywhere). `cargo modules dependencies --acyclic` would check every module pair,
//! including a parent's re-exports used by its children, which is the usual Rust layout rather
//! than a circle; the rooms are what the architecture promises.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read source folder") {
        let path = entry.expect("folder entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without comments and without its unit-test module.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Room of a file: its first path component under `src/`, without `.rs`.
fn room_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("file under src");
    let first = rel.components().next().expect("a component");
    first
        .as_os_str()
        .to_string_lossy()
        .trim_end_matches(".rs")
        .to_string()
}

/// Every `crate::name` (and `crate::{a, b}`) a piece of code names.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        let preceded_by_ident = rest[..i]
            .chars()
            .last()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':');
        if !preceded_by_ident {
            if let Some(group) = after.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for part in group[..end].split(',') {
                    let name: String = part
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    found.insert(name);
                }
            } else {
                let name: String = after
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                found.insert(name);
            }
        }
        rest = after;
    }
    found
}

/// The room graph of the crate whose sources are in `src` (binaries left out).
fn room_graph(src: &Path) -> (Graph, BTreeMap<String, String>) {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let rooms: BTreeSet<String> = files.iter().map(|f| room_of(src, f)).collect();
    let mut graph = Graph::new();
    let mut code_by_room: BTreeMap<String, String> = BTreeMap::new();
    for f in &files {
        let room = room_of(src, f);
        if room == "bin" || room == "main" {
            continue;
        }
        let code = code_of(&std::fs::read_to_string(f).expect("read source"));
        let edges = graph.entry(room.clone()).or_default();
        for name in crate_paths(&code) {
            if name != room && rooms.contains(&name) && name != "lib" {
                edges.insert(name);
            }
        }
        code_by_room.entry(room).or_default().push_str(&code);
    }
    (graph, code_by_room)
}

/// A circle in `graph`, if there is one, as the rooms along it.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_string(), 1);
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next).copied().unwrap_or(0) {
                1 => {
                    let from = stack.iter().position(|n| n == next).expect("on the stack");
                    let mut cycle = stack[from..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(next, graph, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(node.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if state.get(node).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(node, graph, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

fn crate_src(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(name)
        .join("src")
}

#[test]
fn the_cycle_finder_finds_a_planted_circle() {
    let mut g = Graph::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    assert_eq!(find_cycle(&g), None);
    g.entry("c".into()).or_default().insert("a".into());
    assert_eq!(
        find_cycle(&g),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    assert_eq!(
        crate_paths("use crate::{core, keys}; x = crate::journal::f(); y::crate::no"),
        ["core", "journal", "keys"].map(String::from).into()
    );
}

#[test]
fn the_ledger_rooms_have_no_circle() {
    let (graph, _) = room_graph(&crate_src("ledger"));
    assert!(graph.contains_key("core") && graph.contains_key("single"));
    assert_eq!(find_cycle(&graph), None, "room graph: {graph:#?}");
}

#[test]
fn the_ledger_core_knows_no_other_room_and_does_no_io() {
    let (graph, code) = room_graph(&crate_src("ledger"));
    assert_eq!(
        graph["core"],
        BTreeSet::new(),
        "core depends on other rooms"
    );
    for forbidden in [
        "std::fs",
        "std::thread",
        "std::net",
        "std::io",
        "tokio",
        "crossbeam",
        "fjall",
        "foundationdb",
        "SystemTime",
        "Instant",
    ] {
        assert!(!code["core"].contains(forbidden), "core uses {forbidden}");
    }
}

#[test]
fn the_gateway_rooms_have_no_circle() {
    let (graph, _) = room_graph(&crate_src("partners-gateway"));
    assert_eq!(find_cycle(&graph), None, "room graph: {graph:#?}");
}

#[test]
fn the_gateway_operations_and_programme_know_no_http() {
    let (graph, code) = room_graph(&crate_src("partners-gateway"));
    for room in ["ops", "programme"] {
        for forbidden in ["axum", "tower", "hyper", "reqwest"] {
            assert!(!code[room].contains(forbidden), "{room} uses {forbidden}");
        }
        assert!(!graph[room].contains("api"), "{room} depends on api");
        assert!(!graph[room].contains("server"), "{room} depends on server");
    }
    assert!(
        !graph["programme"].contains("ops"),
        "programme depends on ops"
    );
}

//! Architecture invariants, checked against the real dependency graph (`cargo tree`) and the
//! sources.
//!
//! 1. `graven-core` is pure: no async runtime, no network or filesystem crate, no randomness,
//!    no clock. Its whole dependency closure must stay inside an allow-list; anything new must
//!    be reviewed and added here on purpose.
//! 2. The verifier never depends on the writer: `graven-verify` depends on `graven-core`,
//!    `graven-fs` (the standard-library-only file layer, for its trust store) and `graven-tsa`
//!    (time-stamp tokens, without its HTTP client) only of ours, and the writer (`graven-tlog`)
//!    does not depend on the verifier by default.
//! 3. Dependencies point down: `graven-engine` and `graven-auth` never depend on an HTTP
//!    framework (axum, hyper, tower) or on each other; `graven-api` is serde only.
//! 4. No import cycle between the modules of any crate of the workspace (a module is a source
//!    file; an edge is a `crate::`, `super::` or child-module path it names outside its tests),
//!    the crate root included.
//! 5. The test kit (`graven-testkit`) is a dev-dependency only: no crate depends on it through
//!    a normal or build dependency, with any feature on, so nothing shipped carries fixtures.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::collections::BTreeSet;
use std::process::Command;

fn normal_deps(package: &str) -> BTreeSet<String> {
    let out = Command::new(env!("CARGO"))
        .args(["tree", "-p", package, "-e", "normal", "--prefix", "none", "-f", "{p}", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("running cargo tree");
    assert!(out.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Who depends on the test kit through a normal or build edge, with every feature of every
/// workspace crate on: `cargo tree --invert`, so the answer is the kit itself and nothing else.
#[test]
fn the_test_kit_is_a_dev_dependency_only() {
    let out = Command::new(env!("CARGO"))
        .args(["tree", "--workspace", "--all-features", "-e", "normal,build", "--invert", "graven-testkit"])
        .args(["--prefix", "none", "-f", "{p}", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("running cargo tree");
    assert!(out.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    let dependents: BTreeSet<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    let expected: BTreeSet<String> = ["graven-testkit".to_owned()].into();
    assert_eq!(dependents, expected, "a crate depends on graven-testkit outside its tests");
}

/// Hashing, Ed25519, base64, number formatting, error derive, and their own internals.
const CORE_ALLOWED: &[&str] = &[
    "graven-core",
    "base64",
    "block-buffer",
    "cfg-if",
    "const-oid",
    "cpufeatures",
    "crypto-common",
    "curve25519-dalek",
    "curve25519-dalek-derive",
    "digest",
    "ed25519",
    "ed25519-dalek",
    "hybrid-array",
    "proc-macro2",
    "quote",
    "ryu-js",
    "sha2",
    "signature",
    "subtle",
    "syn",
    "thiserror",
    "thiserror-impl",
    "typenum",
    "unicode-ident",
    "zeroize",
];

#[test]
fn core_has_no_io_or_async_dependency() {
    let deps = normal_deps("graven-core");
    assert!(deps.contains("sha2"), "cargo tree output not understood: {deps:?}");
    let unexpected: Vec<&String> = deps.iter().filter(|d| !CORE_ALLOWED.contains(&d.as_str())).collect();
    assert!(
        unexpected.is_empty(),
        "graven-core grew dependencies {unexpected:?}. The core must stay free of I/O, async, \
         randomness and clocks; move that code to another crate, or review and extend CORE_ALLOWED"
    );
    for banned in
        ["tokio", "mio", "futures", "libc", "getrandom", "rand", "ureq", "graven-tlog", "graven-verify"]
    {
        assert!(!deps.contains(banned), "graven-core depends on {banned}");
    }
}

#[test]
fn verifier_does_not_depend_on_the_writer() {
    let deps = normal_deps("graven-verify");
    assert!(deps.contains("graven-core"));
    assert!(!deps.contains("graven-tlog"), "graven-verify must not depend on the writer (graven-tlog)");
    assert!(!deps.contains("tokio"), "graven-verify is a blocking client; keep async out of it");
}

/// Our crates in the normal dependency closure of `package`, besides itself.
fn ours(deps: &BTreeSet<String>, package: &str) -> Vec<String> {
    deps.iter().filter(|d| d.starts_with("graven") && *d != package).cloned().collect()
}

#[test]
fn the_verifier_depends_on_the_core_the_file_layer_and_trusted_time_only() {
    let deps = normal_deps("graven-verify");
    assert_eq!(
        ours(&deps, "graven-verify"),
        ["graven-core", "graven-fs", "graven-tsa"],
        "graven-verify's own dependencies"
    );
    // Time-stamp tokens are checked offline (graven-verify takes graven-tsa without its TSA
    // client), and graven-tsa stands on the core alone.
    let tsa = normal_deps("graven-tsa");
    assert_eq!(ours(&tsa, "graven-tsa"), ["graven-core"], "graven-tsa's own dependencies");
    // The file layer holds no log code and depends on nothing: the standard library only.
    let fs: Vec<String> = normal_deps("graven-fs").into_iter().collect();
    assert_eq!(fs, ["graven-fs"], "graven-fs must stay standard-library only");
    let writer = normal_deps("graven-tlog");
    assert!(
        !writer.contains("graven-verify"),
        "graven-tlog's library depends on the verifier only with its `verify` feature (StoreFetch)"
    );
}

#[test]
fn the_export_formats_sit_on_the_verifier_only() {
    let deps = normal_deps("graven-export");
    assert_eq!(
        ours(&deps, "graven-export"),
        ["graven-core", "graven-fs", "graven-tsa", "graven-verify"],
        "graven-export renders verified events; it needs no writer, engine or server"
    );
    assert!(!deps.contains("ureq"), "graven-export takes the verifier without its HTTP client");
}

const HTTP_FRAMEWORK: &[&str] =
    &["axum", "axum-core", "hyper", "hyper-util", "tower", "tower-service", "tower-layer"];

#[test]
fn engine_and_auth_have_no_http_framework_and_do_not_know_each_other() {
    let engine = normal_deps("graven-engine");
    assert!(engine.contains("graven-tlog"), "cargo tree output not understood: {engine:?}");
    let auth = normal_deps("graven-auth");
    for (name, deps) in [("graven-engine", &engine), ("graven-auth", &auth)] {
        for banned in HTTP_FRAMEWORK {
            assert!(!deps.contains(*banned), "{name} depends on {banned}: HTTP belongs to graven-server");
        }
        assert!(!deps.contains("graven-server"), "{name} depends on graven-server");
        assert!(!deps.contains("graven-api"), "{name} depends on the wire types");
    }
    assert!(!engine.contains("graven-auth"), "graven-engine depends on graven-auth");
    assert!(!auth.contains("graven-engine"), "graven-auth depends on graven-engine");
    assert!(!auth.contains("graven-index"), "graven-auth depends on the search index");
    assert!(!engine.contains("graven-verify") && !auth.contains("graven-verify"));
}

#[test]
fn the_wire_types_are_serde_only() {
    let deps = normal_deps("graven-api");
    let allowed =
        ["graven-api", "serde", "serde_core", "serde_derive", "proc-macro2", "quote", "syn", "unicode-ident"];
    let unexpected: Vec<&String> = deps.iter().filter(|d| !allowed.contains(&d.as_str())).collect();
    assert!(unexpected.is_empty(), "graven-api grew dependencies {unexpected:?}; it is serde only");
}

#[test]
fn the_server_is_the_only_crate_with_http_handlers_and_the_binary_is_on_top() {
    for package in [
        "graven-core",
        "graven-clock",
        "graven-fs",
        "graven-tlog",
        "graven-index",
        "graven-verify",
        "graven-export",
        "graven-s3",
    ] {
        let deps = normal_deps(package);
        for ours in ["graven-engine", "graven-auth", "graven-server", "graven-api"] {
            assert!(!deps.contains(ours), "{package} depends on {ours}, which sits above it");
        }
    }
    let server = normal_deps("graven-server");
    for needed in ["graven-engine", "graven-auth", "graven-api", "axum"] {
        assert!(server.contains(needed), "graven-server is the HTTP layer over {needed}");
    }
}

/// The clock seam sits below everything: engine and auth share it without knowing each other.
#[test]
fn the_clock_depends_on_nothing() {
    let deps = normal_deps("graven-clock");
    assert_eq!(deps.into_iter().collect::<Vec<_>>(), ["graven-clock"], "graven-clock is std only");
    assert!(!normal_deps("graven-core").contains("graven-clock"), "the core reads no clock");
}

/// The witness stands on the core and on the writer's `Fs` trait (with the file layer under it)
/// only: it knows nothing of the log server, its engine or its credentials (any C2SP log can use
/// it).
#[test]
fn the_witness_depends_on_the_core_and_the_fs_trait_only() {
    let deps = normal_deps("graven-witness");
    assert_eq!(
        ours(&deps, "graven-witness"),
        ["graven-clock", "graven-core", "graven-fs", "graven-tlog"],
        "graven-witness's dependencies (graven-fs and the std-only graven-clock come through graven-tlog)"
    );
}

/// The log's side of witnessing stands on the core only: no engine, no server, no HTTP
/// framework (its consistency proofs come through its own trait).
#[test]
fn the_witness_client_depends_on_the_core_only() {
    let deps = normal_deps("graven-witness-client");
    assert_eq!(ours(&deps, "graven-witness-client"), ["graven-core"], "graven-witness-client's dependencies");
    assert!(!deps.contains("axum"), "graven-witness-client must not depend on axum");
}

/// The module a source file is: `src/lib.rs` and `src/main.rs` are the crate root (empty
/// path), `src/a/mod.rs` and `src/a.rs` are `a`, `src/a/b.rs` is `a::b`.
fn module_of(src: &std::path::Path, file: &std::path::Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "lib" | "main" | "mod") {
        parts.push(stem.to_owned());
    }
    parts
}

fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a file without comments, string literals' contents, and its test module.
fn code_of(text: &str) -> String {
    // The test module: `#[cfg(test)]`, perhaps more attributes, then `mod`.
    let test_module = text.match_indices("#[cfg(test)]").map(|(i, _)| i).find(|&i| {
        text[i..]
            .lines()
            .skip(1)
            .find(|l| !l.trim_start().starts_with("#["))
            .is_some_and(|l| l.starts_with("mod "))
    });
    let text = &text[..test_module.unwrap_or(text.len())];
    let mut out = String::with_capacity(text.len());
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            let start = i;
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            // A doc comment's intra-doc links name modules as surely as code does (rustdoc
            // resolves them, and a reader follows them): they count as edges.
            let comment = &text[start..i];
            if comment.starts_with("///") || comment.starts_with("//!") {
                for link in doc_links(comment) {
                    out.push_str(&format!(" {link}; "));
                }
            }
        } else if b[i] == b'"' {
            // Skip the literal (escapes included), keep the quotes.
            out.push('"');
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            out.push('"');
            i += 1;
        } else if b[i] == b'\'' && i + 2 < b.len() && (b[i + 2] == b'\'' || b[i + 1] == b'\\') {
            // A char literal such as '"' or '\\'.
            let end = text[i + 1..].find('\'').map_or(b.len(), |e| i + 2 + e);
            i = end;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// The targets of the intra-doc links in one doc-comment line: `[`a::b`]`, `[text](a::b)` and
/// `[text]: a::b`, for paths that start with `crate::` or `super::`.
fn doc_links(comment: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = comment;
    while let Some(open) = rest.find('[') {
        rest = &rest[open + 1..];
        let Some(close) = rest.find(']') else { break };
        let inner = rest[..close].trim_matches('`');
        let after = &rest[close + 1..];
        let target = if let Some(t) = after.strip_prefix('(') {
            t.split(')').next().unwrap_or("")
        } else if let Some(t) = after.strip_prefix(": ") {
            t.trim()
        } else {
            inner
        };
        let target = target.trim_matches('`').trim_end_matches("()").trim_end_matches('!');
        if (target.starts_with("crate::") || target.starts_with("super::"))
            && target.chars().all(|c| c.is_alphanumeric() || c == '_' || c == ':')
        {
            out.push(target.to_owned());
        }
        rest = after;
    }
    out
}

/// The module paths a use tree such as `a::{b, c::{d, e}}` names, each as segments.
fn expand(tree: &str, prefix: &[String], out: &mut Vec<Vec<String>>) {
    let tree = tree.trim();
    if let Some(i) = tree.find('{') {
        let head: Vec<String> =
            tree[..i].split("::").map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
        let mut p = prefix.to_vec();
        p.extend(head);
        let inner = &tree[i + 1..tree.rfind('}').unwrap_or(tree.len())];
        let (mut depth, mut start) = (0, 0);
        for (k, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(&inner[start..k], &p, out);
                    start = k + 1;
                }
                _ => {}
            }
        }
        expand(&inner[start..], &p, out);
    } else {
        let mut p = prefix.to_vec();
        p.extend(
            tree.split("::")
                .map(|s| s.split_whitespace().next().unwrap_or("").to_owned())
                .filter(|s| !s.is_empty()),
        );
        out.push(p);
    }
}

/// Every path of `code` that starts at `start` (`crate`, `super`, or a child module's name):
/// `start::a::b` in an expression or a use tree, as the segments after `start`.
fn paths_from(code: &str, start: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let needle = format!("{start}::");
    let mut from = 0;
    while let Some(i) = code[from..].find(&needle) {
        let at = from + i;
        from = at + needle.len();
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let rest = &code[from..];
        if rest.starts_with('{') {
            let mut depth = 0;
            let mut end = rest.len();
            for (k, c) in rest.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = k + 1;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            expand(&rest[..end], &[], &mut out);
        } else {
            let seg: String =
                rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
            out.push(seg.split("::").filter(|s| !s.is_empty()).map(str::to_owned).collect());
        }
    }
    out
}

/// The module edges of one crate: (from, to), both module paths joined with `::` (the crate
/// root is the empty path).
fn module_edges(src: &std::path::Path) -> (BTreeSet<String>, BTreeSet<(String, String)>) {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: Vec<(Vec<String>, String)> = files
        .iter()
        .filter(|f| !f.components().any(|c| c.as_os_str() == "bin"))
        .map(|f| (module_of(src, f), code_of(&std::fs::read_to_string(f).unwrap())))
        .collect();
    let known: BTreeSet<Vec<String>> = modules.iter().map(|(m, _)| m.clone()).collect();
    let resolve = |path: Vec<String>| -> Option<Vec<String>> {
        (0..=path.len()).rev().map(|n| path[..n].to_vec()).find(|p| known.contains(p))
    };
    let mut edges = BTreeSet::new();
    for (module, code) in &modules {
        let mut targets: Vec<Vec<String>> = paths_from(code, "crate");
        // `super::x` from a file module is its parent's `x`.
        if let Some((_, parent)) = module.split_last() {
            for p in paths_from(code, "super") {
                targets.push(parent.iter().cloned().chain(p).collect());
            }
        }
        // A child module named by a relative path (`state::finish` in `http/mod.rs`).
        for child in known.iter().filter(|k| k.len() == module.len() + 1 && k.starts_with(module)) {
            let name = child.last().unwrap();
            for p in paths_from(code, name) {
                targets.push(child.iter().cloned().chain(p).collect());
            }
        }
        for t in targets {
            if let Some(to) = resolve(t)
                && &to != module
            {
                edges.insert((module.join("::"), to.join("::")));
            }
        }
    }
    (known.iter().map(|k| k.join("::")).collect(), edges)
}

/// A cycle of the graph, if it has one.
fn find_cycle(nodes: &BTreeSet<String>, edges: &BTreeSet<(String, String)>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        edges: &BTreeSet<(String, String)>,
        state: &mut std::collections::BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_owned(), 1);
        stack.push(n.to_owned());
        for (_, to) in edges.iter().filter(|(f, _)| f == n) {
            match state.get(to).copied().unwrap_or(0) {
                1 => {
                    let at = stack.iter().position(|s| s == to).unwrap();
                    let mut cycle = stack[at..].to_vec();
                    cycle.push(to.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(to, edges, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.to_owned(), 2);
        None
    }
    let mut state = std::collections::BTreeMap::new();
    for n in nodes {
        if state.get(n).copied().unwrap_or(0) == 0
            && let Some(c) = visit(n, edges, &mut state, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

#[test]
fn the_cycle_check_sees_cycles() {
    let nodes: BTreeSet<String> = ["a", "b", "c"].map(str::to_owned).into();
    let edge = |f: &str, t: &str| (f.to_owned(), t.to_owned());
    let mut edges: BTreeSet<_> = [edge("a", "b"), edge("b", "c")].into();
    assert_eq!(find_cycle(&nodes, &edges), None);
    edges.insert(edge("c", "a"));
    assert_eq!(find_cycle(&nodes, &edges).unwrap().len(), 4);
    let mut found = Vec::new();
    expand("{x::{y, z::{w, v}}, q}", &[], &mut found);
    assert_eq!(found, [vec!["x", "y"], vec!["x", "z", "w"], vec!["x", "z", "v"], vec!["q"]]);
    let code = code_of("use crate::a::B; // crate::zz\nfn f() { crate::b::c(); let s = \"crate::x\"; }");
    let got: Vec<Vec<String>> = paths_from(&code, "crate");
    assert_eq!(got, [vec!["a", "B"], vec!["b", "c"]]);
    // Intra-doc links are edges; a path merely in code format is not.
    let code = code_of(
        "/// See [`crate::d::E`], [the f](crate::f) and `crate::g`.\n//! [h]: crate::h::I\nfn x() {}",
    );
    let got: Vec<Vec<String>> = paths_from(&code, "crate");
    assert_eq!(got, [vec!["d", "E"], vec!["f"], vec!["h", "I"]]);
}

#[test]
fn no_module_import_cycle_in_any_crate() {
    let crates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut checked = 0;
    let mut report = Vec::new();
    for e in std::fs::read_dir(crates).unwrap() {
        let dir = e.unwrap().path();
        let src = dir.join("src");
        if !src.is_dir() {
            continue;
        }
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let (nodes, edges) = module_edges(&src);
        // Single-file crates have one module; every other crate must show more, or the walk is broken.
        let single_file = ["graven-loadgen", "graven-api", "graven-clock"];
        assert!(nodes.len() > 1 || single_file.contains(&name.as_str()), "{name}: {nodes:?}");
        checked += 1;
        // A cycle through the crate root (shown as an empty name) counts like any other: no
        // crate root holds what its own modules use.
        if let Some(cycle) = find_cycle(&nodes, &edges) {
            report.push(format!("{name}: {}", cycle.join(" -> ")));
        }
        // And between the crate's top-level modules (a directory module counted whole): `http`
        // may not use `audit` if `audit` uses anything in `http`.
        let top = |m: &str| m.split("::").next().unwrap_or("").to_owned();
        let top_nodes: BTreeSet<String> = nodes.iter().map(|n| top(n)).collect();
        let top_edges: BTreeSet<(String, String)> = edges
            .iter()
            .map(|(a, b)| (top(a), top(b)))
            .filter(|(a, b)| a != b && !a.is_empty() && !b.is_empty())
            .collect();
        if let Some(cycle) = find_cycle(&top_nodes, &top_edges) {
            report.push(format!("{name} (top-level modules): {}", cycle.join(" -> ")));
        }
    }
    assert!(checked >= 11, "only {checked} crates found");
    assert!(report.is_empty(), "module import cycles (a module is a source file):\n{}", report.join("\n"));
}

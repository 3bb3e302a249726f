//! The IAM policy in the docs is the one the code needs: every S3 operation Graven's code calls
//! is in `graven_s3::iam::S3_CALLS` (with its IAM action), every entry there is still called,
//! and docs/scale-out.md prints exactly the policies built from that table.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use graven_s3::iam;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The S3 operations called in `src`, as the SDK's fluent builders are called: an operation is
/// a method with no arguments followed by `.bucket(` (every S3 operation Graven calls names its
/// bucket), or, in a file that names `aws_sdk_s3` or `graven_s3`, a method called on something
/// named `client` / `client()`. Whitespace is ignored, so calls split over lines count.
fn operations_called(src: &str) -> BTreeSet<String> {
    let flat: String = src.chars().filter(|c| !c.is_whitespace()).collect();
    let ident_before = |end: usize| -> Option<String> {
        let start = flat[..end].rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))? + 1;
        (flat.as_bytes()[start - 1] == b'.' && start < end).then(|| flat[start..end].to_owned())
    };
    let mut ops = BTreeSet::new();
    for (i, _) in flat.match_indices("().bucket(") {
        ops.extend(ident_before(i));
    }
    let s3_file = flat.contains("aws_sdk_s3") || flat.contains("graven_s3");
    for pat in ["client.", "client()."].into_iter().filter(|_| s3_file) {
        for (i, _) in flat.match_indices(pat) {
            let rest = &flat[i + pat.len()..];
            let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if rest[name.len()..].starts_with("()") && !name.is_empty() {
                ops.insert(name);
            }
        }
    }
    ops
}

#[test]
fn the_scanner_sees_calls_split_over_lines() {
    let src = "use aws_sdk_s3::Client;\nlet r = self\n    .client\n    .put_object()\n    .bucket(&b);\nc.get_object()\n .bucket(b);";
    let ops = operations_called(src);
    assert_eq!(ops, BTreeSet::from(["get_object".to_owned(), "put_object".to_owned()]));
}

/// Graven's own code: every crate's `src` but the test kit's (a dev-dependency that sets up
/// buckets for tests and is in no binary).
#[test]
fn every_s3_operation_the_code_calls_is_in_the_table() {
    let mut files = Vec::new();
    for e in std::fs::read_dir(workspace().join("crates")).unwrap() {
        let dir = e.unwrap().path();
        if dir.file_name().is_some_and(|n| n == "graven-testkit") || !dir.join("src").is_dir() {
            continue;
        }
        rust_files(&dir.join("src"), &mut files);
    }
    assert!(files.len() > 50, "found only {} source files", files.len());
    let known: BTreeSet<&str> = iam::S3_CALLS.iter().map(|c| c.operation).collect();
    let mut in_store = BTreeSet::new();
    for f in &files {
        let ops = operations_called(&std::fs::read_to_string(f).unwrap());
        for op in &ops {
            assert!(
                known.contains(op.as_str()),
                "{} calls S3 operation {op}, which graven_s3::iam::S3_CALLS does not list: add it with its IAM action, then update docs/scale-out.md",
                f.display()
            );
        }
        if f.starts_with(workspace().join("crates/graven-s3/src")) {
            in_store.extend(ops);
        }
    }
    for op in known {
        assert!(in_store.contains(op), "S3_CALLS lists {op}, which crates/graven-s3/src no longer calls");
    }
}

#[test]
fn the_docs_print_the_policies_the_table_builds() {
    let doc = std::fs::read_to_string(workspace().join("docs/scale-out.md")).unwrap();
    for (what, policy) in [
        ("serve", iam::serve_policy("audit-bucket", "audit/main")),
        ("verify", iam::verify_policy("audit-bucket", "audit/main")),
    ] {
        assert!(
            doc.contains(&format!("```json\n{policy}\n```")),
            "docs/scale-out.md does not print the {what} policy the code needs; it is:\n{policy}"
        );
    }
    for c in iam::S3_CALLS {
        let row = format!(
            "| `{}` | {} |",
            c.operation,
            c.actions.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ")
        );
        assert!(doc.contains(&row), "docs/scale-out.md lacks the row starting {row}");
    }
    for never in iam::NEVER {
        let policies = [
            iam::serve_policy("audit-bucket", "audit/main"),
            iam::verify_policy("audit-bucket", "audit/main"),
        ];
        assert!(policies.iter().all(|p| !p.contains(never)));
    }
}

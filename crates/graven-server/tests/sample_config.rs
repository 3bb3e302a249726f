//! The sample config file `packaging/graven.toml` against the server's own config resolver:
//! it resolves as shipped and with every commented setting turned on; every key the resolver
//! accepts is in it (so a key added to `FileConfig` without being documented there fails
//! here), and none that it does not accept; and each setting marked `# default` shows the
//! value the server uses when the key is absent.
//!
//! The sample's conventions: a commented setting is a line that starts with `#` directly
//! followed by a key or a table header (`#listen = ...`, `#[oidc]`); prose starts with `# `.
//! A setting's line ends with `# default` (the value used when absent) or `# example`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use graven_server::config::{ClientCaTable, FileConfig, Overrides, resolve};
use serde::de::{self, Deserialize, Deserializer, Visitor};

fn sample_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/graven.toml")
}

fn sample() -> String {
    std::fs::read_to_string(sample_path()).expect("reading packaging/graven.toml")
}

/// A commented setting (or table header) of the sample, uncommented; `None` for any other line.
fn setting(line: &str) -> Option<&str> {
    let rest = line.strip_prefix('#')?;
    rest.starts_with(|c: char| c.is_ascii_alphabetic() || c == '[').then_some(rest)
}

fn is_default(line: &str) -> bool {
    line.trim_end().ends_with("# default")
}

/// The sample with the commented settings `keep` selects turned on.
fn uncommented(text: &str, keep: impl Fn(&str) -> bool) -> String {
    let mut out = String::new();
    for line in text.lines() {
        match setting(line) {
            Some(s) if keep(s) => out.push_str(s),
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// Files the settings name and the resolver reads (the witness policy, the TSA's roots), made
/// here; every other path is only stored at this stage.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Files {
        let dir = tempfile::tempdir().unwrap();
        let log = graven_core::note::SignerKey::from_seed("audit.example.com/prod", [3; 32]).unwrap();
        let w = graven_core::cosignature::Cosigner::from_seed("w1.example", [1; 32]).unwrap();
        std::fs::write(
            dir.path().join("witness-policy"),
            format!("log {}\nwitness w1 {} https://w1.example/\nquorum w1\n", log.verifier(), w.verifier()),
        )
        .unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name.push(rcgen::DnType::CommonName, "Test TSA root");
        p.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
        std::fs::write(dir.path().join("tsa-roots.pem"), p.self_signed(&key).unwrap().pem()).unwrap();
        Files { dir }
    }

    /// `text` with the paths of `witness_policy` and `tsa_cert` pointed at the files made here.
    fn point_at(&self, text: &str) -> String {
        let mut out = String::new();
        for line in text.lines() {
            let key = line.split('=').next().unwrap_or("").trim();
            let file = match key {
                "witness_policy" => Some("witness-policy"),
                "tsa_cert" => Some("tsa-roots.pem"),
                _ => None,
            };
            match file {
                Some(f) => {
                    out.push_str(&format!("{key} = {:?}", self.dir.path().join(f).display().to_string()))
                }
                None => out.push_str(line),
            }
            out.push('\n');
        }
        out
    }

    fn resolve(&self, name: &str, text: &str) -> Result<graven_server::config::Config, String> {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        resolve(Overrides { config: Some(path), ..Default::default() }).map_err(|e| e.to_string())
    }
}

#[test]
fn the_sample_resolves_as_shipped_and_with_every_setting_on() {
    let files = Files::new();
    let shipped = files.resolve("shipped.toml", &sample()).expect("the sample as shipped");
    assert_eq!(shipped.listen.to_string(), "127.0.0.1:7878");
    assert_eq!(shipped.data, PathBuf::from("/var/lib/graven"), "where the systemd unit's StateDirectory is");

    let all = files.point_at(&uncommented(&sample(), |_| true));
    let c = files.resolve("all.toml", &all).unwrap_or_else(|e| panic!("every setting on: {e}\n{all}"));
    // Each part of the configuration the sample documents is on.
    assert!(c.tls.as_ref().is_some_and(|t| !t.client_cas.is_empty() && !t.spiffe_ids.is_empty()));
    assert!(c.oidc.as_ref().is_some_and(|o| !o.issuers.is_empty() && !o.policies.is_empty()));
    assert!(c.storage.is_some() && c.key.is_some() && c.witnessing.is_some() && c.timestamping.is_some());
    assert!(c.syslog.as_ref().is_some_and(|s| s.identity.is_some()));
    // `[denied_records]` shows the limiter's defaults.
    assert_eq!(
        format!("{:?}", c.denied_limits),
        format!("{:?}", graven_auth::ratelimit::Limits::default()),
        "a `# default` under [denied_records] is not the limiter's default"
    );
}

/// Every setting marked `# default` holds the value the server uses when the key is absent: the
/// configuration with every setting on resolves to the same thing with the top-level defaults
/// removed. (Inside `[oidc]` the resolver keeps what the file said, so its defaults are
/// compared with the federation's in `graven-auth`'s own documentation, not here.)
#[test]
fn the_defaults_the_sample_shows_are_the_servers_defaults() {
    let files = Files::new();
    let text = sample();
    let tables_start = text.lines().position(|l| setting(l).is_some_and(|s| s.starts_with('['))).unwrap();
    let defaults: Vec<&str> =
        text.lines().take(tables_start).filter(|l| setting(l).is_some() && is_default(l)).collect();
    assert!(defaults.len() >= 20, "the sample shows the defaults of the top-level keys: {defaults:?}");
    let with = files.point_at(&uncommented(&text, |_| true));
    let without: String = {
        let lines: Vec<&str> = text.lines().collect();
        let mut kept = String::new();
        for (i, line) in lines.iter().enumerate() {
            if i < tables_start && setting(line).is_some() && is_default(line) {
                continue;
            }
            kept.push_str(setting(line).unwrap_or(line));
            kept.push('\n');
        }
        files.point_at(&kept)
    };
    let with = format!("{:?}", files.resolve("with.toml", &with).unwrap());
    let without = format!("{:?}", files.resolve("without.toml", &without).unwrap());
    assert_eq!(with, without, "a `# default` in packaging/graven.toml is not the server's default");
}

#[test]
fn every_key_the_server_accepts_is_in_the_sample_and_no_other() {
    let accepted = accepted_keys();
    let text = uncommented(&sample(), |_| true);
    let table: toml::Table = toml::from_str(&text).expect("the sample with every setting on is TOML");
    let mut documented = BTreeSet::new();
    collect(&toml::Value::Table(table), "", &accepted, &mut documented);
    let missing: Vec<_> = accepted.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "keys the server accepts that packaging/graven.toml does not document (add each, commented, with what it does, its default and its limits): {missing:?}"
    );
    let unknown: Vec<_> = documented.difference(&accepted).collect();
    assert!(unknown.is_empty(), "keys in packaging/graven.toml the server does not accept: {unknown:?}");
    // The prose of each key: at least one comment line right above its first setting.
    let text = sample();
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if let Some(s) =
            setting(line).or_else(|| (!line.starts_with('#') && line.contains('=')).then_some(line))
            && !s.starts_with('[')
            && i > 0
        {
            let above = lines[i - 1];
            assert!(
                above.starts_with("# ")
                    || setting(above).is_some()
                    || (!above.starts_with('#') && above.contains('=')),
                "packaging/graven.toml line {}: {line:?} has no comment saying what it does",
                i + 1
            );
        }
    }
}

/// Dotted key paths of a TOML value, descending into tables and arrays of tables, except into
/// a key the server takes as a free-form map (`spiffe_ids`, `claims`).
fn collect(v: &toml::Value, at: &str, accepted: &BTreeSet<String>, out: &mut BTreeSet<String>) {
    let descend = at.is_empty() || accepted.iter().any(|k| k.starts_with(&format!("{at}.")));
    match v {
        toml::Value::Table(t) if descend => {
            for (k, v) in t {
                let path = if at.is_empty() { k.clone() } else { format!("{at}.{k}") };
                out.insert(path.clone());
                collect(v, &path, accepted, out);
            }
        }
        toml::Value::Array(items) if descend => {
            for item in items {
                collect(item, at, accepted, out);
            }
        }
        _ => {}
    }
}

/// Every key the resolver's file format accepts, as dotted paths: the fields of `FileConfig`
/// and of the tables it nests, read from their serde derives (so a new field shows up here
/// without anyone listing it).
fn accepted_keys() -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let tables = [
        ("", fields::<FileConfig>()),
        ("client_ca", fields::<ClientCaTable>()),
        ("oidc", fields::<graven_auth::oidc::OidcConfig>()),
        ("oidc.issuer", fields::<graven_auth::oidc::IssuerConfig>()),
        ("oidc.policy", fields::<graven_auth::oidc::PolicyConfig>()),
    ];
    for (at, names) in tables {
        assert!(!names.is_empty(), "no fields read for {at:?}");
        for n in names {
            keys.insert(if at.is_empty() { n.to_owned() } else { format!("{at}.{n}") });
        }
    }
    keys
}

/// The field names a derived `Deserialize` of a struct asks for: a deserializer that answers
/// only `deserialize_struct`, and stops there with the names it was given.
fn fields<T: for<'de> Deserialize<'de>>() -> Vec<&'static str> {
    match T::deserialize(FieldNames) {
        Err(Stop(names)) => names,
        Ok(_) => panic!("deserialized a struct from nothing"),
    }
}

struct FieldNames;

#[derive(Debug)]
struct Stop(Vec<&'static str>);

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "fields {:?}", self.0)
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Stop(Vec::new())
    }
}

impl<'de> Deserializer<'de> for FieldNames {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(Stop(Vec::new()))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Stop> {
        Err(Stop(fields.to_vec()))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

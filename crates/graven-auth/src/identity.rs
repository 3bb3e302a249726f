//! The identity model: who may write to or read the log, and the rules its fields obey.
//!
//! Pure: no I/O and no clock. Times are Unix milliseconds handed in by the caller. Every
//! field is bounded, so a registry file and every event describing a change stay small.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const MAX_ID_LEN: usize = 256;
pub const MAX_OWNER_LEN: usize = 256;
pub const MAX_DESCRIPTION_LEN: usize = 1024;
pub const MAX_LABELS: usize = 32;
pub const MAX_LABEL_KEY_LEN: usize = 63;
pub const MAX_LABEL_VALUE_LEN: usize = 256;
pub const MAX_PATTERNS: usize = 32;
pub const MAX_PATTERN_LEN: usize = 128;
/// Usable API keys (active or retiring) one identity may hold at once.
pub const MAX_KEYS_PER_IDENTITY: usize = 32;
/// API key records one identity may ever have, usable or not. Revoked and expired keys are
/// kept for good (a key id that stopped working must never work again), so this bounds what an
/// identity's record can grow to; past it, the identity gets no more keys.
pub const MAX_KEY_RECORDS_PER_IDENTITY: usize = 4096;
/// Identities in one registry.
pub const MAX_IDENTITIES: usize = 100_000;

/// What sort of non-human identity this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    ServiceAccount,
    ApiKey,
    Bot,
    CiJob,
    Workload,
    Agent,
    Integration,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ServiceAccount => "service_account",
            Kind::ApiKey => "api_key",
            Kind::Bot => "bot",
            Kind::CiJob => "ci_job",
            Kind::Workload => "workload",
            Kind::Agent => "agent",
            Kind::Integration => "integration",
        }
    }
}

/// What an identity may do. No role may alter or delete an event: there is no such operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Append events, attributed to itself, optionally only actions matching its patterns.
    Writer,
    /// Read, search, prove, export, stream.
    Auditor,
    /// Everything an auditor may, append as itself, and manage identities and keys.
    Admin,
    /// Report, on a platform's source endpoint (`/v1/sources/<type>`), events of the subjects
    /// it vouches for: each stored with that subject as its actor, marked `attested_by` this
    /// identity ([`SourceGrant`] says which platforms and which subjects). Nothing else.
    Source,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Writer => "writer",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
            Role::Source => "source",
        }
    }
}

/// The platforms a source identity may report from, by the name of their endpoint.
pub const SOURCE_TYPES: &[&str] = &["kubernetes", "openbao", "syslog", "otlp", "cloudtrail"];

/// What a `source` identity may report: from which platforms, and for which subjects (glob
/// patterns over the subject's id, e.g. `system:serviceaccount:*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceGrant {
    pub types: Vec<String>,
    pub subjects: Vec<String>,
}

impl SourceGrant {
    pub fn allows_type(&self, t: &str) -> bool {
        self.types.iter().any(|x| x == t)
    }

    pub fn allows_subject(&self, id: &str) -> bool {
        self.subjects.iter().any(|p| glob_match(p, id))
    }

    fn check(&self) -> Result<(), FieldError> {
        if self.types.is_empty() || self.types.len() > SOURCE_TYPES.len() {
            return Err(bad(
                "source.types",
                format!("name 1 to {} of: {}", SOURCE_TYPES.len(), SOURCE_TYPES.join(", ")),
            ));
        }
        for t in &self.types {
            if !SOURCE_TYPES.contains(&t.as_str()) {
                return Err(bad(
                    "source.types",
                    format!("{t:?} is not a source; known: {}", SOURCE_TYPES.join(", ")),
                ));
            }
        }
        if self.subjects.is_empty() || self.subjects.len() > MAX_PATTERNS {
            return Err(bad(
                "source.subjects",
                format!(
                    "give 1 to {MAX_PATTERNS} subject patterns, e.g. \"system:serviceaccount:*\" (\"*\" for any)"
                ),
            ));
        }
        for p in &self.subjects {
            check_pattern(p).map_err(|e| bad("source.subjects", e.why))?;
        }
        Ok(())
    }
}

/// `revoked` is final; `disabled` can be enabled again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Active,
    Disabled,
    Revoked,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Disabled => "disabled",
            Status::Revoked => "revoked",
        }
    }
}

/// One API key as stored: never the key itself, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRecord {
    pub key_id: String,
    /// Lowercase hex SHA-256 of the whole key string.
    pub sha256: String,
    pub created_ms: i64,
    /// The key stops working at this instant (set by an expiry or by a rotation's overlap).
    #[serde(default)]
    pub expires_ms: Option<i64>,
    #[serde(default)]
    pub revoked_ms: Option<i64>,
}

impl KeyRecord {
    pub fn usable(&self, now_ms: i64) -> bool {
        self.revoked_ms.is_none() && self.expires_ms.is_none_or(|e| now_ms < e)
    }
}

/// One registered Ed25519 public key as stored in `identities.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKeyRecord {
    pub key_id: String,
    /// Always `ed25519`.
    pub alg: String,
    /// The 32 raw key bytes, standard base64.
    pub public_key: String,
    pub created_ms: i64,
    #[serde(default)]
    pub revoked_ms: Option<i64>,
}

/// One identity as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityRecord {
    pub id: String,
    pub kind: Kind,
    pub owner: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub allowed_actions: Vec<String>,
    pub role: Role,
    pub status: Status,
    pub created_ms: i64,
    #[serde(default)]
    pub status_changed_ms: Option<i64>,
    #[serde(default)]
    pub last_seen_ms: Option<i64>,
    #[serde(default)]
    pub keys: Vec<KeyRecord>,
    /// Ed25519 public keys for request signatures and client-signed events.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub public_keys: Vec<PublicKeyRecord>,
    /// For the `source` role: what it may report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceGrant>,
}

/// A field that breaks a rule: `field` names it, `why` says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` {why}")]
pub struct FieldError {
    pub field: String,
    pub why: String,
}

fn bad(field: impl Into<String>, why: impl Into<String>) -> FieldError {
    FieldError { field: field.into(), why: why.into() }
}

/// An identity ID: 1 to 256 bytes of `A-Z a-z 0-9 . _ - : / @ +`, starting with a letter or
/// digit. Covers `svc:payments-worker` and `spiffe://example.org/ns/prod/sa/deployer`.
pub fn check_id(id: &str) -> Result<(), FieldError> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(bad("id", format!("must be 1 to {MAX_ID_LEN} bytes long")));
    }
    if !id.as_bytes()[0].is_ascii_alphanumeric() {
        return Err(bad("id", "must start with a letter or digit, e.g. svc:payments-worker"));
    }
    if id.starts_with("graven:") {
        return Err(bad("id", "the graven: prefix is reserved for the server's own records"));
    }
    if let Some(c) = id.chars().find(|c| !(c.is_ascii_alphanumeric() || "._-:/@+".contains(*c))) {
        return Err(bad(
            "id",
            format!("contains {c:?}; use letters, digits and . _ - : / @ + (e.g. svc:payments-worker)"),
        ));
    }
    Ok(())
}

fn check_text(field: &str, s: &str, max: usize, required: bool) -> Result<(), FieldError> {
    if required && s.trim().is_empty() {
        return Err(bad(field, "is required and must not be blank"));
    }
    if s.len() > max {
        return Err(bad(field, format!("is longer than {max} bytes")));
    }
    if s.chars().any(char::is_control) {
        return Err(bad(field, "must not contain control characters"));
    }
    Ok(())
}

/// An allowed-action pattern: 1 to 128 bytes of printable ASCII without spaces; `*` matches
/// any run of characters (dots included), `?` any one character.
pub fn check_pattern(p: &str) -> Result<(), FieldError> {
    if p.is_empty() || p.len() > MAX_PATTERN_LEN {
        return Err(bad("allowed_actions", format!("patterns must be 1 to {MAX_PATTERN_LEN} bytes")));
    }
    if !p.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad("allowed_actions", format!("pattern {p:?} must be printable ASCII without spaces")));
    }
    Ok(())
}

/// The fields a client chooses when it creates an identity.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewIdentity {
    pub id: String,
    pub kind: Kind,
    pub owner: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub allowed_actions: Vec<String>,
    #[serde(default = "default_role")]
    pub role: Role,
    /// Required for, and only for, the `source` role.
    #[serde(default)]
    pub source: Option<SourceGrant>,
}

fn default_role() -> Role {
    Role::Writer
}

impl NewIdentity {
    /// Checks every field and builds the record, active, with no keys.
    pub fn into_record(self, now_ms: i64) -> Result<IdentityRecord, FieldError> {
        check_id(&self.id)?;
        check_text("owner", &self.owner, MAX_OWNER_LEN, true)?;
        check_text("description", &self.description, MAX_DESCRIPTION_LEN, false)?;
        if self.labels.len() > MAX_LABELS {
            return Err(bad("labels", format!("at most {MAX_LABELS} labels")));
        }
        for (k, v) in &self.labels {
            let key_ok = !k.is_empty()
                && k.len() <= MAX_LABEL_KEY_LEN
                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b));
            if !key_ok {
                return Err(bad(
                    format!("labels.{k}"),
                    format!("label keys are 1 to {MAX_LABEL_KEY_LEN} bytes of letters, digits and . _ - /"),
                ));
            }
            check_text(&format!("labels.{k}"), v, MAX_LABEL_VALUE_LEN, false)?;
        }
        if self.allowed_actions.len() > MAX_PATTERNS {
            return Err(bad("allowed_actions", format!("at most {MAX_PATTERNS} patterns")));
        }
        for p in &self.allowed_actions {
            check_pattern(p)?;
        }
        match (&self.role, &self.source) {
            (Role::Source, Some(g)) => g.check()?,
            (Role::Source, None) => {
                return Err(bad(
                    "source",
                    "the source role needs `source`: {\"types\": [\"kubernetes\"], \"subjects\": [\"system:serviceaccount:*\"]}",
                ));
            }
            (_, Some(_)) => return Err(bad("source", "only an identity with the source role has one")),
            (_, None) => {}
        }
        if self.role == Role::Source && !self.allowed_actions.is_empty() {
            return Err(bad(
                "allowed_actions",
                "a source reports its subjects' actions; it has no allowed actions",
            ));
        }
        Ok(IdentityRecord {
            id: self.id,
            kind: self.kind,
            owner: self.owner,
            description: self.description,
            labels: self.labels,
            allowed_actions: self.allowed_actions,
            role: self.role,
            status: Status::Active,
            created_ms: now_ms,
            status_changed_ms: None,
            last_seen_ms: None,
            keys: Vec::new(),
            public_keys: Vec::new(),
            source: self.source,
        })
    }
}

pub use graven_core::glob::glob_match;

/// Whether an identity with these patterns may log `action`. No patterns: any action.
pub fn action_allowed(patterns: &[String], action: &str) -> bool {
    patterns.is_empty() || patterns.iter().any(|p| glob_match(p, action))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_as_documented() {
        let yes = [
            ("deploy.*", "deploy.create"),
            ("deploy.*", "deploy.a.b"),
            ("deploy.*", "deploy."),
            ("*", ""),
            ("*", "anything.at.all"),
            ("*.read", "secret.read"),
            ("a?c", "abc"),
            ("a*b*c", "aXXbYYc"),
            ("a*b*c", "abbbc"),
            ("exact", "exact"),
            ("**", "x"),
            ("é*", "élan"),
        ];
        for (p, t) in yes {
            assert!(glob_match(p, t), "{p} should match {t}");
        }
        let no = [
            ("deploy.*", "deploy"),
            ("deploy.*", "undeploy.create"),
            ("deploy.*", "Deploy.create"),
            ("*.read", "secret.write"),
            ("a?c", "ac"),
            ("a?c", "abbc"),
            ("a*b*c", "aXXbYY"),
            ("exact", "exact.not"),
            ("", "x"),
        ];
        for (p, t) in no {
            assert!(!glob_match(p, t), "{p} should not match {t}");
        }
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // measures real time on purpose
    fn glob_is_fast_on_hostile_input() {
        let p = format!("{}b", "a*".repeat(60));
        let t = "a".repeat(1024);
        let start = std::time::Instant::now();
        assert!(!glob_match(&p, &t));
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn no_patterns_allow_everything_and_some_patterns_restrict() {
        assert!(action_allowed(&[], "anything"));
        let ps = vec!["deploy.*".to_owned(), "secret.read".to_owned()];
        assert!(action_allowed(&ps, "deploy.create"));
        assert!(action_allowed(&ps, "secret.read"));
        assert!(!action_allowed(&ps, "secret.write"));
    }

    #[test]
    fn ids_are_checked() {
        for ok in ["svc:payments-worker", "spiffe://example.org/ns/prod/sa/deployer", "bot@ci+1", "a"] {
            check_id(ok).unwrap();
        }
        for (bad_id, needle) in [
            ("", "1 to 256"),
            ("has space", "' '"),
            (":svc", "start"),
            ("svc\n", "'\\n'"),
            ("svc;drop", "';'"),
            ("graven:server", "reserved"),
        ] {
            let e = check_id(bad_id).unwrap_err().to_string();
            assert!(e.contains(needle), "{bad_id:?}: {e}");
        }
        assert!(check_id(&"a".repeat(257)).is_err());
        check_id(&"a".repeat(256)).unwrap();
    }

    fn new(id: &str) -> NewIdentity {
        NewIdentity {
            id: id.into(),
            kind: Kind::Bot,
            owner: "team-a".into(),
            description: String::new(),
            labels: BTreeMap::new(),
            allowed_actions: vec![],
            role: Role::Writer,
            source: None,
        }
    }

    #[test]
    fn a_source_needs_a_grant_and_only_a_source_has_one() {
        let grant = |types: &[&str], subjects: &[&str]| SourceGrant {
            types: types.iter().map(|s| s.to_string()).collect(),
            subjects: subjects.iter().map(|s| s.to_string()).collect(),
        };
        let mut n = new("src:k8s");
        n.role = Role::Source;
        assert_eq!(n.clone().into_record(0).unwrap_err().field, "source");
        n.source = Some(grant(&["kubernetes"], &["system:serviceaccount:*"]));
        let r = n.clone().into_record(0).unwrap();
        let g = r.source.unwrap();
        assert!(g.allows_type("kubernetes") && !g.allows_type("openbao"));
        assert!(g.allows_subject("system:serviceaccount:ci:deployer"));
        assert!(!g.allows_subject("admin") && !g.allows_subject("system:anonymous"));
        for (types, subjects, field) in [
            (vec!["jenkins"], vec!["*"], "source.types"),
            (vec![], vec!["*"], "source.types"),
            (vec!["kubernetes"], vec![], "source.subjects"),
            (vec!["kubernetes"], vec!["has space"], "source.subjects"),
        ] {
            let mut m = n.clone();
            m.source = Some(grant(&types, &subjects));
            assert_eq!(m.into_record(0).unwrap_err().field, field, "{types:?} {subjects:?}");
        }
        let mut m = n.clone();
        m.allowed_actions = vec!["k8s.*".into()];
        assert_eq!(m.into_record(0).unwrap_err().field, "allowed_actions");
        // A writer with a grant: refused.
        let mut w = new("svc:w");
        w.source = Some(grant(&["kubernetes"], &["*"]));
        assert_eq!(w.into_record(0).unwrap_err().field, "source");
    }

    #[test]
    fn new_identities_are_bounded() {
        let r = new("svc:a").into_record(5).unwrap();
        assert_eq!((r.status, r.created_ms, r.role), (Status::Active, 5, Role::Writer));
        let mut n = new("svc:a");
        n.owner = "  ".into();
        assert_eq!(n.into_record(0).unwrap_err().field, "owner");
        let mut n = new("svc:a");
        n.allowed_actions = (0..33).map(|i| format!("a{i}.*")).collect();
        assert_eq!(n.into_record(0).unwrap_err().field, "allowed_actions");
        let mut n = new("svc:a");
        n.allowed_actions = vec!["has space".into()];
        assert_eq!(n.into_record(0).unwrap_err().field, "allowed_actions");
        let mut n = new("svc:a");
        n.labels.insert("bad key".into(), "v".into());
        assert!(n.into_record(0).unwrap_err().field.starts_with("labels"));
        let mut n = new("svc:a");
        n.labels = (0..33).map(|i| (format!("k{i}"), "v".into())).collect();
        assert_eq!(n.into_record(0).unwrap_err().field, "labels");
    }

    #[test]
    fn unknown_fields_and_kinds_are_refused() {
        let e = serde_json::from_str::<NewIdentity>(r#"{"id":"a","kind":"bot","owner":"o","colour":"red"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("colour"), "{e}");
        let e = serde_json::from_str::<NewIdentity>(r#"{"id":"a","kind":"human","owner":"o"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("service_account"), "{e}");
    }

    #[test]
    fn key_usability_follows_expiry_and_revocation() {
        let mut k = KeyRecord {
            key_id: "k".into(),
            sha256: "x".into(),
            created_ms: 0,
            expires_ms: None,
            revoked_ms: None,
        };
        assert!(k.usable(100));
        k.expires_ms = Some(100);
        assert!(k.usable(99) && !k.usable(100));
        k.expires_ms = None;
        k.revoked_ms = Some(1);
        assert!(!k.usable(0));
    }
}

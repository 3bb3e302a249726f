//! A platform's audit record, read and mapped (docs/sources.md has each platform's table):
//! the event's fields as a client would send them, the platform's own fields, the subject the
//! record names, and the platform's id of the record. Pure: the server's source endpoints
//! check the grant, attest the subject, shape and commit; the fuzz targets call these with any
//! bytes.
//!
//! | module | platform |
//! |---|---|
//! | [`kubernetes`] | `audit.k8s.io/v1` `EventList` (the API server's audit webhook) |
//! | [`openbao`] | OpenBao (and Vault) audit entries (the `http` audit device) |
//! | [`cloudtrail`] | AWS CloudTrail log files (`{"Records": [...]}`) |

use serde_json::{Map, Value};

pub mod cloudtrail;
pub mod kubernetes;
pub mod openbao;

/// Longest platform record id (an `auditID`, a `request.id`, an `eventID`), in bytes.
pub const MAX_ID_LEN: usize = 256;

/// Why a record (or the body holding it) cannot be read: says what is wrong and where
/// (`items[3].stage is missing`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError(pub String);

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RecordError {}

pub(crate) fn bad(detail: String) -> RecordError {
    RecordError(detail)
}

/// The subject a record names, before it is marked attested: its id (what search finds), its
/// kind, and the platform's other fields about it (kept on the actor).
#[derive(Debug, Clone, PartialEq)]
pub struct Subject {
    pub id: String,
    pub kind: String,
    pub extra: Vec<(String, Value)>,
}

/// One platform record, mapped.
#[derive(Debug, Clone, PartialEq)]
pub struct Record<'a> {
    /// The event's fields as a client would send them (`action`, `resource`, `outcome`,
    /// `occurred_at`, `request_id`, `source`); `details.<platform>` is added by the server.
    pub event: Map<String, Value>,
    /// The platform's own fields that have no place in Graven's event, under
    /// `details.<platform>`.
    pub platform_fields: Map<String, Value>,
    /// The record as the platform sent it: kept whole when it fits.
    pub original: Value,
    /// Its bytes as received, whose SHA-256 is always kept.
    pub original_bytes: &'a [u8],
    /// The platform's own id of this record (with whatever else tells two records with one id
    /// apart, such as a Kubernetes stage): a record with an id already logged from the same
    /// source is not logged again.
    pub dedup_id: Option<String>,
    pub subject: Subject,
}

/// A comma-separated list of names from `allowed` (a query parameter such as `stages`):
/// `None` when it is empty or names something else.
pub fn parse_list<'a>(list: &'a str, allowed: &[&str]) -> Option<Vec<&'a str>> {
    let v: Vec<&str> = list.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    (!v.is_empty() && v.iter().all(|s| allowed.contains(s))).then_some(v)
}

/// The SHA-256 of `bytes`, in lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_name_only_what_is_allowed() {
        assert_eq!(parse_list("a, b", &["a", "b"]), Some(vec!["a", "b"]));
        assert_eq!(parse_list("a,,", &["a"]), Some(vec!["a"]));
        assert_eq!(parse_list("", &["a"]), None);
        assert_eq!(parse_list("a,c", &["a", "b"]), None);
    }
}

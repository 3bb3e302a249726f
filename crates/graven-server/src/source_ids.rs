//! The platform event ids a source has had logged (`http::sources`), remembered so that a
//! platform's retry of a batch is not logged twice. In memory and bounded: the oldest are
//! forgotten first. Rebuilt from the log's last [`MAX_REMEMBERED_EVENTS`] entries before a
//! node takes its first source request, so a retry that arrives after a restart is still
//! recognised: every reported leaf carries its source, platform and id.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

/// Platform event ids remembered per server, oldest forgotten first (about 100 bytes each).
pub const MAX_REMEMBERED_EVENTS: usize = 1 << 18;

/// The platform event ids already logged (or being logged) from each source: a digest of
/// (source identity, platform, event id, stage), and whether its commit is still in flight.
#[derive(Debug, Default)]
pub struct Seen {
    inner: Mutex<SeenInner>,
    /// Set once the ids of the log's last entries are in (the log's size then).
    pub rebuilt: tokio::sync::OnceCell<u64>,
}

#[derive(Debug, Default)]
struct SeenInner {
    state: HashMap<u128, bool>,
    order: VecDeque<u128>,
}

/// A key of the request is being logged by another request still in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InFlight;

impl Seen {
    /// Claims the keys of a request: `Ok(duplicates)` marks the rest in flight; `Err` if one
    /// is in flight in another request (the sender should retry a moment later).
    pub fn claim(&self, keys: &[u128]) -> Result<Vec<bool>, InFlight> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if keys.iter().any(|k| g.state.get(k) == Some(&false)) {
            return Err(InFlight);
        }
        // One at a time, so a key twice in one request is logged once.
        let mut dup = Vec::with_capacity(keys.len());
        for k in keys {
            let seen = g.state.contains_key(k);
            if !seen {
                g.state.insert(*k, false);
                g.order.push_back(*k);
            }
            dup.push(seen);
        }
        while g.order.len() > MAX_REMEMBERED_EVENTS {
            if let Some(old) = g.order.pop_front() {
                g.state.remove(&old);
            }
        }
        Ok(dup)
    }

    /// Settles the claimed keys: remembered as logged, or forgotten if the commit failed.
    pub fn settle(&self, keys: &[u128], logged: bool) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for k in keys {
            if logged {
                g.state.insert(*k, true);
            } else {
                g.state.remove(k);
            }
        }
        if !logged {
            let gone: std::collections::HashSet<u128> = keys.iter().copied().collect();
            g.order.retain(|k| !gone.contains(k));
        }
    }
}

/// The key of a platform event id (`dedup_id`, which tells apart whatever one platform id
/// covers, such as a Kubernetes record's stages) reported by one source.
impl Seen {
    /// Remembers keys of leaves already in the log, oldest first, as logged.
    pub fn remember_logged(&self, keys: &[u128]) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for k in keys {
            if g.state.insert(*k, true).is_none() {
                g.order.push_back(*k);
            }
        }
        while g.order.len() > MAX_REMEMBERED_EVENTS {
            if let Some(old) = g.order.pop_front() {
                g.state.remove(&old);
            }
        }
    }
}

/// The key of a leaf a source reported with a platform event id: `actor.auth` is `attested`,
/// `actor.attested_by.id` the source, `actor.platform` the platform, and
/// `details.<platform>.dedup_id` the id. `None` for every other leaf (a cheap byte search
/// first: most leaves are not reported ones).
pub fn key_of_leaf(leaf: &[u8]) -> Option<u128> {
    const NEEDLE: &[u8] = b"\"auth\":\"attested\"";
    if !leaf.windows(NEEDLE.len()).any(|w| w == NEEDLE) {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(leaf).ok()?;
    let actor = v.get("actor")?;
    if actor.get("auth")?.as_str()? != "attested" {
        return None;
    }
    let source = actor.get("attested_by")?.get("id")?.as_str()?;
    let platform = actor.get("platform")?.as_str()?;
    let id = v.get("details")?.get(platform)?.get("dedup_id")?.as_str()?;
    Some(event_key(source, platform, id))
}

pub fn event_key(source: &str, platform: &str, dedup_id: &str) -> u128 {
    let mut h = Sha256::new();
    for part in ["graven-source-event", source, platform, dedup_id] {
        // Length-prefixed, so no two lists of parts hash alike.
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    let d = h.finalize();
    let mut first = [0u8; 16];
    first.copy_from_slice(&d[..16]);
    u128::from_be_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_remember_settle_and_refuse_what_is_in_flight() {
        let s = Seen::default();
        assert_eq!(s.claim(&[1, 2]).unwrap(), [false, false]);
        // In flight in another request: retry later.
        assert!(s.claim(&[2, 3]).is_err());
        s.settle(&[1, 2], true);
        assert_eq!(s.claim(&[2, 3]).unwrap(), [true, false]);
        // A failed commit forgets its keys: the retry logs them.
        s.settle(&[3], false);
        assert_eq!(s.claim(&[3]).unwrap(), [false]);
        // Rebuilt from the log: remembered as logged.
        s.remember_logged(&[9]);
        assert_eq!(s.claim(&[9]).unwrap(), [true]);
        // A key twice in one request: the second is a duplicate.
        assert_eq!(s.claim(&[7, 7]).unwrap(), [false, true]);
        assert_ne!(event_key("a", "kubernetes", "x"), event_key("b", "kubernetes", "x"));
        assert_ne!(event_key("a", "kubernetes", "x"), event_key("a", "openbao", "x"));
        // Parts are delimited: ("ab", "c") is not ("a", "bc").
        assert_ne!(event_key("a", "b", "c\nd"), event_key("a", "b\nc", "d"));
    }
}

#[cfg(test)]
mod leaf_tests {
    use super::*;

    #[test]
    fn a_reported_leaf_gives_the_key_its_request_claimed() {
        let leaf = br#"{"action":"k8s.get","actor":{"attested_by":{"id":"src:a"},"auth":"attested","id":"x","platform":"kubernetes"},"details":{"kubernetes":{"dedup_id":"a1/ResponseComplete"}}}"#;
        assert_eq!(key_of_leaf(leaf), Some(event_key("src:a", "kubernetes", "a1/ResponseComplete")));
        // Not reported, or without an id: no key.
        let direct = br#"{"actor":{"auth":"api_key","id":"x","platform":"kubernetes"},"details":{"kubernetes":{"dedup_id":"a1"}}}"#;
        assert_eq!(key_of_leaf(direct), None);
        let no_id = br#"{"actor":{"attested_by":{"id":"src:a"},"auth":"attested","id":"x","platform":"syslog"},"details":{"syslog":{}}}"#;
        assert_eq!(key_of_leaf(no_id), None);
        assert_eq!(key_of_leaf(b"\"auth\":\"attested\" not json"), None);
    }
}

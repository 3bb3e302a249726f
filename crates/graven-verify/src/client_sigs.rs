//! Offline checking of client-signed events (`graven_core::event_sig`).
//!
//! The verifier needs each identity's public keys, and takes them from the log itself: every
//! key registration is a `graven.key.add_public` self-audit event that carries the key, and
//! `graven.key.revoke_public` / `graven.identity.revoke` events end a key's use. Scanning in
//! log order, a client signature must name a key registered *earlier in the log* to the
//! event's `actor.id`, not revoked before it, and verify (strictly) over the event as the
//! client sent it. So even the operator cannot put an event in an identity's name without a
//! forged registration being there for every auditor to see.
//!
//! **Only admins change the key set.** A registry event (`graven.key.add_public`,
//! `graven.key.revoke_public`, `graven.identity.create`, `graven.identity.revoke`) is honoured
//! only if its `actor.id` is an admin *as recorded in the log itself*: the set starts as the
//! server's bootstrap identity [`BOOTSTRAP_ADMIN`]; an admin's `graven.identity.create` with
//! `details.role == "admin"` adds its `resource.id`; an admin's `graven.identity.revoke`
//! removes it (roles cannot change after creation, and ids are never reused). Any other
//! registry event (a writer's, or `graven:server`'s) changes nothing; it is counted in
//! [`ClientSigChecker::registry_ignored`], never silently dropped.
//!
//! **Every leaf is accounted for.** A leaf that is not a JSON object the strict RFC 8785
//! parser accepts is not a Graven event (a `graven log append --raw` line, say): it is counted
//! in [`ClientSigChecker::non_events`]. But if a lenient reader could still find a top-level
//! `client_signature` in it, verification fails: such a leaf would be shown in the signer's
//! name while no verifier can check it.
//!
//! **A signature is used once.** Two entries with the same client signature are a replay and
//! fail verification, naming both; so do two version 2 signatures with the same key and `id`
//! (the server logs each once). Signatures are remembered by a 128-bit digest, so memory
//! grows with the number of signed events in the scanned range, and a scan that starts in the
//! middle of the log only sees duplicates within what it scans.
//!
//! A scan that starts in the middle of the log (an incremental `graven verify`) may meet a key
//! registered before its start, or an admin created before it: such signatures are counted as
//! not checked, not as failures, and such admins' registry events as ignored; `graven verify
//! --full` checks them all.
//!
//! Every string a message quotes from a leaf goes through `text::quote`.

use std::collections::{HashMap, HashSet};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::VerifyingKey;
use graven_core::event_sig::{self, ClientSignature};
use graven_core::jcs::{self, Value};
use sha2::{Digest, Sha256};

use crate::lenient;
use crate::text::quote;

/// The identity the server creates at bootstrap, with role admin. The server sets `actor`
/// from the verified credential and never reuses an id, so no one else is ever attributed it.
pub const BOOTSTRAP_ADMIN: &str = "admin";
/// The actor of the records the server writes itself (start-up changes, refusals).
pub const SERVER_ACTOR: &str = "graven:server";

/// The actions that change identities or their public keys.
pub const REGISTRY_ACTIONS: [&str; 4] =
    ["graven.key.add_public", "graven.key.revoke_public", "graven.identity.create", "graven.identity.revoke"];

#[derive(Debug)]
struct Key {
    identity: String,
    key: VerifyingKey,
    revoked_at: Option<u64>,
}

/// How many entries of one kind a scan met, and the index of the first.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub count: u64,
    pub first: Option<u64>,
}

impl Tally {
    fn add(&mut self, index: u64) {
        self.count += 1;
        self.first.get_or_insert(index);
    }
}

/// Builds the key set from the log as it is scanned and checks every client signature.
#[derive(Debug)]
pub struct ClientSigChecker {
    keys: HashMap<String, Key>,
    admins: HashSet<String>,
    /// Every client signature met so far (a digest of its 64 bytes) and where.
    seen: HashMap<u128, u64>,
    /// Whether the scan started at entry 0 (so every registration has been seen).
    complete: bool,
    pub verified: u64,
    pub unchecked: u64,
    /// Registry events not honoured because their actor is not an admin (or, for an admin's,
    /// because it does not record a success on an identity).
    pub registry_ignored: Tally,
    /// Entries that are not a JSON object the strict parser accepts.
    pub non_events: Tally,
}

fn get<'a>(members: &'a [(String, Value)], key: &str) -> Option<&'a Value> {
    members.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

fn str_at<'a>(v: Option<&'a Value>, key: &str) -> Option<&'a str> {
    match v? {
        Value::Object(m) => match get(m, key)? {
            Value::String(s) => Some(s),
            _ => None,
        },
        _ => None,
    }
}

impl ClientSigChecker {
    /// `complete`: the scan starts at the first entry of the log.
    pub fn new(complete: bool) -> Self {
        ClientSigChecker {
            keys: HashMap::new(),
            admins: HashSet::from([BOOTSTRAP_ADMIN.to_owned()]),
            seen: HashMap::new(),
            complete,
            verified: 0,
            unchecked: 0,
            registry_ignored: Tally::default(),
            non_events: Tally::default(),
        }
    }

    /// Looks at entry `index`. An error message says what is wrong with it.
    pub fn visit(&mut self, index: u64, entry: &[u8]) -> Result<(), String> {
        let members = match jcs::parse(entry) {
            Ok(Value::Object(m)) => m,
            // A strictly parsed array, string or number has no members at all.
            Ok(_) => {
                self.non_events.add(index);
                return Ok(());
            }
            Err(e) => {
                self.non_events.add(index);
                if lenient::has_top_level_member(entry, event_sig::FIELD) {
                    return Err(format!(
                        "this entry carries a client signature, but it is not an event the strict RFC 8785 parser accepts (it stops at byte {}): other readers may show it in the signer's name, yet no verifier can check it",
                        e.offset()
                    ));
                }
                return Ok(());
            }
        };
        self.registry(index, &members)?;
        self.signature(index, entry, &members)
    }

    /// Applies a registry event to the admins and keys, if an admin made it.
    fn registry(&mut self, index: u64, m: &[(String, Value)]) -> Result<(), String> {
        let Some(Value::String(action)) = get(m, "action") else { return Ok(()) };
        if !REGISTRY_ACTIONS.contains(&action.as_str()) {
            return Ok(());
        }
        let actor = str_at(get(m, "actor"), "id");
        // The server records the bootstrap admin it creates at a new log's first start; that
        // admin is already known (it is where the set of admins starts), so the record changes
        // nothing and is not a forgery to report.
        if actor == Some(SERVER_ACTOR)
            && action == "graven.identity.create"
            && str_at(get(m, "resource"), "id") == Some(BOOTSTRAP_ADMIN)
            && matches!(get(m, "details"), Some(Value::Object(d)) if get(d, "bootstrap") == Some(&Value::Bool(true)))
        {
            return Ok(());
        }
        let by_admin = actor.is_some_and(|a| self.admins.contains(a));
        let succeeded = matches!(get(m, "outcome"), Some(Value::String(o)) if o == "success")
            && str_at(get(m, "resource"), "type") == Some("graven.identity");
        if !(by_admin && succeeded) {
            self.registry_ignored.add(index);
            return Ok(());
        }
        let identity = str_at(get(m, "resource"), "id")
            .ok_or_else(|| format!("{action} by an admin names no identity (resource.id)"))?
            .to_owned();
        let details = get(m, "details");
        match action.as_str() {
            "graven.key.add_public" => {
                let kid = str_at(details, "key_id").unwrap_or_default();
                let key = str_at(details, "public_key")
                    .and_then(|k| B64.decode(k).ok())
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .and_then(|b| VerifyingKey::from_bytes(&b).ok())
                    .ok_or_else(|| {
                        format!("key registration {} does not carry a valid Ed25519 public key", quote(kid))
                    })?;
                let derived = event_sig::key_id(key.as_bytes());
                if derived != kid {
                    return Err(format!(
                        "key registration names key id {}, but its public key's id is {derived}",
                        quote(kid)
                    ));
                }
                if let Some(old) = self.keys.get(kid)
                    && old.identity != identity
                {
                    return Err(format!(
                        "key {} is registered to {}, but already belongs to {}",
                        quote(kid),
                        quote(&identity),
                        quote(&old.identity)
                    ));
                }
                self.keys.insert(kid.to_owned(), Key { identity, key, revoked_at: None });
            }
            "graven.key.revoke_public" => {
                if let Some(k) = str_at(details, "key_id").and_then(|kid| self.keys.get_mut(kid)) {
                    k.revoked_at.get_or_insert(index);
                }
            }
            // Roles are fixed at creation: only an admin's creation of an admin adds one.
            "graven.identity.create" if str_at(details, "role") == Some("admin") => {
                self.admins.insert(identity);
            }
            "graven.identity.revoke" => {
                for k in self.keys.values_mut().filter(|k| k.identity == identity) {
                    k.revoked_at.get_or_insert(index);
                }
                self.admins.remove(&identity);
            }
            _ => {}
        }
        Ok(())
    }

    /// Checks the entry's client signature, if it has one.
    fn signature(&mut self, index: u64, entry: &[u8], m: &[(String, Value)]) -> Result<(), String> {
        let Some((sig, message)) = event_sig::signed_message_from_leaf(entry)
            .map_err(|e| format!("its client_signature cannot be checked: {e}"))?
        else {
            return Ok(());
        };
        let ClientSignature { key_id: kid, sig: bytes, .. } = &sig;
        let actor = str_at(get(m, "actor"), "id").unwrap_or_default();
        match self.keys.get(kid) {
            None if self.complete => {
                return Err(format!(
                    "client signature by key {}, which no graven.key.add_public event by an admin before it registers",
                    quote(kid)
                ));
            }
            None => self.unchecked += 1,
            Some(k) => {
                if k.identity != actor {
                    return Err(format!(
                        "client signature by key {} of {}, but the event's actor is {}",
                        quote(kid),
                        quote(&k.identity),
                        quote(actor)
                    ));
                }
                if let Some(r) = k.revoked_at {
                    return Err(format!(
                        "client signature by key {}, which was revoked at entry {r}",
                        quote(kid)
                    ));
                }
                event_sig::verify(&k.key, &sig, &message).map_err(|_| {
                    format!(
                        "the client signature (key {} of {}) does not verify: this is not the event {} signed",
                        quote(kid),
                        quote(actor),
                        quote(actor)
                    )
                })?;
                self.verified += 1;
            }
        }
        // Checked after the signature itself, so that a signature copied onto another event
        // is reported as not verifying; one that verifies twice is a replay. Signatures whose
        // key this scan cannot know are remembered too.
        let digest = Sha256::digest(bytes);
        let mut first = [0u8; 16];
        first.copy_from_slice(&digest[..16]);
        if let Some(earlier) = self.seen.insert(u128::from_be_bytes(first), index) {
            return Err(format!(
                "its client signature is the very one of entry {earlier}: a replay (a signature is made for one event, once)"
            ));
        }
        // A version 2 signature's id is one-time for its key: the server logs each (key, id)
        // once, so a second one (even over another event) was not written by the server as it
        // runs.
        if let Some(once) = &sig.once {
            let mut h = Sha256::new();
            h.update(b"once\n");
            h.update(kid.as_bytes());
            h.update(b"\n");
            h.update(once.id.as_bytes());
            let digest = h.finalize();
            let mut first = [0u8; 16];
            first.copy_from_slice(&digest[..16]);
            if let Some(earlier) = self.seen.insert(u128::from_be_bytes(first), index) {
                return Err(format!(
                    "its client signature reuses id {} of key {}, already used at entry {earlier}: a signed event's id is used once",
                    quote(&once.id),
                    quote(kid)
                ));
            }
        }
        Ok(())
    }
}

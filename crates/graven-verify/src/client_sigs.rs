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
//! A scan that starts in the middle of the log (an incremental `graven verify`) may meet a key
//! registered before its start: such signatures are counted as not checked, not as failures;
//! `graven verify --full` checks them all.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::VerifyingKey;
use graven_core::event_sig;
use graven_core::jcs::{self, Value};

#[derive(Debug)]
struct Key {
    identity: String,
    key: VerifyingKey,
    revoked_at: Option<u64>,
}

/// Builds the key set from the log as it is scanned and checks every client signature.
#[derive(Debug, Default)]
pub struct ClientSigChecker {
    keys: HashMap<String, Key>,
    /// Whether the scan started at entry 0 (so every registration has been seen).
    complete: bool,
    pub verified: u64,
    pub unchecked: u64,
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
        ClientSigChecker { complete, ..Default::default() }
    }

    /// Looks at entry `index`. An error message says what is wrong with it.
    pub fn visit(&mut self, index: u64, entry: &[u8]) -> Result<(), String> {
        // Not every log entry is a Graven event (raw `graven log append --raw` lines).
        let Ok(Value::Object(m)) = jcs::parse(entry) else { return Ok(()) };
        let action = match get(&m, "action") {
            Some(Value::String(a)) => a.as_str(),
            _ => "",
        };
        let audited = matches!(get(&m, "outcome"), Some(Value::String(o)) if o == "success")
            && str_at(get(&m, "resource"), "type") == Some("graven.identity");
        if audited {
            let identity = str_at(get(&m, "resource"), "id").unwrap_or_default().to_owned();
            let details = get(&m, "details");
            match action {
                "graven.key.add_public" => {
                    let kid = str_at(details, "key_id").unwrap_or_default();
                    let key = str_at(details, "public_key")
                        .and_then(|k| B64.decode(k).ok())
                        .and_then(|b| <[u8; 32]>::try_from(b).ok())
                        .and_then(|b| VerifyingKey::from_bytes(&b).ok())
                        .ok_or_else(|| {
                            format!("key registration {kid:?} does not carry a valid Ed25519 public key")
                        })?;
                    let derived = event_sig::key_id(key.as_bytes());
                    if derived != kid {
                        return Err(format!(
                            "key registration names key id {kid:?}, but its public key's id is {derived}"
                        ));
                    }
                    if let Some(old) = self.keys.get(kid)
                        && old.identity != identity
                    {
                        return Err(format!(
                            "key {kid} is registered to {identity}, but already belongs to {}",
                            old.identity
                        ));
                    }
                    self.keys.insert(kid.to_owned(), Key { identity, key, revoked_at: None });
                }
                "graven.key.revoke_public" => {
                    if let Some(k) = str_at(details, "key_id").and_then(|kid| self.keys.get_mut(kid)) {
                        k.revoked_at.get_or_insert(index);
                    }
                }
                "graven.identity.revoke" => {
                    for k in self.keys.values_mut().filter(|k| k.identity == identity) {
                        k.revoked_at.get_or_insert(index);
                    }
                }
                _ => {}
            }
        }
        let Some((sig, message)) = event_sig::signed_message_from_leaf(entry).map_err(|e| e.to_string())?
        else {
            return Ok(());
        };
        let actor = str_at(get(&m, "actor"), "id").unwrap_or_default();
        let kid = &sig.key_id;
        let Some(k) = self.keys.get(kid) else {
            if self.complete {
                return Err(format!(
                    "client signature by key {kid}, which no graven.key.add_public event before it registers"
                ));
            }
            self.unchecked += 1;
            return Ok(());
        };
        if k.identity != actor {
            return Err(format!(
                "client signature by key {kid} of {}, but the event's actor is {actor}",
                k.identity
            ));
        }
        if let Some(r) = k.revoked_at {
            return Err(format!("client signature by key {kid}, which was revoked at entry {r}"));
        }
        event_sig::verify(&k.key, &sig, &message).map_err(|_| {
            format!("the client signature (key {kid} of {actor}) does not verify: this is not the event {actor} signed")
        })?;
        self.verified += 1;
        Ok(())
    }
}

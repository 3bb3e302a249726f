//! The identity registry's file format, `identities.json` (pure: bytes in, records out).
//!
//! ```json
//! {"version": 1, "identities": [<IdentityRecord>, ...]}
//! ```
//!
//! Parsing is strict: unknown fields, a version other than 1, an invalid identity id, an API
//! key whose digest is not 32 bytes of hex, and a key id or identity that appears twice are all
//! refused, so a registry is never half-read. The file is bounded ([`MAX_FILE`]) both ways: a
//! larger file is refused, and a registry that would encode larger is refused before it is
//! written, so it can always be read back.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::identity::IdentityRecord;

/// Largest registry file read or written.
pub const MAX_FILE: u64 = 256 << 20;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    version: u32,
    identities: Vec<IdentityRecord>,
}

fn is_digest(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Reads a registry file. The error says what is wrong with it.
pub fn parse(text: &[u8]) -> Result<BTreeMap<String, IdentityRecord>, String> {
    if text.len() as u64 > MAX_FILE {
        return Err("larger than 256 MiB".into());
    }
    let file: File = serde_json::from_slice(text).map_err(|e| e.to_string())?;
    if file.version != 1 {
        return Err(format!("version {} is not supported (expected 1)", file.version));
    }
    let mut out = BTreeMap::new();
    let mut key_ids = HashSet::new();
    let mut public_key_ids = HashSet::new();
    for r in file.identities {
        crate::identity::check_id(&r.id).map_err(|e| e.to_string())?;
        for k in &r.keys {
            if !is_digest(&k.sha256) || !key_ids.insert(k.key_id.clone()) {
                return Err(format!("key {:?} of {:?} is malformed or duplicated", k.key_id, r.id));
            }
        }
        for k in &r.public_keys {
            if !public_key_ids.insert(k.key_id.clone()) {
                return Err(format!("public key {:?} of {:?} is duplicated", k.key_id, r.id));
            }
        }
        let id = r.id.clone();
        if out.insert(id.clone(), r).is_some() {
            return Err(format!("identity {id:?} appears twice"));
        }
    }
    Ok(out)
}

/// Writes a registry file: what [`parse`] reads back as the same records.
pub fn encode(records: &BTreeMap<String, IdentityRecord>) -> Result<Vec<u8>, String> {
    let file = File { version: 1, identities: records.values().cloned().collect() };
    let mut bytes = serde_json::to_vec_pretty(&file).map_err(|e| e.to_string())?;
    bytes.push(b'\n');
    if bytes.len() as u64 > MAX_FILE {
        return Err(format!(
            "the registry would be {} bytes, over the {MAX_FILE}-byte limit; nothing was changed",
            bytes.len()
        ));
    }
    Ok(bytes)
}

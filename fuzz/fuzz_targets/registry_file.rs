//! The identity registry file (`graven_auth::registry_file::parse`, `encode`):
//! `identities.json`, which decides who may write to the log.
//! - `parse` never panics, and refuses anything over `MAX_FILE` bytes.
//! - What it accepts has unique, valid identity ids, API-key digests of 64 lowercase hex
//!   digits, and no key id or public key id twice.
//! - Encoding what it accepted and parsing that again gives the same records, and encoding is a
//!   fixed point from there (what the server writes, it reads back unchanged).
#![no_main]

use libfuzzer_sys::fuzz_target;

/// graven-auth's `identity` and `registry_file` modules, compiled here from their source.
#[allow(dead_code)]
#[path = "../../crates/graven-auth/src/identity.rs"]
mod identity;
#[allow(dead_code)]
#[path = "../../crates/graven-auth/src/registry_file.rs"]
mod registry_file;

fuzz_target!(|data: &[u8]| {
    let Ok(records) = registry_file::parse(data) else { return };
    assert!(data.len() as u64 <= registry_file::MAX_FILE);
    let mut keys = std::collections::HashSet::new();
    let mut public = std::collections::HashSet::new();
    for (id, r) in &records {
        assert_eq!(id, &r.id);
        assert!(identity::check_id(id).is_ok());
        for k in &r.keys {
            assert!(
                k.sha256.len() == 64
                    && k.sha256.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            );
            assert!(keys.insert(k.key_id.clone()), "key id {} twice", k.key_id);
        }
        for k in &r.public_keys {
            assert!(public.insert(k.key_id.clone()), "public key id {} twice", k.key_id);
        }
    }
    let encoded = registry_file::encode(&records).expect("what was read can be written");
    let again = registry_file::parse(&encoded).expect("what was written can be read");
    assert_eq!(again, records);
    assert_eq!(registry_file::encode(&again).unwrap(), encoded);
});

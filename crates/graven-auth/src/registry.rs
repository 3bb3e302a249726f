//! The identity registry: `<data>/identities.json`, held in memory for authentication. On a
//! log shared by several nodes it is the object `graven/identities.json` beside the log, which
//! every node reads (and re-reads when it changes) and the writer changes by
//! compare-and-swap, so all nodes accept the same credentials.
//!
//! **Durability contract.** [`Registry::install`] returns only after the new file is durable:
//! it is written with [`graven_fs::atomic::replace`] (a temporary file, fsynced, renamed over
//! `identities.json`, the directory fsynced), through the [`Fs`] the registry was opened on.
//! A crash at any point leaves either the old records or the new ones, never a mix, and an
//! install that returned `Ok` survives it (`tests/registry_power_cut.rs` cuts the power at
//! every step on a simulated disk). Callers acknowledge a change only after `install`
//! returned. `admin.token` is made the same way with [`graven_fs::atomic::create`]: absent
//! or complete, never replaced. Both files are readable by their owner only.
//!
//! **Per-request cost.** [`Registry::authenticate`] takes a read lock, does one hash-map lookup
//! by key id, one SHA-256 (already computed while parsing) and a constant-time compare. It
//! allocates nothing and touches no disk. "Last seen" is an atomic per identity, updated at
//! most once a second, and written to the file lazily by [`Registry::flush`] (periodically
//! and at shutdown) or with the next change.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use graven_core::note::SignerKey;
use graven_fs::atomic::{self, Access};
use graven_fs::{Fs, RealFs};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::apikey;
use crate::identity::{IdentityRecord, KeyRecord, Kind, Role, Status};
use crate::principal::{Actor, Denial, Principal};
use crate::public_key::parse_public_key;

pub const FILE_NAME: &str = "identities.json";
/// The registry's key in a shared log's object store.
pub const OBJECT_KEY: &str = "graven/identities.json";
pub const TOKEN_FILE: &str = "admin.token";
/// The identity that `<data>/admin.token` belongs to.
pub const BOOTSTRAP_ID: &str = "admin";
use crate::registry_file::MAX_FILE;

#[derive(Debug)]
struct KeySlot {
    digest: [u8; 32],
    expires_ms: Option<i64>,
    revoked: bool,
    status: Status,
    principal: Arc<Principal>,
}

#[derive(Debug, Default)]
struct Snapshot {
    records: Arc<BTreeMap<String, IdentityRecord>>,
    keys: HashMap<String, KeySlot>,
    pubkeys: HashMap<String, Slot>,
    last_seen: HashMap<String, Arc<AtomicI64>>,
}

impl Snapshot {
    fn build(records: BTreeMap<String, IdentityRecord>, old: &HashMap<String, Arc<AtomicI64>>) -> Self {
        let mut keys = HashMap::new();
        let mut last_seen = HashMap::new();
        for r in records.values() {
            let seen = old.get(&r.id).cloned().unwrap_or_else(|| Arc::new(AtomicI64::new(0)));
            seen.fetch_max(r.last_seen_ms.unwrap_or(0), Ordering::Relaxed);
            last_seen.insert(r.id.clone(), seen.clone());
            for k in &r.keys {
                let Some(digest) = hex32(&k.sha256) else { continue };
                let principal = Arc::new(Principal {
                    identity: r.id.clone(),
                    role: r.role,
                    key_id: k.key_id.clone(),
                    allowed_actions: r.allowed_actions.clone(),
                    source: r.source.clone(),
                    actor: Actor {
                        id: r.id.clone(),
                        kind: r.kind.as_str().into(),
                        credential: format!("key:{}", k.key_id),
                        auth: "api_key".into(),
                        extra: Vec::new(),
                    },
                    last_seen: seen.clone(),
                    expires_ms: None,
                });
                keys.insert(
                    k.key_id.clone(),
                    KeySlot {
                        digest,
                        expires_ms: k.expires_ms,
                        revoked: k.revoked_ms.is_some(),
                        status: r.status,
                        principal,
                    },
                );
            }
        }
        let pubkeys = slots(&records, &last_seen);
        Snapshot { records: Arc::new(records), keys, pubkeys, last_seen }
    }

    /// The records with the live last-seen times merged in.
    fn current(&self) -> BTreeMap<String, IdentityRecord> {
        let mut out = (*self.records).clone();
        for (id, r) in out.iter_mut() {
            if let Some(seen) = self.last_seen.get(id).map(|s| s.load(Ordering::Relaxed)).filter(|&s| s > 0) {
                r.last_seen_ms = Some(seen);
            }
        }
        out
    }
}

/// A public key ready for a request: its key, state and the principal it authenticates.
#[derive(Debug)]
struct Slot {
    key: ed25519_dalek::VerifyingKey,
    revoked: bool,
    status: Status,
    principal: Arc<Principal>,
}

/// The public-key lookup table for a registry snapshot.
fn slots(
    records: &BTreeMap<String, IdentityRecord>,
    last_seen: &HashMap<String, Arc<AtomicI64>>,
) -> HashMap<String, Slot> {
    let mut out = HashMap::new();
    for r in records.values() {
        let seen = last_seen.get(&r.id).cloned().unwrap_or_default();
        for k in &r.public_keys {
            let Ok(key) = parse_public_key(&k.public_key) else { continue };
            let principal = Arc::new(Principal {
                identity: r.id.clone(),
                role: r.role,
                key_id: k.key_id.clone(),
                allowed_actions: r.allowed_actions.clone(),
                source: r.source.clone(),
                actor: Actor {
                    id: r.id.clone(),
                    kind: r.kind.as_str().into(),
                    credential: format!("pubkey:{}", k.key_id),
                    auth: "http_signature".into(),
                    extra: Vec::new(),
                },
                last_seen: seen.clone(),
                expires_ms: None,
            });
            out.insert(
                k.key_id.clone(),
                Slot { key, revoked: k.revoked_ms.is_some(), status: r.status, principal },
            );
        }
    }
    out
}

fn hex32(s: &str) -> Option<[u8; 32]> {
    let v = graven_core::hex::decode(s)?;
    v.try_into().ok()
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    #[error("{what} {}: {source}", path.display())]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{} is not a valid identity registry: {why}", path.display())]
    Corrupt { path: PathBuf, why: String },
    #[error("bootstrap: {0}")]
    Bootstrap(String),
    #[error(
        "another node changed the identity registry at the same time; nothing was changed, retry the request"
    )]
    Conflict,
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> RegistryError + 'a {
    move |source| RegistryError::Io { what, path: path.to_path_buf(), source }
}

/// What start-up did about the bootstrap credential, `<data>/admin.token`.
///
/// The token is registered only while the registry has never had an admin key: a fresh log,
/// or a directory from before identities existed. After that no file can bring an admin key
/// into the registry; every key comes through the audited API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bootstrap {
    /// `admin.token` already belonged to a registered, usable key.
    Unchanged,
    /// A token from before identities existed was registered as a key of `admin`.
    Migrated,
    /// A new admin key was written to `admin.token`.
    Created,
    /// This node joined a shared log whose registry already has admin keys; the `admin.token`
    /// is with the node that created the log.
    Shared,
    /// The registry has had admin keys and there is no `admin.token`: nothing to do.
    NoToken,
    /// `admin.token` holds a key that no longer works (revoked or expired: never revived) or one
    /// this registry never had (never registered from a file once admins exist).
    Stale { key_id: String, why: &'static str },
}

impl Bootstrap {
    /// What to print after `admin credential: <path>`.
    pub fn describe(&self) -> String {
        match self {
            Bootstrap::Created => " (new admin API key; send it as Authorization: Bearer <key>)".into(),
            Bootstrap::Migrated => " (existing token, now a key of identity admin)".into(),
            Bootstrap::Unchanged => String::new(),
            Bootstrap::Shared => {
                " (not on this node: this node joined a shared log whose registry already has admin keys)"
                    .into()
            }
            Bootstrap::NoToken => {
                " (absent; the registry already has admin keys, so none is made: use an admin's own key)"
                    .into()
            }
            Bootstrap::Stale { key_id, why } => format!(
                " holds key {key_id}, which {why}; it does not work and is not registered again: use another admin's key"
            ),
        }
    }
}

/// A start-up change to the registry, planned but not yet made: the records it installs, the
/// secret for `admin.token`, and the self-audit events (attributed to the server) that must be
/// in the log before the change takes effect.
#[derive(Debug)]
pub struct BootstrapPlan {
    pub outcome: Bootstrap,
    /// The events to append first, as request bodies for `shape::shape_self_audit`.
    pub events: Vec<serde_json::Value>,
    records: Option<BTreeMap<String, IdentityRecord>>,
    /// A newly minted key, written to `admin.token` once the registry holds it.
    secret: Option<String>,
}

/// Where the registry is kept.
#[derive(Debug)]
enum Backing {
    File(PathBuf),
    /// In a shared log's store, with the ETag of the version this node last read or wrote.
    /// Signed with the log's key: the object is not locked (it changes), so anyone holding the
    /// bucket's credentials could write it, and an unsigned registry would hand them every
    /// node's admin API.
    Object {
        store: Arc<dyn graven_tlog::ObjectStore>,
        etag: Mutex<Option<String>>,
        key: Box<SignerKey>,
    },
}

const SHARED_MAGIC: &str = "graven-registry v1";

/// `graven-registry v1\n<note length>\n<note><registry JSON>`, where the note is the log key's
/// signature over `graven-registry v1\n<SHA-256 of the JSON, hex>\n`.
fn seal(json: &[u8], key: &SignerKey) -> Result<Vec<u8>, String> {
    let text = format!("{SHARED_MAGIC}\n{}\n", graven_core::hex::encode(&Sha256::digest(json)));
    let note = key.sign(&text).map_err(|e| e.to_string())?;
    let mut out = format!("{SHARED_MAGIC}\n{}\n", note.len()).into_bytes();
    out.extend_from_slice(note.as_bytes());
    out.extend_from_slice(json);
    Ok(out)
}

/// The registry JSON of a sealed object, if the log's key signed it.
fn unseal<'a>(bytes: &'a [u8], key: &SignerKey) -> Result<&'a [u8], String> {
    let bad = || {
        "it is not signed by the log's key: it was written or changed outside Graven; restore a version Graven wrote (the bucket keeps every version)".to_owned()
    };
    let rest = bytes.strip_prefix(format!("{SHARED_MAGIC}\n").as_bytes()).ok_or_else(bad)?;
    let nl = rest.iter().take(8).position(|&b| b == b'\n').ok_or_else(bad)?;
    let len: usize = std::str::from_utf8(&rest[..nl]).ok().and_then(|t| t.parse().ok()).ok_or_else(bad)?;
    let rest = &rest[nl + 1..];
    if len > 4096 || len > rest.len() {
        return Err(bad());
    }
    let (note, json) = rest.split_at(len);
    let opened = graven_core::note::open(note, std::slice::from_ref(&key.verifier())).map_err(|_| bad())?;
    let expected = format!("{SHARED_MAGIC}\n{}\n", graven_core::hex::encode(&Sha256::digest(json)));
    if opened.text() != expected {
        return Err(bad());
    }
    Ok(json)
}

impl Backing {
    fn name(&self) -> PathBuf {
        match self {
            Backing::File(p) => p.clone(),
            Backing::Object { store, .. } => PathBuf::from(format!("{}/{OBJECT_KEY}", store.location())),
        }
    }

    fn load(&self, fs: &dyn Fs) -> Result<BTreeMap<String, IdentityRecord>, RegistryError> {
        match self {
            Backing::File(path) => read_file(fs, path),
            Backing::Object { store, etag, .. } => {
                let got = store.get(OBJECT_KEY, MAX_FILE).map_err(|e| self.store_err("reading", e))?;
                let Some(o) = got else { return Ok(BTreeMap::new()) };
                let records = self.parse_object(&o.bytes)?;
                *etag.lock().unwrap_or_else(|p| p.into_inner()) = Some(o.etag);
                Ok(records)
            }
        }
    }

    fn save(&self, fs: &dyn Fs, records: &BTreeMap<String, IdentityRecord>) -> Result<(), RegistryError> {
        match self {
            Backing::File(path) => write_file(fs, path, records),
            Backing::Object { store, etag, key } => {
                let json = encode(records, &self.name())?;
                let bytes =
                    seal(&json, key).map_err(|why| RegistryError::Corrupt { path: self.name(), why })?;
                let mut tag = etag.lock().unwrap_or_else(|p| p.into_inner());
                let cond = match tag.as_deref() {
                    Some(t) => graven_tlog::Cond::IfMatch(t),
                    None => graven_tlog::Cond::IfAbsent,
                };
                let new =
                    store.put(OBJECT_KEY, &bytes, cond, false).map_err(|e| self.store_err("writing", e))?;
                *tag = Some(new);
                Ok(())
            }
        }
    }

    /// The records of a shared registry object, after checking the log key's signature.
    fn parse_object(&self, bytes: &[u8]) -> Result<BTreeMap<String, IdentityRecord>, RegistryError> {
        let Backing::Object { key, .. } = self else { return parse(bytes, &self.name()) };
        let json = unseal(bytes, key).map_err(|why| RegistryError::Corrupt { path: self.name(), why })?;
        parse(json, &self.name())
    }

    fn store_err(&self, what: &'static str, e: graven_tlog::StoreError) -> RegistryError {
        if let graven_tlog::StoreError::Precondition { .. } = e {
            return RegistryError::Conflict;
        }
        RegistryError::Io { what, path: self.name(), source: std::io::Error::other(e.to_string()) }
    }
}

#[derive(Debug)]
pub struct Registry {
    /// The local disk: `identities.json` (unless the registry is shared) and `admin.token`.
    fs: Arc<dyn Fs>,
    backing: Backing,
    snap: RwLock<Snapshot>,
    /// Last-seen times changed since the file was last written.
    dirty: AtomicBool,
    /// Serialises file writes.
    write: Mutex<()>,
    /// Bumped whenever another node's version is taken up by [`Registry::refresh`].
    generation: std::sync::atomic::AtomicU64,
}

impl Registry {
    /// Opens `<data>/identities.json` (empty if absent). The bootstrap credential is seen to
    /// afterwards, once the log can record it: [`Registry::plan_bootstrap`].
    pub fn open(data: &Path) -> Result<Self, RegistryError> {
        Self::open_with(Arc::new(RealFs), data)
    }

    /// [`Registry::open`] on any [`Fs`], such as the crash-simulating
    /// [`graven_fs::sim::SimFs`].
    pub fn open_with(fs: Arc<dyn Fs>, data: &Path) -> Result<Self, RegistryError> {
        Self::open_on(fs, Backing::File(data.join(FILE_NAME)))
    }

    /// The registry of a shared log, kept in its object store (empty if absent).
    pub fn open_shared(
        store: Arc<dyn graven_tlog::ObjectStore>,
        key: SignerKey,
    ) -> Result<Self, RegistryError> {
        let backing = Backing::Object { store, etag: Mutex::new(None), key: Box::new(key) };
        Self::open_on(Arc::new(RealFs), backing)
    }

    fn open_on(fs: Arc<dyn Fs>, backing: Backing) -> Result<Self, RegistryError> {
        let records = backing.load(&*fs)?;
        Ok(Registry {
            fs,
            backing,
            snap: RwLock::new(Snapshot::build(records, &HashMap::new())),
            dirty: AtomicBool::new(false),
            write: Mutex::new(()),
            generation: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Opens and bootstraps without recording anything in a log: for tests of the registry
    /// alone. The server records every start-up change ([`Registry::plan_bootstrap`]).
    #[cfg(test)]
    fn open_unlogged(data: &Path, now_ms: i64) -> Result<(Self, Bootstrap), RegistryError> {
        let reg = Self::open(data)?;
        let plan = reg.plan_bootstrap(data, now_ms)?;
        let outcome = reg.apply_bootstrap(plan, data)?;
        Ok((reg, outcome))
    }

    /// Whether any admin identity has ever had a key (API or public, usable or not). Key records
    /// are never removed, so once true this stays true.
    pub fn has_had_admin_key(&self) -> bool {
        let snap = self.snap.read().unwrap_or_else(|e| e.into_inner());
        snap.records
            .values()
            .any(|r| r.role == Role::Admin && (!r.keys.is_empty() || !r.public_keys.is_empty()))
    }

    /// Works out what start-up must do about `<data>/admin.token`, changing nothing. The token
    /// is registered (or a new one minted) only while the registry has never had an admin key,
    /// so neither a deleted token file nor a revoked key's file brings an admin key back.
    pub fn plan_bootstrap(&self, data: &Path, now_ms: i64) -> Result<BootstrapPlan, RegistryError> {
        let token_path = data.join(TOKEN_FILE);
        let shared = matches!(self.backing, Backing::Object { .. });
        let none = |outcome| BootstrapPlan { outcome, events: Vec::new(), records: None, secret: None };
        let presented = match read_small(&*self.fs, &token_path)? {
            Some(text) => {
                let p = apikey::parse(text.trim()).map_err(|e| RegistryError::Corrupt {
                    path: token_path.clone(),
                    why: format!("it does not hold an API key ({e})"),
                })?;
                Some(p)
            }
            None => None,
        };
        if let Some(p) = &presented {
            let snap = self.snap.read().unwrap_or_else(|e| e.into_inner());
            if let Some(slot) = snap.keys.get(&p.key_id) {
                let why = if slot.revoked {
                    Some("was revoked")
                } else if slot.expires_ms.is_some_and(|e| now_ms >= e) {
                    Some("has expired")
                } else if !bool::from(slot.digest.ct_eq(&p.digest)) {
                    Some("is registered with another secret")
                } else {
                    None
                };
                return Ok(none(match why {
                    Some(why) => Bootstrap::Stale { key_id: p.key_id.clone(), why },
                    None => Bootstrap::Unchanged,
                }));
            }
        }
        // A shared registry is bootstrapped once, by the node that creates it.
        if shared && !self.records().is_empty() {
            return Ok(none(if presented.is_some() { Bootstrap::Unchanged } else { Bootstrap::Shared }));
        }
        if self.has_had_admin_key() {
            return Ok(none(match presented {
                Some(p) => Bootstrap::Stale { key_id: p.key_id, why: "this registry never had" },
                None => Bootstrap::NoToken,
            }));
        }
        let mut records = self.records();
        let mut events = Vec::new();
        let admin = match records.get(BOOTSTRAP_ID) {
            Some(r) => r.clone(),
            None => {
                let r = IdentityRecord {
                    id: BOOTSTRAP_ID.into(),
                    kind: Kind::ServiceAccount,
                    owner: "whoever holds <data-dir>/admin.token".into(),
                    description: "bootstrap admin, created by graven serve".into(),
                    labels: BTreeMap::new(),
                    allowed_actions: Vec::new(),
                    role: Role::Admin,
                    status: Status::Active,
                    created_ms: now_ms,
                    status_changed_ms: None,
                    last_seen_ms: None,
                    keys: Vec::new(),
                    public_keys: Vec::new(),
                    source: None,
                };
                events.push(serde_json::json!({
                    "action": "graven.identity.create",
                    "outcome": "success",
                    "resource": {"type": "graven.identity", "id": BOOTSTRAP_ID},
                    "details": {
                        "kind": r.kind, "owner": r.owner, "role": r.role, "description": r.description,
                        "labels": r.labels, "allowed_actions": r.allowed_actions, "bootstrap": true,
                    },
                }));
                records.insert(BOOTSTRAP_ID.into(), r.clone());
                r
            }
        };
        if admin.status != Status::Active || admin.role != Role::Admin {
            return Err(RegistryError::Bootstrap(format!(
                "identity {BOOTSTRAP_ID} is {} with role {}; it cannot hold {TOKEN_FILE}; restore admin access with another admin key",
                admin.status.as_str(),
                admin.role.as_str()
            )));
        }
        let (key_id, digest, secret, outcome) = match presented {
            Some(p) => (p.key_id, p.digest, None, Bootstrap::Migrated),
            None => {
                let m = apikey::mint().map_err(io_err("making a key for", &token_path))?;
                (m.key_id, m.digest, Some(m.key), Bootstrap::Created)
            }
        };
        add_key(&mut records, BOOTSTRAP_ID, &key_id, &digest, now_ms, None);
        events.push(serde_json::json!({
            "action": "graven.key.create",
            "outcome": "success",
            "resource": {"type": "graven.identity", "id": BOOTSTRAP_ID},
            "details": {
                "key_id": key_id, "expires_at": null, "bootstrap": true,
                "held_in": TOKEN_FILE, "migrated": outcome == Bootstrap::Migrated,
            },
        }));
        Ok(BootstrapPlan { outcome, events, records: Some(records), secret })
    }

    /// Makes a planned start-up change, after its events are in the log: installs the records
    /// (durably), then writes a new key's `admin.token`. A crash in between leaves a registered
    /// key with no file, and the next start makes nothing (the registry has had an admin key):
    /// restore admin access with another admin's key, or start over on a fresh directory.
    pub fn apply_bootstrap(&self, plan: BootstrapPlan, data: &Path) -> Result<Bootstrap, RegistryError> {
        let Some(records) = plan.records else { return Ok(plan.outcome) };
        match self.install(records) {
            Ok(()) => {}
            // Another node bootstrapped the shared registry first: use its registry.
            Err(RegistryError::Conflict) if matches!(self.backing, Backing::Object { .. }) => {
                self.refresh()?;
                return Ok(Bootstrap::Shared);
            }
            Err(e) => return Err(e),
        }
        if let Some(secret) = plan.secret {
            let token_path = data.join(TOKEN_FILE);
            atomic::create(&*self.fs, &token_path, format!("{secret}\n").as_bytes(), Access::Private)
                .map_err(io_err("creating", &token_path))?;
        }
        Ok(plan.outcome)
    }

    /// Re-reads a shared registry if another node changed it. Returns whether it changed.
    pub fn refresh(&self) -> Result<bool, RegistryError> {
        let Backing::Object { store, etag, .. } = &self.backing else { return Ok(false) };
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let known = etag.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let got = store.get(OBJECT_KEY, MAX_FILE).map_err(|e| self.backing.store_err("reading", e))?;
        let Some(o) = got else { return Ok(false) };
        if known.as_deref() == Some(o.etag.as_str()) {
            return Ok(false);
        }
        let records = self.backing.parse_object(&o.bytes)?;
        *etag.lock().unwrap_or_else(|p| p.into_inner()) = Some(o.etag);
        self.generation.fetch_add(1, Ordering::SeqCst);
        let mut snap = self.snap.write().unwrap_or_else(|e| e.into_inner());
        let next = Snapshot::build(records, &snap.last_seen);
        *snap = next;
        Ok(true)
    }

    /// Whether a principal authenticated earlier may still act at `now_ms`, with the role it had
    /// then: its identity is still active with that role, its API key or public key is neither
    /// revoked nor expired, and its credential (a JWT) has not expired. For long-lived requests
    /// such as `/v1/stream`, which must not outlive a revocation.
    pub fn still_valid(&self, p: &Principal, now_ms: i64) -> bool {
        if p.expires_ms.is_some_and(|e| now_ms >= e) {
            return false;
        }
        let snap = self.snap.read().unwrap_or_else(|e| e.into_inner());
        let Some(r) = snap.records.get(&p.identity) else { return false };
        if r.status != Status::Active || r.role != p.role {
            return false;
        }
        match p.actor.auth.as_str() {
            "api_key" => snap
                .keys
                .get(&p.key_id)
                .is_some_and(|k| !k.revoked && k.expires_ms.is_none_or(|e| now_ms < e)),
            "http_signature" => snap.pubkeys.get(&p.key_id).is_some_and(|k| !k.revoked),
            _ => true,
        }
    }

    /// Checks a bearer token at `now_ms`. O(1): no scan, no disk, no allocation.
    pub fn authenticate(&self, token: &str, now_ms: i64) -> Result<Arc<Principal>, Denial> {
        let presented = apikey::parse(token).map_err(Denial::Malformed)?;
        let snap = self.snap.read().unwrap_or_else(|e| e.into_inner());
        let invalid = || Denial::Invalid { key_id: presented.embedded.then(|| presented.key_id.clone()) };
        let Some(slot) = snap.keys.get(&presented.key_id) else { return Err(invalid()) };
        if !bool::from(slot.digest.ct_eq(&presented.digest)) {
            return Err(invalid());
        }
        self.admit(slot.principal.clone(), slot.status, slot.revoked, slot.expires_ms, now_ms)
    }

    /// What every credential must pass once its key or mapping is found: the identity is
    /// active, and the key (if there is one) is neither revoked nor expired. Then notes the
    /// identity as seen (in memory; written out lazily).
    fn admit(
        &self,
        p: Arc<Principal>,
        status: Status,
        key_revoked: bool,
        key_expires_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<Arc<Principal>, Denial> {
        match status {
            Status::Revoked => return Err(Denial::IdentityRevoked(p)),
            Status::Disabled => return Err(Denial::IdentityDisabled(p)),
            Status::Active => {}
        }
        if key_revoked {
            return Err(Denial::KeyRevoked(p));
        }
        if key_expires_ms.is_some_and(|e| now_ms >= e) {
            return Err(Denial::KeyExpired(p));
        }
        if now_ms - p.last_seen.load(Ordering::Relaxed) >= 1000 {
            p.last_seen.store(now_ms, Ordering::Relaxed);
            self.dirty.store(true, Ordering::Relaxed);
        }
        Ok(p)
    }

    /// The principal for a federated credential (an OIDC token, a client certificate) that
    /// maps to identity `id`: that identity's role and allowed actions, attributed as `actor`
    /// builds it from the identity's kind. `credential` names the credential in messages.
    /// Like [`Registry::authenticate`]: no disk, one map lookup.
    pub fn federated(
        &self,
        id: &str,
        credential: &str,
        actor: impl FnOnce(crate::identity::Kind) -> Actor,
        expires_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<Arc<Principal>, Denial> {
        let snap = self.snap.read().unwrap_or_else(|e| e.into_inner());
        let Some(r) = snap.records.get(id) else {
            return Err(Denial::Federated {
                reason: "unknown-identity",
                message: format!(
                    "the credential maps to identity {id}, which is not registered; an admin can create it (graven identity create)"
                ),
            });
        };
        let p = Arc::new(Principal {
            identity: r.id.clone(),
            role: r.role,
            key_id: credential.to_owned(),
            allowed_actions: r.allowed_actions.clone(),
            source: r.source.clone(),
            actor: actor(r.kind),
            last_seen: snap.last_seen.get(id).cloned().unwrap_or_default(),
            expires_ms,
        });
        self.admit(p, r.status, false, None, now_ms)
    }

    /// Looks up a registered Ed25519 public key by its key id (an RFC 9421 `keyid` or a client
    /// signature's `key_id`). O(1), like [`Registry::authenticate`]; the caller verifies the
    /// signature with the returned key.
    pub fn public_key(
        &self,
        key_id: &str,
        now_ms: i64,
    ) -> Result<(Arc<Principal>, ed25519_dalek::VerifyingKey), Denial> {
        let snap = self.snap.read().unwrap_or_else(|e| e.into_inner());
        let Some(slot) = snap.pubkeys.get(key_id) else {
            // Only a well-formed id is quoted back in a denied record.
            let quotable = key_id.len() == 16 && key_id.bytes().all(|b| b.is_ascii_hexdigit());
            return Err(Denial::Invalid { key_id: quotable.then(|| key_id.to_owned()) });
        };
        let p = self.admit(slot.principal.clone(), slot.status, slot.revoked, None, now_ms)?;
        Ok((p, slot.key))
    }

    /// The stored identities, with live last-seen times.
    pub fn records(&self) -> BTreeMap<String, IdentityRecord> {
        self.snap.read().unwrap_or_else(|e| e.into_inner()).current()
    }

    pub fn get(&self, id: &str) -> Option<IdentityRecord> {
        let snap = self.snap.read().unwrap_or_else(|e| e.into_inner());
        let mut r = snap.records.get(id)?.clone();
        if let Some(s) = snap.last_seen.get(id).map(|s| s.load(Ordering::Relaxed)).filter(|&s| s > 0) {
            r.last_seen_ms = Some(s);
        }
        Some(r)
    }

    /// The records with live last-seen times, and the generation they belong to (see
    /// [`Registry::install_over`]).
    pub fn records_at(&self) -> (BTreeMap<String, IdentityRecord>, u64) {
        let snap = self.snap.read().unwrap_or_else(|e| e.into_inner());
        (snap.current(), self.generation.load(Ordering::SeqCst))
    }

    /// [`Registry::install`] of records derived from generation `base`, refused with
    /// [`RegistryError::Conflict`] if the registry changed since (another node's change picked
    /// up by [`Registry::refresh`]): installing them would undo that change, such as a
    /// revocation.
    pub fn install_over(
        &self,
        records: BTreeMap<String, IdentityRecord>,
        base: u64,
    ) -> Result<(), RegistryError> {
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        if self.generation.load(Ordering::SeqCst) != base {
            return Err(RegistryError::Conflict);
        }
        self.install_locked(records)
    }

    /// Makes `records` the registry: durable first (see the module's contract), then used.
    /// Callers serialise changes (read, modify, install) themselves.
    pub fn install(&self, records: BTreeMap<String, IdentityRecord>) -> Result<(), RegistryError> {
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        self.install_locked(records)
    }

    fn install_locked(&self, mut records: BTreeMap<String, IdentityRecord>) -> Result<(), RegistryError> {
        {
            // Keep last-seen times that advanced since the caller read the records.
            let snap = self.snap.read().unwrap_or_else(|e| e.into_inner());
            for (id, r) in records.iter_mut() {
                let live = snap.last_seen.get(id).map_or(0, |s| s.load(Ordering::Relaxed));
                if live > r.last_seen_ms.unwrap_or(0) {
                    r.last_seen_ms = Some(live);
                }
            }
        }
        self.dirty.store(false, Ordering::Relaxed);
        self.backing.save(&*self.fs, &records)?;
        let mut snap = self.snap.write().unwrap_or_else(|e| e.into_inner());
        let next = Snapshot::build(records, &snap.last_seen);
        *snap = next;
        Ok(())
    }

    /// Writes last-seen times if any changed since the last write. Returns whether it wrote.
    pub fn flush(&self) -> Result<bool, RegistryError> {
        if !self.dirty.swap(false, Ordering::Relaxed) {
            return Ok(false);
        }
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let records = self.records();
        match self.backing.save(&*self.fs, &records) {
            Ok(()) => Ok(true),
            // Another node wrote first; its times are as good. Take its version.
            Err(RegistryError::Conflict) => {
                drop(_w);
                self.refresh().map(|_| false)
            }
            Err(e) => Err(e),
        }
    }
}

/// Adds a key record (no checks: callers validated the identity).
pub fn add_key(
    records: &mut BTreeMap<String, IdentityRecord>,
    identity: &str,
    key_id: &str,
    digest: &[u8; 32],
    now_ms: i64,
    expires_ms: Option<i64>,
) {
    if let Some(r) = records.get_mut(identity) {
        r.keys.push(KeyRecord {
            key_id: key_id.to_owned(),
            sha256: graven_core::hex::encode(digest),
            created_ms: now_ms,
            expires_ms,
            revoked_ms: None,
        });
    }
}

/// The records in `path`; none if there is no file yet.
fn read_file(fs: &dyn Fs, path: &Path) -> Result<BTreeMap<String, IdentityRecord>, RegistryError> {
    match fs.read(path, MAX_FILE) {
        Ok(text) => parse(&text, path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) if e.kind() == io::ErrorKind::FileTooLarge => {
            Err(RegistryError::Corrupt { path: path.to_path_buf(), why: "larger than 256 MiB".into() })
        }
        Err(e) => Err(io_err("reading", path)(e)),
    }
}

fn parse(text: &[u8], path: &Path) -> Result<BTreeMap<String, IdentityRecord>, RegistryError> {
    crate::registry_file::parse(text).map_err(|why| RegistryError::Corrupt { path: path.to_path_buf(), why })
}

fn encode(records: &BTreeMap<String, IdentityRecord>, path: &Path) -> Result<Vec<u8>, RegistryError> {
    crate::registry_file::encode(records)
        .map_err(|why| RegistryError::Corrupt { path: path.to_path_buf(), why })
}

/// Replaces the file durably and atomically (see the module's contract).
fn write_file(
    fs: &dyn Fs,
    path: &Path,
    records: &BTreeMap<String, IdentityRecord>,
) -> Result<(), RegistryError> {
    let bytes = encode(records, path)?;
    atomic::replace(fs, path, &bytes, Access::Private).map_err(io_err("writing", path))
}

/// Reads a small file (a token) of at most 4 KiB; `None` if there is none.
fn read_small(fs: &dyn Fs, path: &Path) -> Result<Option<String>, RegistryError> {
    match fs.read(path, 4096) {
        Ok(bytes) => String::from_utf8(bytes).map(Some).map_err(|_| RegistryError::Corrupt {
            path: path.to_path_buf(),
            why: "it is not UTF-8 text".into(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::FileTooLarge => {
            Err(RegistryError::Corrupt { path: path.to_path_buf(), why: "it is larger than 4 KiB".into() })
        }
        Err(e) => Err(io_err("reading", path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(dir: &Path) -> String {
        std::fs::read_to_string(dir.join(TOKEN_FILE)).unwrap().trim().to_owned()
    }

    #[test]
    fn a_fresh_directory_gets_an_admin_key() {
        let d = tempfile::tempdir().unwrap();
        let (reg, b) = Registry::open_unlogged(d.path(), 1000).unwrap();
        assert_eq!(b, Bootstrap::Created);
        let t = token(d.path());
        assert_eq!(t.len(), apikey::KEY_LEN);
        let p = reg.authenticate(&t, 2000).unwrap();
        assert_eq!((p.identity.as_str(), p.role), (BOOTSTRAP_ID, Role::Admin));
        assert_eq!(p.actor.credential, format!("key:{}", p.key_id));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(d.path().join(TOKEN_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // The file never holds the key, only its digest.
        let file = std::fs::read_to_string(d.path().join(FILE_NAME)).unwrap();
        assert!(!file.contains(&t) && !file.contains(&t[21..]));
        // Reopening changes nothing.
        drop(reg);
        let (reg, b) = Registry::open_unlogged(d.path(), 3000).unwrap();
        assert_eq!(b, Bootstrap::Unchanged);
        assert!(reg.authenticate(&t, 4000).is_ok());
    }

    #[test]
    fn an_old_token_keeps_working() {
        let d = tempfile::tempdir().unwrap();
        let old = "gvn_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        std::fs::write(d.path().join(TOKEN_FILE), format!("{old}\n")).unwrap();
        let (reg, b) = Registry::open_unlogged(d.path(), 0).unwrap();
        assert_eq!(b, Bootstrap::Migrated);
        assert_eq!(reg.authenticate(old, 1).unwrap().identity, BOOTSTRAP_ID);
        assert_eq!(token(d.path()), old, "the token file is left alone");
        let (_, b) = Registry::open_unlogged(d.path(), 2).unwrap();
        assert_eq!(b, Bootstrap::Unchanged);
    }

    /// Review item 3: revoking the bootstrap key and then making 32 more keys pruned the revoked
    /// record, and the next start registered `admin.token` again as an active admin key, with
    /// no event in the log. Key records are never pruned, and a registry that has had an admin
    /// key never takes one from a file.
    #[test]
    fn a_revoked_bootstrap_key_never_comes_back() {
        let d = tempfile::tempdir().unwrap();
        let reg = Registry::open(d.path()).unwrap();
        let plan = reg.plan_bootstrap(d.path(), 1000).unwrap();
        // A fresh registry: the admin identity and its key, both recorded first.
        let actions: Vec<_> = plan.events.iter().map(|e| e["action"].as_str().unwrap().to_owned()).collect();
        assert_eq!(actions, ["graven.identity.create", "graven.key.create"]);
        assert_eq!(plan.events[0]["details"]["role"], "admin");
        assert_eq!(reg.apply_bootstrap(plan, d.path()).unwrap(), Bootstrap::Created);
        let t = token(d.path());
        let kid = t[4..20].to_owned();
        let mut recs = reg.records();
        recs.get_mut(BOOTSTRAP_ID).unwrap().keys[0].revoked_ms = Some(1500);
        for n in 0..40 {
            let m = apikey::mint().unwrap();
            add_key(&mut recs, BOOTSTRAP_ID, &m.key_id, &m.digest, 2000 + n, None);
        }
        reg.install(recs).unwrap();
        drop(reg);
        let reg = Registry::open(d.path()).unwrap();
        let plan = reg.plan_bootstrap(d.path(), 3000).unwrap();
        assert!(plan.events.is_empty());
        assert_eq!(
            reg.apply_bootstrap(plan, d.path()).unwrap(),
            Bootstrap::Stale { key_id: kid.clone(), why: "was revoked" }
        );
        assert!(matches!(reg.authenticate(&t, 3000), Err(Denial::KeyRevoked(_))));
        // With the revoked record gone (a registry written by an older version that pruned it),
        // the file still does not bring the key back: the registry has had admin keys.
        let mut recs = reg.records();
        recs.get_mut(BOOTSTRAP_ID).unwrap().keys.retain(|k| k.key_id != kid);
        reg.install(recs).unwrap();
        let plan = reg.plan_bootstrap(d.path(), 4000).unwrap();
        assert!(plan.events.is_empty());
        assert!(matches!(reg.apply_bootstrap(plan, d.path()).unwrap(), Bootstrap::Stale { .. }));
        assert!(reg.authenticate(&t, 4000).is_err());
        // Nor does deleting the token file mint a new one.
        std::fs::remove_file(d.path().join(TOKEN_FILE)).unwrap();
        let before = reg.records();
        let plan = reg.plan_bootstrap(d.path(), 5000).unwrap();
        assert_eq!(reg.apply_bootstrap(plan, d.path()).unwrap(), Bootstrap::NoToken);
        assert!(!d.path().join(TOKEN_FILE).exists());
        assert_eq!(reg.records(), before);
    }

    #[test]
    fn an_expired_bootstrap_key_stays_expired() {
        let d = tempfile::tempdir().unwrap();
        let (reg, _) = Registry::open_unlogged(d.path(), 0).unwrap();
        let mut recs = reg.records();
        recs.get_mut(BOOTSTRAP_ID).unwrap().keys[0].expires_ms = Some(10);
        reg.install(recs).unwrap();
        drop(reg);
        let (reg, b) = Registry::open_unlogged(d.path(), 20).unwrap();
        assert!(matches!(b, Bootstrap::Stale { why: "has expired", .. }), "{b:?}");
        assert!(matches!(reg.authenticate(&token(d.path()), 20), Err(Denial::KeyExpired(_))));
    }

    #[test]
    fn keys_are_refused_for_each_reason() {
        let d = tempfile::tempdir().unwrap();
        let (reg, _) = Registry::open_unlogged(d.path(), 0).unwrap();
        let t = token(d.path());
        let kid = &t[4..20];
        let forged = format!("gvn_{kid}_{}", "A".repeat(43));
        assert!(matches!(reg.authenticate(&forged, 1), Err(Denial::Invalid { key_id: Some(k) }) if k == kid));
        assert!(matches!(reg.authenticate("nonsense", 1), Err(Denial::Malformed(_))));
        let mut recs = reg.records();
        recs.get_mut(BOOTSTRAP_ID).unwrap().keys[0].expires_ms = Some(10);
        reg.install(recs).unwrap();
        assert!(reg.authenticate(&t, 9).is_ok());
        assert!(matches!(reg.authenticate(&t, 10), Err(Denial::KeyExpired(_))));
        let mut recs = reg.records();
        recs.get_mut(BOOTSTRAP_ID).unwrap().keys[0].revoked_ms = Some(5);
        reg.install(recs).unwrap();
        assert!(matches!(reg.authenticate(&t, 6), Err(Denial::KeyRevoked(_))));
        let mut recs = reg.records();
        recs.get_mut(BOOTSTRAP_ID).unwrap().status = Status::Disabled;
        reg.install(recs).unwrap();
        assert!(matches!(reg.authenticate(&t, 6), Err(Denial::IdentityDisabled(_))));
        // Survives a reopen (the durable file, not just memory).
        drop(reg);
        let reg = Registry {
            fs: Arc::new(RealFs),
            backing: Backing::File(d.path().join(FILE_NAME)),
            snap: RwLock::new(Snapshot::build(
                read_file(&RealFs, &d.path().join(FILE_NAME)).unwrap(),
                &HashMap::new(),
            )),
            dirty: AtomicBool::new(false),
            write: Mutex::new(()),
            generation: std::sync::atomic::AtomicU64::new(0),
        };
        assert!(matches!(reg.authenticate(&t, 6), Err(Denial::IdentityDisabled(_))));
    }

    #[test]
    fn last_seen_is_kept_in_memory_and_flushed_lazily() {
        let d = tempfile::tempdir().unwrap();
        let (reg, _) = Registry::open_unlogged(d.path(), 0).unwrap();
        let t = token(d.path());
        let before = std::fs::read(d.path().join(FILE_NAME)).unwrap();
        reg.authenticate(&t, 5_000).unwrap();
        assert_eq!(std::fs::read(d.path().join(FILE_NAME)).unwrap(), before, "no disk write per request");
        assert_eq!(reg.get(BOOTSTRAP_ID).unwrap().last_seen_ms, Some(5_000));
        assert!(reg.flush().unwrap());
        assert!(!reg.flush().unwrap(), "nothing new to write");
        assert_eq!(
            read_file(&RealFs, &d.path().join(FILE_NAME)).unwrap()[BOOTSTRAP_ID].last_seen_ms,
            Some(5_000)
        );
    }

    #[test]
    fn a_corrupt_registry_is_an_error_not_an_empty_one() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(FILE_NAME), "{\"version\":1,\"identities\":[{\"id\":5}]}").unwrap();
        assert!(matches!(Registry::open_unlogged(d.path(), 0), Err(RegistryError::Corrupt { .. })));
        assert!(!d.path().join(TOKEN_FILE).exists());
    }

    /// A shared registry lives in an object that anyone with the bucket's credentials can
    /// write. Only versions signed by the log's key are used: a forged one (an attacker adding
    /// their own admin key) is refused at start and ignored by a running node, which keeps the
    /// registry it had. A second node joins without changing anything.
    #[test]
    fn a_shared_registry_is_signed_and_a_forged_one_is_refused() {
        use graven_tlog::{Cond, MemStore, ObjectStore};
        let store = Arc::new(MemStore::new());
        let key = SignerKey::from_seed("test.example/log", [9; 32]).unwrap();
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let shared = |dir: &Path| -> Result<(Registry, Bootstrap), RegistryError> {
            let reg = Registry::open_shared(store.clone(), key.clone())?;
            let plan = reg.plan_bootstrap(dir, 1000)?;
            let outcome = reg.apply_bootstrap(plan, dir)?;
            Ok((reg, outcome))
        };
        let (first, outcome) = shared(a.path()).unwrap();
        assert_eq!(outcome, Bootstrap::Created);
        let admin = token(a.path());
        let written = store.get(OBJECT_KEY, MAX_FILE).unwrap().unwrap();
        let (second, outcome) = shared(b.path()).unwrap();
        assert_eq!(outcome, Bootstrap::Shared);
        assert!(!b.path().join(TOKEN_FILE).exists());
        assert!(second.authenticate(&admin, 2000).is_ok(), "the first node's admin key works on the second");
        assert_eq!(
            store.get(OBJECT_KEY, MAX_FILE).unwrap().unwrap().etag,
            written.etag,
            "joining wrote nothing"
        );

        // Forged: the same registry with one more admin key, unsigned, or signed by another key.
        let m = apikey::mint().unwrap();
        let mut records = first.records();
        add_key(&mut records, BOOTSTRAP_ID, &m.key_id, &m.digest, 3000, None);
        let json = encode(&records, Path::new("x")).unwrap();
        let other = SignerKey::from_seed("test.example/log", [10; 32]).unwrap();
        for forged in [json.clone(), seal(&json, &other).unwrap()] {
            store.put(OBJECT_KEY, &forged, Cond::Any, false).unwrap();
            assert!(matches!(second.refresh(), Err(RegistryError::Corrupt { .. })));
            assert!(second.authenticate(&m.key, 4000).is_err(), "the forged key is not accepted");
            assert!(second.authenticate(&admin, 4000).is_ok(), "the registry it had is kept");
            let c = tempfile::tempdir().unwrap();
            let e = shared(c.path()).unwrap_err();
            assert!(e.to_string().contains("not signed by the log's key"), "{e}");
        }
        // A version Graven wrote, put back, is accepted again.
        let (stale, base) = second.records_at();
        store.put(OBJECT_KEY, &written.bytes, Cond::Any, false).unwrap();
        assert!(second.refresh().unwrap());
        assert!(second.authenticate(&admin, 5000).is_ok());
        // A change computed from the registry as it was before another node's change was
        // taken up is refused, not written over it (it could undo a revocation).
        assert!(matches!(second.install_over(stale, base), Err(RegistryError::Conflict)));
        let (fresh, base) = second.records_at();
        second.install_over(fresh, base).unwrap();
    }
}

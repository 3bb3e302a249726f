//! Object storage for a tiled log: the few operations the object-store writer (`ObjectLog`)
//! and the readers need, behind a trait, so the same protocol runs on S3 (crate `graven-s3`)
//! and, in tests, on [`MemStore`], which can also fail on demand.
//!
//! Contract, for every implementation:
//! - Keys are relative paths with `/` separators (`checkpoint`, `tile/0/x001/234`,
//!   `graven/head`); the store adds its own prefix.
//! - `put` is atomic: a reader sees the old object or the new one, never a mix. When it returns
//!   `Ok`, the object is durable (for S3: acknowledged by the service).
//! - [`Cond::IfAbsent`] and [`Cond::IfMatch`] are checked atomically with the write; of two
//!   racing writers with the same condition, at most one succeeds. This is what makes the log's
//!   single commit point a compare-and-swap.
//! - `retain` asks for the object to be written under the store's retention (S3 Object Lock),
//!   so that no credential can delete or replace that version before the period ends.
//! - An ETag identifies one version of one object's bytes; `put` returns the new one.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The size an object named after a tree size is named by (archived checkpoints, time-stamp
/// tokens): exactly 20 ASCII digits, so each size has one name.
pub fn parse_size_name(name: &str) -> Option<u64> {
    if name.len() != 20 || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

/// The sizes named by the keys `<prefix><size, 20 digits>` in `after + 1 ..= until`, in
/// increasing order, at most `limit` (one "first key after" request each).
pub fn sizes_under(
    store: &dyn ObjectStore,
    prefix: &str,
    after: u64,
    until: u64,
    limit: usize,
) -> Result<Vec<u64>, StoreError> {
    let mut sizes = Vec::new();
    let mut last = format!("{prefix}{after:020}");
    while sizes.len() < limit {
        let Some(key) = store.first_key_after(prefix, &last)? else { break };
        match key.strip_prefix(prefix).and_then(parse_size_name) {
            Some(size) if size > until => break,
            Some(size) => sizes.push(size),
            // Not one of ours (a stray object under the prefix): step over it.
            None => {}
        }
        last = key;
    }
    Ok(sizes)
}

/// One stored object: its bytes and its version tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub bytes: Vec<u8>,
    pub etag: String,
}

/// The condition a `put` must meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cond<'a> {
    /// Write whatever is there.
    Any,
    /// Write only if no object has this key (`If-None-Match: *`).
    IfAbsent,
    /// Write only if the object's current ETag is this one (`If-Match`).
    IfMatch(&'a str),
}

/// Why an object operation failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreError {
    /// The write's condition did not hold: another writer got there first.
    #[error("{key} was changed by another writer (the write's condition did not hold)")]
    Precondition { key: String },
    /// An immutable object already exists with other bytes.
    #[error(
        "{key} already holds different bytes; tiles, bundles and archived checkpoints are never replaced. The store was altered, or two logs share this prefix"
    )]
    Conflict { key: String },
    #[error("{key} is larger than the {limit}-byte limit for that kind of object")]
    TooLarge { key: String, limit: u64 },
    /// Anything else: the network, the service, permissions. Whether the write happened is
    /// unknown.
    #[error("{op} {key}: {msg}")]
    Io { op: &'static str, key: String, msg: String },
}

/// The operations the log needs of an object store. See the module documentation for the
/// contract.
pub trait ObjectStore: fmt::Debug + Send + Sync {
    /// The object's bytes and ETag, or `None` if there is no such object. Objects over `limit`
    /// bytes are refused with [`StoreError::TooLarge`] without being read whole.
    fn get(&self, key: &str, limit: u64) -> Result<Option<Object>, StoreError>;

    /// Writes `data` under `key` if `cond` holds, and returns the new ETag.
    fn put(&self, key: &str, data: &[u8], cond: Cond<'_>, retain: bool) -> Result<String, StoreError>;

    /// Writes every object create-only and retained ([`put_immutable`]), as concurrently as
    /// the store allows. Stops at the first error, which is returned.
    fn put_immutable_all(&self, objects: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        for (key, data) in objects {
            put_immutable(self, key, data)?;
        }
        Ok(())
    }

    /// The first key under `prefix` that sorts after `after` and has, or ever had, a version:
    /// deleted keys count (on S3: versions and delete markers both), so a delete marker
    /// cannot hide that an object existed. `None` if there is none.
    fn first_key_after(&self, prefix: &str, after: &str) -> Result<Option<String>, StoreError>;

    /// Where the objects live, for messages (`s3://bucket/prefix`).
    fn location(&self) -> String;

    /// Requests made so far, by operation, for metrics and benchmarks.
    fn request_counts(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}

/// Writes an object that must never change: create-only, under retention. If the key already
/// holds the same bytes (an earlier attempt, or another node integrating the same batch), that
/// is success; different bytes are [`StoreError::Conflict`].
pub fn put_immutable<S: ObjectStore + ?Sized>(store: &S, key: &str, data: &[u8]) -> Result<(), StoreError> {
    match store.put(key, data, Cond::IfAbsent, true) {
        Ok(_) => Ok(()),
        Err(StoreError::Precondition { .. }) => match store.get(key, data.len() as u64) {
            Ok(Some(o)) if o.bytes == data => Ok(()),
            // Absent again (removed between the two requests, or a delete marker), other bytes,
            // or more bytes than these (the read is limited to their length, so it says
            // TooLarge): all mean the key holds something else.
            Ok(_) | Err(StoreError::TooLarge { .. }) => Err(StoreError::Conflict { key: key.to_owned() }),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    }
}

/// One object in a [`MemStore`]: its bytes, its version number, and whether it is retained.
type MemObject = (Vec<u8>, u64, bool);

/// A store in memory, for tests of the protocol: it keeps each key's current version and
/// counts requests, and can be told to fail. Not a stand-in for S3 in tests of S3 behaviour.
///
/// Like a versioned bucket it can also keep every version of chosen keys
/// ([`MemStore::keep_versions`]), so a test sees each checkpoint a log ever published, not only
/// the last one.
#[derive(Debug, Default)]
pub struct MemStore {
    objects: Mutex<HashMap<String, MemObject>>,
    /// Every key ever written, deleted ones included (a versioned bucket keeps them).
    ever: Mutex<std::collections::BTreeSet<String>>,
    version: AtomicU64,
    /// Puts left before every later put fails with [`StoreError::Io`]; `u64::MAX` means never.
    puts_left: AtomicU64,
    /// Whether a put that "fails" still lands (the reply was lost, not the request).
    land_failed_puts: std::sync::atomic::AtomicBool,
    gets: AtomicU64,
    puts: AtomicU64,
    /// Every version written of the keys asked for, oldest first.
    versions: Mutex<HashMap<String, Vec<Vec<u8>>>>,
}

impl MemStore {
    pub fn new() -> Self {
        MemStore { puts_left: AtomicU64::new(u64::MAX), ..Default::default() }
    }

    /// After `n` more successful puts, every put fails. With `land`, the failing puts are
    /// still applied, as when the service wrote the object but its answer was lost.
    pub fn fail_after(&self, n: u64, land: bool) {
        self.land_failed_puts.store(land, Ordering::SeqCst);
        self.puts_left.store(n, Ordering::SeqCst);
    }

    /// Lets puts succeed again.
    pub fn heal(&self) {
        self.puts_left.store(u64::MAX, Ordering::SeqCst);
    }

    /// Replaces an object outright, ignoring retention: what an attacker with the store's
    /// credentials does on an unlocked store.
    pub fn tamper(&self, key: &str, data: Option<&[u8]>) {
        let mut objects = self.objects.lock().unwrap_or_else(|p| p.into_inner());
        let v = self.version.fetch_add(1, Ordering::SeqCst);
        self.ever.lock().unwrap_or_else(|p| p.into_inner()).insert(key.to_owned());
        match data {
            Some(d) => {
                objects.insert(key.to_owned(), (d.to_vec(), v, false));
                self.versioned(key, d);
            }
            None => {
                objects.remove(key);
            }
        }
    }

    /// Every key, sorted.
    pub fn keys(&self) -> Vec<String> {
        let mut k: Vec<String> =
            self.objects.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect();
        k.sort();
        k
    }

    /// From now on, keeps every version written of `key` (by a put that lands, or by
    /// [`MemStore::tamper`]; a removal is not a version).
    pub fn keep_versions(&self, key: &str) {
        self.versions.lock().unwrap_or_else(|p| p.into_inner()).entry(key.to_owned()).or_default();
    }

    /// The versions of `key` written since [`MemStore::keep_versions`], oldest first, from the
    /// `from`-th on (so a caller can read only the new ones).
    pub fn versions(&self, key: &str, from: usize) -> Vec<Vec<u8>> {
        self.versions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .map(|v| v.get(from..).unwrap_or_default().to_vec())
            .unwrap_or_default()
    }

    fn versioned(&self, key: &str, data: &[u8]) {
        if let Some(v) = self.versions.lock().unwrap_or_else(|p| p.into_inner()).get_mut(key) {
            v.push(data.to_vec());
        }
    }

    /// Whether `key` was written under retention.
    pub fn retained(&self, key: &str) -> bool {
        self.objects.lock().unwrap_or_else(|p| p.into_inner()).get(key).is_some_and(|o| o.2)
    }
}

impl ObjectStore for MemStore {
    fn get(&self, key: &str, limit: u64) -> Result<Option<Object>, StoreError> {
        self.gets.fetch_add(1, Ordering::Relaxed);
        let objects = self.objects.lock().unwrap_or_else(|p| p.into_inner());
        match objects.get(key) {
            None => Ok(None),
            Some((b, _, _)) if b.len() as u64 > limit => {
                Err(StoreError::TooLarge { key: key.to_owned(), limit })
            }
            Some((b, v, _)) => Ok(Some(Object { bytes: b.clone(), etag: format!("\"{v}\"") })),
        }
    }

    fn put(&self, key: &str, data: &[u8], cond: Cond<'_>, retain: bool) -> Result<String, StoreError> {
        self.puts.fetch_add(1, Ordering::Relaxed);
        let fail = self
            .puts_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| match n {
                u64::MAX => Some(n),
                0 => None,
                n => Some(n - 1),
            })
            .is_err();
        let mut objects = self.objects.lock().unwrap_or_else(|p| p.into_inner());
        let current = objects.get(key);
        let holds = match cond {
            Cond::Any => current.is_none_or(|o| !o.2),
            Cond::IfAbsent => current.is_none(),
            Cond::IfMatch(tag) => current.is_some_and(|o| !o.2 && format!("\"{}\"", o.1) == tag),
        };
        if fail && !self.land_failed_puts.load(Ordering::SeqCst) {
            return Err(StoreError::Io {
                op: "writing",
                key: key.to_owned(),
                msg: "injected failure".into(),
            });
        }
        if !holds {
            return Err(StoreError::Precondition { key: key.to_owned() });
        }
        let v = self.version.fetch_add(1, Ordering::SeqCst);
        objects.insert(key.to_owned(), (data.to_vec(), v, retain));
        self.ever.lock().unwrap_or_else(|p| p.into_inner()).insert(key.to_owned());
        self.versioned(key, data);
        if fail {
            return Err(StoreError::Io {
                op: "writing",
                key: key.to_owned(),
                msg: "injected lost reply".into(),
            });
        }
        Ok(format!("\"{v}\""))
    }

    fn first_key_after(&self, prefix: &str, after: &str) -> Result<Option<String>, StoreError> {
        let ever = self.ever.lock().unwrap_or_else(|p| p.into_inner());
        Ok(ever
            .range::<str, _>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
            .find(|k| k.starts_with(prefix))
            .cloned())
    }

    fn location(&self) -> String {
        "memory".into()
    }

    fn request_counts(&self) -> Vec<(&'static str, u64)> {
        vec![("get", self.gets.load(Ordering::Relaxed)), ("put", self.puts.load(Ordering::Relaxed))]
    }
}

/// The verifier's view of a log in an object store: `graven_verify`'s [`Fetch`] over any
/// [`ObjectStore`], so `graven verify` reads S3 with the store's own credentials.
///
/// Only with the `verify` feature: the writer's library does not otherwise depend on the
/// verifier.
///
/// [`Fetch`]: graven_verify::Fetch
#[cfg(feature = "verify")]
#[derive(Debug, Clone)]
pub struct StoreFetch {
    store: std::sync::Arc<dyn ObjectStore>,
}

#[cfg(feature = "verify")]
impl StoreFetch {
    pub fn new(store: std::sync::Arc<dyn ObjectStore>) -> Self {
        StoreFetch { store }
    }
}

#[cfg(feature = "verify")]
impl graven_verify::Fetch for StoreFetch {
    fn fetch(&mut self, path: &str, limit: u64) -> Result<Option<Vec<u8>>, graven_verify::FetchError> {
        match self.store.get(path, limit) {
            Ok(o) => Ok(o.map(|o| o.bytes)),
            Err(StoreError::TooLarge { .. }) => {
                Err(graven_verify::FetchError::TooLarge { path: path.to_owned(), limit })
            }
            Err(e) => Err(graven_verify::FetchError::Other(e.to_string())),
        }
    }

    fn location(&self) -> String {
        self.store.location()
    }

    fn stamped_sizes(
        &mut self,
        after: u64,
        until: u64,
        limit: usize,
    ) -> Result<Option<Vec<u64>>, graven_verify::FetchError> {
        sizes_under(self.store.as_ref(), graven_verify::timestamps::TIMESTAMP_DIR, after, until, limit)
            .map(Some)
            .map_err(|e| graven_verify::FetchError::Other(e.to_string()))
    }
}

/// A bounded in-memory cache in front of a store, for the objects that never change once
/// written: everything under `tile/` (hash tiles and entry bundles, full and partial, are all
/// create-only under names that say what they hold). Reads of other keys, and writes, go to
/// the store; objects this node writes are cached as they are written, so the receipts and
/// proofs that follow a commit read nothing back from the store.
///
/// Serving a cached copy after someone replaced the object in the store is not a hazard: the
/// cached bytes are the ones that were written first, the ones every checkpoint covers.
#[derive(Debug)]
pub struct CachedStore {
    inner: std::sync::Arc<dyn ObjectStore>,
    max_bytes: usize,
    cache: Mutex<Cache>,
}

#[derive(Debug, Default)]
struct Cache {
    objects: HashMap<String, Object>,
    /// Keys in insertion order, for eviction (oldest first).
    order: std::collections::VecDeque<String>,
    bytes: usize,
    hits: u64,
}

impl CachedStore {
    pub fn new(inner: std::sync::Arc<dyn ObjectStore>, max_bytes: usize) -> Self {
        CachedStore { inner, max_bytes, cache: Mutex::new(Cache::default()) }
    }

    fn cacheable(key: &str) -> bool {
        key.starts_with("tile/")
    }

    fn insert(&self, key: &str, object: Object) {
        if object.bytes.len() > self.max_bytes / 4 {
            return;
        }
        let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if c.objects.contains_key(key) {
            return;
        }
        c.bytes += object.bytes.len();
        c.objects.insert(key.to_owned(), object);
        c.order.push_back(key.to_owned());
        while c.bytes > self.max_bytes {
            let Some(old) = c.order.pop_front() else { break };
            if let Some(o) = c.objects.remove(&old) {
                c.bytes -= o.bytes.len();
            }
        }
    }
}

impl ObjectStore for CachedStore {
    fn get(&self, key: &str, limit: u64) -> Result<Option<Object>, StoreError> {
        if Self::cacheable(key) {
            let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(o) = c.objects.get(key) {
                if o.bytes.len() as u64 > limit {
                    return Err(StoreError::TooLarge { key: key.to_owned(), limit });
                }
                let o = o.clone();
                c.hits += 1;
                return Ok(Some(o));
            }
        }
        let got = self.inner.get(key, limit)?;
        if let (true, Some(o)) = (Self::cacheable(key), &got) {
            self.insert(key, o.clone());
        }
        Ok(got)
    }

    fn put(&self, key: &str, data: &[u8], cond: Cond<'_>, retain: bool) -> Result<String, StoreError> {
        let etag = self.inner.put(key, data, cond, retain)?;
        if Self::cacheable(key) && cond == Cond::IfAbsent {
            self.insert(key, Object { bytes: data.to_vec(), etag: etag.clone() });
        }
        Ok(etag)
    }

    fn put_immutable_all(&self, objects: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        self.inner.put_immutable_all(objects)?;
        for (key, data) in objects.iter().filter(|(k, _)| Self::cacheable(k)) {
            // The ETag of a cached copy is never used for a condition (these objects are only
            // ever written create-only), so it is left empty rather than fetched.
            self.insert(key, Object { bytes: data.clone(), etag: String::new() });
        }
        Ok(())
    }

    fn first_key_after(&self, prefix: &str, after: &str) -> Result<Option<String>, StoreError> {
        self.inner.first_key_after(prefix, after)
    }

    fn location(&self) -> String {
        self.inner.location()
    }

    fn request_counts(&self) -> Vec<(&'static str, u64)> {
        self.inner.request_counts()
    }
}

impl CachedStore {
    /// Reads answered from the cache so far.
    pub fn hits(&self) -> u64 {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).hits
    }

    /// Bytes cached now.
    pub fn cached_bytes(&self) -> usize {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mem_store_keeps_every_version_of_the_keys_asked_for() {
        let s = MemStore::new();
        s.put("checkpoint", b"0", Cond::Any, false).unwrap();
        s.keep_versions("checkpoint");
        let t1 = s.put("checkpoint", b"1", Cond::Any, false).unwrap();
        // A put whose condition fails, or that fails before landing, is no version...
        assert!(s.put("checkpoint", b"x", Cond::IfAbsent, false).is_err());
        s.fail_after(0, false);
        assert!(s.put("checkpoint", b"y", Cond::IfMatch(&t1), false).is_err());
        // ...one whose reply was lost is.
        s.fail_after(0, true);
        assert!(s.put("checkpoint", b"2", Cond::IfMatch(&t1), false).is_err());
        s.heal();
        s.tamper("checkpoint", Some(b"3"));
        s.tamper("checkpoint", None);
        s.put("other", b"z", Cond::Any, false).unwrap();
        assert_eq!(s.versions("checkpoint", 0), [b"1".to_vec(), b"2".to_vec(), b"3".to_vec()]);
        assert_eq!(s.versions("checkpoint", 2), [b"3".to_vec()]);
        assert!(s.versions("checkpoint", 9).is_empty());
        assert!(s.versions("other", 0).is_empty(), "only the keys asked for");
    }
}

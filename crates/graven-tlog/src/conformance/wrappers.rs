//! Stores around a store under test: one that fails its puts on demand ([`Failing`]) and one
//! that lets another writer act between two requests of this one ([`Hooked`]). Both pass
//! everything else to the real store, so the suite injects the fault, and the store answers.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::objstore::{Cond, Object, ObjectStore, StoreError};

/// A store whose puts fail after a budget of them: a failed put is either never sent, or
/// (with `land`) sent, and its answer "lost" whatever it was. Gets and listings always work.
///
/// `put_immutable_all` is the trait's sequential one, through `put`, so every put counts.
#[derive(Debug)]
pub struct Failing {
    inner: Arc<dyn ObjectStore>,
    puts_left: AtomicU64,
    land: AtomicBool,
    puts: AtomicU64,
}

impl Failing {
    /// Around `inner`, failing every put after `budget` of them.
    pub fn new(inner: Arc<dyn ObjectStore>, budget: u64, land: bool) -> Self {
        Failing {
            inner,
            puts_left: AtomicU64::new(budget),
            land: AtomicBool::new(land),
            puts: AtomicU64::new(0),
        }
    }

    /// After `n` more puts, every put fails.
    pub fn fail_after(&self, n: u64) {
        self.puts_left.store(n, Ordering::SeqCst);
    }

    /// Puts tried so far, failed ones included.
    pub fn puts(&self) -> u64 {
        self.puts.load(Ordering::SeqCst)
    }
}

impl ObjectStore for Failing {
    fn get(&self, key: &str, limit: u64) -> Result<Option<Object>, StoreError> {
        self.inner.get(key, limit)
    }

    fn put(&self, key: &str, data: &[u8], cond: Cond<'_>, retain: bool) -> Result<String, StoreError> {
        self.puts.fetch_add(1, Ordering::SeqCst);
        let fail =
            self.puts_left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_err();
        if !fail {
            return self.inner.put(key, data, cond, retain);
        }
        let mut msg = "injected failure".to_owned();
        if self.land.load(Ordering::SeqCst) {
            let r = self.inner.put(key, data, cond, retain);
            msg = format!("injected lost reply (the put said {r:?})");
        }
        Err(StoreError::Io { op: "writing", key: key.to_owned(), msg })
    }

    fn first_key_after(&self, prefix: &str, after: &str) -> Result<Option<String>, StoreError> {
        self.inner.first_key_after(prefix, after)
    }

    fn location(&self) -> String {
        self.inner.location()
    }
}

/// Which request of a [`Hooked`] store runs its hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// A `get` of the key.
    Get,
    /// A `put` of the key.
    Put,
    /// A `first_key_after` under the key as prefix.
    List,
}

type Hook = Box<dyn FnOnce() + Send>;

/// A store that runs a hook once, just before its first request `op` on `key`: another writer
/// acting between two requests of this one, at exactly that point.
pub struct Hooked {
    inner: Arc<dyn ObjectStore>,
    op: Op,
    key: String,
    hook: Mutex<Option<Hook>>,
    ran: AtomicBool,
}

impl Hooked {
    /// Around `inner`, with no hook yet (see [`Hooked::set`]).
    pub fn new(inner: Arc<dyn ObjectStore>, op: Op, key: &str) -> Self {
        Hooked { inner, op, key: key.to_owned(), hook: Mutex::new(None), ran: AtomicBool::new(false) }
    }

    /// Arms the hook: it runs once, before the next request `op` on the key.
    pub fn set(&self, hook: impl FnOnce() + Send + 'static) {
        *self.hook.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(hook));
    }

    /// Whether the hook has run (a test that relies on it asserts that it did).
    pub fn ran(&self) -> bool {
        self.ran.load(Ordering::SeqCst)
    }

    fn before(&self, op: Op, key: &str) {
        if op == self.op && key == self.key {
            let hook = self.hook.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(hook) = hook {
                hook();
                self.ran.store(true, Ordering::SeqCst);
            }
        }
    }
}

impl fmt::Debug for Hooked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooked").field("op", &self.op).field("key", &self.key).finish_non_exhaustive()
    }
}

impl ObjectStore for Hooked {
    fn get(&self, key: &str, limit: u64) -> Result<Option<Object>, StoreError> {
        self.before(Op::Get, key);
        self.inner.get(key, limit)
    }

    fn put(&self, key: &str, data: &[u8], cond: Cond<'_>, retain: bool) -> Result<String, StoreError> {
        self.before(Op::Put, key);
        self.inner.put(key, data, cond, retain)
    }

    fn first_key_after(&self, prefix: &str, after: &str) -> Result<Option<String>, StoreError> {
        self.before(Op::List, prefix);
        self.inner.first_key_after(prefix, after)
    }

    fn location(&self) -> String {
        self.inner.location()
    }
}

/// A store that holds back every put except those of one key while it is closed: a writer's
/// publishing thread stopped at its first write while its sequencer commits further heads.
/// Opening it lets the held puts through, in the order they came.
pub struct Gate {
    inner: Arc<dyn ObjectStore>,
    /// The one key whose puts are never held.
    free: String,
    closed: Mutex<bool>,
    opened: std::sync::Condvar,
    /// Puts waiting at the gate now.
    waiting: AtomicU64,
}

impl Gate {
    /// Around `inner`, open.
    pub fn new(inner: Arc<dyn ObjectStore>, free: &str) -> Self {
        Gate {
            inner,
            free: free.to_owned(),
            closed: Mutex::new(false),
            opened: std::sync::Condvar::new(),
            waiting: AtomicU64::new(0),
        }
    }

    pub fn close(&self) {
        *self.closed.lock().unwrap_or_else(|p| p.into_inner()) = true;
    }

    pub fn open(&self) {
        *self.closed.lock().unwrap_or_else(|p| p.into_inner()) = false;
        self.opened.notify_all();
    }

    /// Waits until `n` puts are held at the gate (a test's way to know the other thread got
    /// there), for at most ten seconds.
    pub fn wait_for_held(&self, n: u64) -> bool {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while self.waiting.load(Ordering::SeqCst) < n {
            if std::time::Instant::now() > until {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        true
    }
}

/// Opens its gate when dropped: a test that fails while the gate is closed ends instead of
/// waiting forever for a thread held there.
pub struct OpenOnDrop(pub Arc<Gate>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

impl fmt::Debug for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gate").field("free", &self.free).finish_non_exhaustive()
    }
}

impl ObjectStore for Gate {
    fn get(&self, key: &str, limit: u64) -> Result<Option<Object>, StoreError> {
        self.inner.get(key, limit)
    }

    fn put(&self, key: &str, data: &[u8], cond: Cond<'_>, retain: bool) -> Result<String, StoreError> {
        if key != self.free {
            let mut closed = self.closed.lock().unwrap_or_else(|p| p.into_inner());
            if *closed {
                self.waiting.fetch_add(1, Ordering::SeqCst);
                while *closed {
                    closed = self.opened.wait(closed).unwrap_or_else(|p| p.into_inner());
                }
                self.waiting.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.inner.put(key, data, cond, retain)
    }

    fn first_key_after(&self, prefix: &str, after: &str) -> Result<Option<String>, StoreError> {
        self.inner.first_key_after(prefix, after)
    }

    fn location(&self) -> String {
        self.inner.location()
    }
}

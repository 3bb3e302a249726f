//! Keeps the search index up to date by tailing the committed log.
//!
//! The index is derived data: it follows the log, never leads it. On start it catches up from
//! wherever it stopped (or from 0 after `graven reindex`), then indexes each new checkpoint's
//! entries, a bundle at a time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use graven_core::hash::TreeSize;
use graven_index::Index;
use tokio::sync::watch;

use crate::engine::Committed;
use crate::reader::LogReader;

/// Entries indexed per index transaction at most. Bigger chunks amortise the transaction's
/// cost; the bound keeps memory and a single transaction's size in check. The index makes its
/// commits durable about once a second ([`graven_index::AUTO_FLUSH`]), not per transaction:
/// after a crash it reopens at its last durable size and this catches up from there.
const CHUNK_ENTRIES: usize = 16_384;

/// Least time between two catch-ups while the log grows: the most a search lags behind the
/// log, besides the indexing itself.
const PACE: std::time::Duration = std::time::Duration::from_millis(50);

/// Indexes entries `from..size` of the log; returns the new indexed size.
pub fn catch_up(index: &Index, reader: &LogReader, size: u64) -> Result<u64, String> {
    catch_up_reporting(index, reader, size, &mut |_| {})
}

/// [`catch_up`], telling `progress` how many entries are indexed after each transaction.
pub fn catch_up_reporting(
    index: &Index,
    reader: &LogReader,
    size: u64,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, String> {
    let mut next = index.indexed_size().map_err(|e| e.to_string())?;
    let mut chunk: Vec<Vec<u8>> = Vec::with_capacity(CHUNK_ENTRIES);
    while next < size {
        let first = next;
        chunk.clear();
        while next < size && chunk.len() < CHUNK_ENTRIES {
            let (start, entries) = reader.bundle(next, TreeSize(size)).map_err(|e| e.to_string())?;
            let skip = (next - start) as usize;
            let before = chunk.len();
            chunk.extend(entries.into_iter().skip(skip));
            if chunk.len() == before {
                return Err(format!("the bundle holding entry {next} has no entries from it on"));
            }
            next = first + chunk.len() as u64;
        }
        let slice: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
        index.add(first, &slice).map_err(|e| e.to_string())?;
        progress(next);
    }
    Ok(next)
}

/// Follows the committed checkpoint and indexes every new entry. `indexed` always holds the
/// number of entries indexed so far (for the metrics endpoint).
pub async fn run(
    index: Arc<Index>,
    mut rx: watch::Receiver<Committed>,
    reader: LogReader,
    indexed: Arc<AtomicU64>,
) {
    if let Ok(n) = index.indexed_size() {
        indexed.store(n, Ordering::Relaxed);
    }
    let reader = Arc::new(std::sync::Mutex::new(reader));
    loop {
        let size = rx.borrow_and_update().size;
        let (i, r) = (index.clone(), reader.clone());
        let work = move || catch_up(&i, &r.lock().unwrap_or_else(|p| p.into_inner()), size);
        match tokio::task::spawn_blocking(work).await {
            Ok(Ok(n)) => indexed.store(n, Ordering::Relaxed),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "indexing failed; search may be stale until restart or reindex")
            }
            Err(_) => return,
        }
        // Let commits accumulate for a moment: one larger index transaction costs far less
        // than many small ones (the index rewrites its partial block per transaction), and a
        // search may lag the log by this much anyway.
        tokio::time::sleep(PACE).await;
        if rx.changed().await.is_err() {
            return;
        }
    }
}

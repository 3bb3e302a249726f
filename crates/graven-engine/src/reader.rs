//! Reading the committed log: stored hashes for proofs, entries for reads and tails, tile
//! files for the read path. Everything is read at a tree size the caller got from a
//! committed checkpoint, so files beyond it (left by an interrupted commit) are never used.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use graven_core::hash::{Hash, LeafIndex, TreeSize};
use graven_core::merkle::{self, ProofError};
use graven_core::tile::{self, BundleId, TileId, TlogPath};
use graven_core::tile_source::{TileHashes, TileSourceError};
use graven_tlog::{Fs, MAX_BUNDLE_BYTES, MAX_TILE_BYTES, ObjectStore, RealFs};

type Fetch = Box<dyn FnMut(TileId) -> io::Result<Vec<u8>> + Send>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    #[error("index {index} is not in the log of size {size}")]
    OutOfRange { index: u64, size: u64 },
    #[error("{0}")]
    Proof(String),
    #[error("reading {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("{path} is corrupt: {why}")]
    Corrupt { path: String, why: String },
}

fn proof_err(e: ProofError<TileSourceError<io::Error>>) -> ReadError {
    ReadError::Proof(e.to_string())
}

/// Where a log's files are: a directory, or an object store (S3).
#[derive(Debug, Clone)]
pub enum Source {
    Dir { fs: Arc<dyn Fs>, dir: PathBuf },
    Objects(Arc<dyn ObjectStore>),
}

impl Source {
    /// The file at `rel` (`tile/0/001`), refused over `limit` bytes; `NotFound` if absent.
    pub fn read(&self, rel: &str, limit: u64) -> io::Result<Vec<u8>> {
        match self {
            Source::Dir { fs, dir } => fs.read(&dir.join(rel), limit),
            Source::Objects(store) => graven_tlog::read_object(store.as_ref(), rel, limit),
        }
    }
}

/// Reads a log. Keeps a bounded cache of decoded tiles for proofs.
pub struct LogReader {
    src: Source,
    hashes: TileHashes<Fetch>,
}

impl std::fmt::Debug for LogReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogReader").field("src", &self.src).finish_non_exhaustive()
    }
}

impl LogReader {
    pub fn new(dir: &Path) -> Self {
        Self::with_fs(Arc::new(RealFs), dir)
    }

    /// A reader on any [`Fs`], such as the simulated disk of the crash tests.
    pub fn with_fs(fs: Arc<dyn Fs>, dir: &Path) -> Self {
        Self::on(Source::Dir { fs, dir: dir.to_path_buf() })
    }

    /// A reader of a log in an object store.
    pub fn objects(store: Arc<dyn ObjectStore>) -> Self {
        Self::on(Source::Objects(store))
    }

    pub fn on(src: Source) -> Self {
        let s = src.clone();
        let fetch: Fetch = Box::new(move |t: TileId| s.read(&t.path(), MAX_TILE_BYTES));
        LogReader { src, hashes: TileHashes::new(TreeSize(0), fetch) }
    }

    /// A reader of the same log with an empty cache.
    pub fn fresh(&self) -> Self {
        Self::on(self.src.clone())
    }

    /// One of many inclusion proofs in the tree of `prover.size()` (see [`merkle::Prover`]).
    pub fn inclusion_proof_with(
        &mut self,
        prover: &mut merkle::Prover,
        index: LeafIndex,
    ) -> Result<Vec<Hash>, ReadError> {
        prover.proof(self.at(prover.size()), index).map_err(proof_err)
    }

    fn at(&mut self, size: TreeSize) -> &mut TileHashes<Fetch> {
        self.hashes.grow(size);
        &mut self.hashes
    }

    /// The proof that leaves `[first, first + count)` are in the tree of `size`
    /// (`graven_core::range_proof`).
    pub fn range_proof(&mut self, first: u64, count: u64, size: TreeSize) -> Result<Vec<Hash>, ReadError> {
        graven_core::range_proof::range_proof(self.at(size), first, count, size).map_err(proof_err)
    }

    pub fn inclusion_proof(&mut self, index: LeafIndex, size: TreeSize) -> Result<Vec<Hash>, ReadError> {
        merkle::inclusion_proof(self.at(size), index, size).map_err(proof_err)
    }

    pub fn consistency_proof(&mut self, from: TreeSize, to: TreeSize) -> Result<Vec<Hash>, ReadError> {
        merkle::consistency_proof(self.at(to), from, to).map_err(proof_err)
    }

    pub fn root(&mut self, size: TreeSize) -> Result<Hash, ReadError> {
        merkle::root(self.at(size), size).map_err(|e| ReadError::Proof(e.to_string()))
    }

    /// The entries of the bundle holding `index`, in the tree of `size`, and the bundle's first index.
    pub fn bundle(&self, index: u64, size: TreeSize) -> Result<(u64, Vec<Vec<u8>>), ReadError> {
        let b = tile::bundle_for_entry(index, size).ok_or(ReadError::OutOfRange { index, size: size.0 })?;
        let bytes = self.read_bundle(b)?;
        let entries = tile::decode_bundle(&bytes, b.width)
            .map_err(|e| ReadError::Corrupt { path: b.path(), why: e.to_string() })?;
        Ok((b.first_entry(), entries.into_iter().map(<[u8]>::to_vec).collect()))
    }

    /// One entry of the tree of `size`.
    pub fn entry(&self, index: u64, size: TreeSize) -> Result<Vec<u8>, ReadError> {
        let (first, mut entries) = self.bundle(index, size)?;
        let i = (index - first) as usize;
        if i >= entries.len() {
            return Err(ReadError::OutOfRange { index, size: size.0 });
        }
        Ok(entries.swap_remove(i))
    }

    fn read_bundle(&self, b: BundleId) -> Result<Vec<u8>, ReadError> {
        match self.src.read(&b.path(), MAX_BUNDLE_BYTES) {
            Ok(bytes) => Ok(bytes),
            // A partial bundle may have been superseded by the full one in a later commit.
            Err(e) if e.kind() == io::ErrorKind::NotFound && !b.is_full() => {
                let full = b.as_full();
                let bytes = self
                    .src
                    .read(&full.path(), MAX_BUNDLE_BYTES)
                    .map_err(|source| ReadError::Io { path: full.path(), source })?;
                let mut entries = tile::decode_bundle(&bytes, 256)
                    .map_err(|e| ReadError::Corrupt { path: full.path(), why: e.to_string() })?;
                entries.truncate(usize::from(b.width));
                let mut out = Vec::new();
                for e in entries {
                    tile::push_bundle_entry(&mut out, e)
                        .map_err(|e| ReadError::Corrupt { path: full.path(), why: e.to_string() })?;
                }
                Ok(out)
            }
            Err(source) => Err(ReadError::Io { path: b.path(), source }),
        }
    }

    /// The bytes of a read-path file, if it belongs to the tree of `size` (or an earlier
    /// committed size). Files beyond the committed tree are never served.
    pub fn read_path(&self, path: TlogPath, size: TreeSize) -> Result<Option<Vec<u8>>, ReadError> {
        let (rel, limit, ok) = match path {
            TlogPath::Checkpoint => return Ok(None),
            TlogPath::Tile(t) => {
                let n = tile::hashes_at_level(size, t.level);
                (
                    t.path(),
                    MAX_TILE_BYTES,
                    t.index.saturating_mul(256).saturating_add(u64::from(t.width)) <= n,
                )
            }
            TlogPath::Entries(b) => (
                b.path(),
                MAX_BUNDLE_BYTES,
                b.index.saturating_mul(256).saturating_add(u64::from(b.width)) <= size.0,
            ),
        };
        if !ok {
            return Ok(None);
        }
        match self.src.read(&rel, limit) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ReadError::Io { path: rel, source }),
        }
    }
}

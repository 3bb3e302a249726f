//! RFC 6962 §2.1 hashing, and the fixed-width newtypes every format uses.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};

/// A SHA-256 output: a leaf hash, an interior node hash or a tree root.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    pub const LEN: usize = 32;

    /// Accepts exactly 32 bytes. A proof element or root of any other length is malformed, not
    /// something to pad or truncate: concatenating unchecked elements is how a verifier ends up
    /// accepting "garbage" proofs.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, HashLengthError> {
        let arr: [u8; 32] = bytes.try_into().map_err(|_| HashLengthError { len: bytes.len() })?;
        Ok(Hash(arr))
    }

    /// Strict standard base64 (RFC 4648 §4, padded) of exactly 32 bytes.
    pub fn from_base64(s: &str) -> Result<Self, HashDecodeError> {
        let bytes = B64.decode(s).map_err(|_| HashDecodeError::Base64)?;
        Hash::from_slice(&bytes).map_err(|e| HashDecodeError::Length(e.len))
    }

    pub fn to_base64(&self) -> String {
        B64.encode(self.0)
    }

    pub fn to_hex(&self) -> String {
        crate::hex::encode(&self.0)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

impl std::fmt::Display for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_base64())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a hash must be exactly 32 bytes, got {len}")]
pub struct HashLengthError {
    pub len: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HashDecodeError {
    #[error("not standard padded base64")]
    Base64,
    #[error("decodes to {0} bytes, a hash is 32")]
    Length(usize),
}

/// Leaf hash: `SHA-256(0x00 || entry)` (RFC 6962 §2.1).
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(entry);
    Hash(h.finalize().into())
}

/// Interior node hash: `SHA-256(0x01 || left || right)` (RFC 6962 §2.1).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut buf = [0u8; 65];
    buf[0] = 0x01;
    buf[1..33].copy_from_slice(&left.0);
    buf[33..].copy_from_slice(&right.0);
    Hash(Sha256::digest(buf).into())
}

/// The root of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    Hash(Sha256::digest([]).into())
}

macro_rules! u64_newtype {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub u64);
        impl $name {
            pub const fn get(self) -> u64 { self.0 }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { self.0.fmt(f) }
        }
        impl From<u64> for $name {
            fn from(v: u64) -> Self { $name(v) }
        }
    };
}

u64_newtype!(
    /// A 0-based position of a leaf in the log.
    LeafIndex
);
u64_newtype!(
    /// A number of leaves; the tree of size `n` holds leaves `0..n`.
    TreeSize
);

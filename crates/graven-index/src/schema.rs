//! The redb tables (layout in the crate docs), their format stamp, and the keys values are
//! indexed under.

use redb::{ReadableTable, TableDefinition, WriteTransaction};

use crate::block::Time;
use crate::error::IndexError;
use crate::inventory::{CREDENTIALS, INVENTORY};

/// Field values longer than this many bytes are indexed under a truncated key (see the crate docs).
pub const MAX_KEY_BYTES: usize = 1024;
/// A value this long or shorter cannot equal a truncated key: truncation at a character boundary removes
/// at most 3 bytes from `MAX_KEY_BYTES`, so truncated keys are longer than this.
pub(crate) const EXACT_KEY_BYTES: usize = MAX_KEY_BYTES - 4;

/// Bumped whenever the on-disk layout changes; an index in another format is cleared on open.
pub(crate) const FORMAT: &[u8] = b"graven-index/3";
pub(crate) const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("state");
pub(crate) const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");
pub(crate) const CLOCKS: TableDefinition<u64, u128> = TableDefinition::new("clocks");
pub(crate) const POSTINGS: TableDefinition<(u8, &str, u64), &[u8]> = TableDefinition::new("postings");
pub(crate) const COUNTS: TableDefinition<(u8, &str), u64> = TableDefinition::new("counts");

pub(crate) const K_SIZE: &str = "size";
pub(crate) const K_CLOCK: &str = "clock";
pub(crate) const K_MONOTONIC: &str = "monotonic";
pub(crate) const K_FORMAT: &str = "format";
pub(crate) const K_BLOCK_LEN: &str = "block_len";

pub(crate) fn reset(txn: &WriteTransaction) -> Result<(), IndexError> {
    txn.delete_table(STATE)?;
    txn.delete_table(BLOCKS)?;
    txn.delete_table(CLOCKS)?;
    txn.delete_table(POSTINGS)?;
    txn.delete_table(COUNTS)?;
    txn.delete_table(INVENTORY)?;
    txn.delete_table(CREDENTIALS)?;
    // Tables of format 1, if the file was written by it.
    for name in ["meta", "by_actor", "by_action", "by_resource", "by_outcome"] {
        txn.delete_table(TableDefinition::<u64, ()>::new(name))?;
    }
    Ok(())
}

/// Creates every table (so reads never meet a missing one) and stamps the format.
pub(crate) fn create_tables(txn: &WriteTransaction, block_len: u64) -> Result<(), IndexError> {
    txn.open_table(BLOCKS)?;
    txn.open_table(CLOCKS)?;
    txn.open_table(POSTINGS)?;
    txn.open_table(COUNTS)?;
    txn.open_table(INVENTORY)?;
    txn.open_table(CREDENTIALS)?;
    let mut state = txn.open_table(STATE)?;
    state.insert(K_FORMAT, FORMAT)?;
    state.insert(K_BLOCK_LEN, &block_len.to_be_bytes()[..])?;
    Ok(())
}

pub(crate) fn read_size(state: &impl ReadableTable<&'static str, &'static [u8]>) -> Result<u64, IndexError> {
    match state.get(K_SIZE)? {
        None => Ok(0),
        Some(g) => {
            let b: [u8; 8] = g.value().try_into().map_err(|_| IndexError::Corrupt("bad size"))?;
            Ok(u64::from_be_bytes(b))
        }
    }
}

pub(crate) fn read_clock(
    state: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Time, IndexError> {
    match state.get(K_CLOCK)? {
        None => Ok(0),
        Some(g) => {
            let b: [u8; 16] = g.value().try_into().map_err(|_| IndexError::Corrupt("bad clock"))?;
            Ok(u128::from_be_bytes(b))
        }
    }
}

/// The key a value is indexed under: the value itself, or its longest prefix of at most
/// `MAX_KEY_BYTES` bytes ending on a character boundary.
pub(crate) fn index_key(value: &str) -> &str {
    if value.len() <= MAX_KEY_BYTES {
        return value;
    }
    let mut end = MAX_KEY_BYTES;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    &value[..end]
}

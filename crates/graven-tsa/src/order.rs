//! "A later checkpoint never carries an earlier time" (issue 13, §4).
//!
//! A log timestamps its checkpoints as it publishes them, so the times of verified tokens must
//! not go down as tree sizes go up. A token for a larger tree with an earlier `genTime` than a
//! token for a smaller one means a backdated or replayed token, or a TSA clock gone wrong;
//! either way the verifier refuses it. Tokens for the same size are not ordered among
//! themselves (a checkpoint may be stamped twice), but each must be no earlier than every
//! token of a smaller size. Times are compared as the TSA wrote them (`genTime`; accuracy is
//! not subtracted: the log's own interval between requests is far larger).

use graven_core::hash::TreeSize;

use crate::time::GenTime;
use crate::verify::VerifiedTimestamp;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimeOrderError {
    #[error(
        "the checkpoint of size {size} is stamped {time}, earlier than the checkpoint of size \
         {earlier_size}, stamped {earlier_time}: a later checkpoint never carries an earlier time"
    )]
    EarlierTime { size: TreeSize, time: GenTime, earlier_size: TreeSize, earlier_time: GenTime },
    #[error("timestamps must be checked in order of tree size: {size} came after {previous}")]
    OutOfOrder { size: TreeSize, previous: TreeSize },
}

/// The check, one checkpoint at a time in order of tree size (a follower's view; resumable
/// from what a trust store remembered).
#[derive(Debug, Clone, Default)]
pub struct TimeOrder {
    /// The size being seen, and the latest time among its tokens.
    current: Option<(TreeSize, GenTime)>,
    /// The latest time among tokens of smaller sizes, and its size.
    floor: Option<(TreeSize, GenTime)>,
}

impl TimeOrder {
    pub fn new() -> Self {
        TimeOrder::default()
    }

    /// Starts from a stamped checkpoint the caller remembered from an earlier, verified run
    /// (for example in its trust store).
    pub fn resume(size: TreeSize, time: GenTime) -> Self {
        TimeOrder { current: Some((size, time)), floor: None }
    }

    /// The latest stamped checkpoint seen: what to remember for [`TimeOrder::resume`].
    pub fn latest(&self) -> Option<(TreeSize, GenTime)> {
        self.current
    }

    /// Accepts the token of the checkpoint of `size`, or refuses it if it is out of order.
    /// A refused token leaves the state as it was.
    pub fn check(&mut self, size: TreeSize, stamp: &VerifiedTimestamp) -> Result<(), TimeOrderError> {
        let time = stamp.gen_time();
        let floor = match self.current {
            Some((previous, _)) if size < previous => {
                return Err(TimeOrderError::OutOfOrder { size, previous });
            }
            Some((previous, _)) if size == previous => self.floor,
            Some((previous, latest)) => Some(later(self.floor, (previous, latest))),
            None => None,
        };
        if let Some((earlier_size, earlier_time)) = floor
            && time < earlier_time
        {
            return Err(TimeOrderError::EarlierTime { size, time, earlier_size, earlier_time });
        }
        self.floor = floor;
        self.current = match self.current {
            Some((s, latest)) if s == size => Some((size, latest.max(time))),
            _ => Some((size, time)),
        };
        Ok(())
    }
}

fn later(a: Option<(TreeSize, GenTime)>, b: (TreeSize, GenTime)) -> (TreeSize, GenTime) {
    match a {
        Some(a) if a.1 > b.1 => a,
        _ => b,
    }
}

/// The same check over a whole set of stamped checkpoints, in any order.
pub fn check_time_order<'a>(
    stamps: impl IntoIterator<Item = (TreeSize, &'a VerifiedTimestamp)>,
) -> Result<(), TimeOrderError> {
    let mut all: Vec<_> = stamps.into_iter().collect();
    all.sort_by_key(|(size, _)| *size);
    let mut order = TimeOrder::new();
    all.into_iter().try_for_each(|(size, stamp)| order.check(size, stamp))
}

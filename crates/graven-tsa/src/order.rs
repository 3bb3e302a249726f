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

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> VerifiedTimestamp {
        VerifiedTimestamp::at(GenTime::new(seconds, 0).unwrap())
    }

    fn check(stamps: &[(u64, i64)]) -> Result<(), TimeOrderError> {
        let owned: Vec<(TreeSize, VerifiedTimestamp)> =
            stamps.iter().map(|(s, t)| (TreeSize(*s), at(*t))).collect();
        check_time_order(owned.iter().map(|(s, v)| (*s, v)))
    }

    /// The rule read naively: no pair has a larger size with an earlier time.
    fn naive(stamps: &[(u64, i64)]) -> bool {
        stamps.iter().all(|(s1, t1)| stamps.iter().all(|(s2, t2)| !(s2 > s1 && t2 < t1)))
    }

    #[test]
    fn agrees_with_the_rule_read_naively() {
        // Every sequence of up to four stamps over sizes 1..=3 and times 0..=2.
        let mut all: Vec<Vec<(u64, i64)>> = vec![vec![]];
        let mut last = vec![vec![]];
        for _ in 0..4 {
            let mut next = Vec::new();
            for c in &last {
                for s in 1..=3u64 {
                    for t in 0..=2i64 {
                        let mut n = c.clone();
                        n.push((s, t));
                        next.push(n);
                    }
                }
            }
            all.extend(next.iter().cloned());
            last = next;
        }
        assert_eq!(all.len(), 1 + 9 + 81 + 729 + 6561);
        for c in &all {
            assert_eq!(check(c).is_ok(), naive(c), "{c:?}");
        }
    }

    #[test]
    fn names_the_earlier_checkpoint() {
        let err = check(&[(5, 100), (9, 300), (12, 200)]).unwrap_err();
        assert_eq!(
            err,
            TimeOrderError::EarlierTime {
                size: TreeSize(12),
                time: GenTime::new(200, 0).unwrap(),
                earlier_size: TreeSize(9),
                earlier_time: GenTime::new(300, 0).unwrap(),
            }
        );
        assert!(err.to_string().contains("a later checkpoint never carries an earlier time"), "{err}");
    }

    #[test]
    fn a_follower_keeps_its_state_across_refusals() {
        let mut order = TimeOrder::new();
        order.check(TreeSize(10), &at(100)).unwrap();
        assert!(order.check(TreeSize(11), &at(99)).is_err());
        assert!(order.check(TreeSize(9), &at(200)).is_err());
        // Same size, earlier time: allowed (both statements are true of one tree).
        order.check(TreeSize(10), &at(50)).unwrap();
        order.check(TreeSize(11), &at(100)).unwrap();
        assert_eq!(order.latest(), Some((TreeSize(11), GenTime::new(100, 0).unwrap())));
        let mut resumed = TimeOrder::resume(TreeSize(11), GenTime::new(100, 0).unwrap());
        assert!(resumed.check(TreeSize(12), &at(99)).is_err());
        resumed.check(TreeSize(12), &at(100)).unwrap();
    }
}

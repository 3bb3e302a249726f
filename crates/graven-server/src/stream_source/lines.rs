//! One frame per line (`\n`, a `\r` before it dropped), as OpenBao's `socket` audit device
//! writes its entries: a pure framer (no I/O, `std` only, so a fuzz target can compile this
//! file from source). A line longer than the limit is refused as soon as more than the limit
//! has arrived without its end, before any more of it is buffered.

/// One line found at the start of a buffer: `buf[line]`, taking `consumed` bytes with its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub line: std::ops::Range<usize>,
    pub consumed: usize,
}

/// A line longer than the limit: the stream cannot be read further.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLong {
    /// Bytes seen without the line's end (at least).
    pub len: usize,
    pub max: usize,
}

impl std::fmt::Display for TooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a line of {} bytes (or more) is longer than the limit of {}", self.len, self.max)
    }
}

impl std::error::Error for TooLong {}

/// The first line of `buf`, of at most `max` bytes (its `\r\n` or `\n` not counted):
/// `Ok(None)` while its end has not arrived.
pub fn next_line(buf: &[u8], max: usize) -> Result<Option<Line>, TooLong> {
    // A line of `max` bytes may end in `\r\n`: look that far for the `\n`.
    match buf.iter().take(max.saturating_add(2)).position(|&b| b == b'\n') {
        Some(n) => {
            let end = if n > 0 && buf[n - 1] == b'\r' { n - 1 } else { n };
            if end > max {
                return Err(TooLong { len: end, max });
            }
            Ok(Some(Line { line: 0..end, consumed: n + 1 }))
        }
        None if buf.len() > max.saturating_add(1) => Err(TooLong { len: buf.len(), max }),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(mut buf: &[u8], max: usize) -> (Vec<Vec<u8>>, Result<usize, TooLong>) {
        let mut out = Vec::new();
        loop {
            match next_line(buf, max) {
                Ok(Some(l)) => {
                    out.push(buf[l.line.clone()].to_vec());
                    buf = &buf[l.consumed..];
                }
                Ok(None) => return (out, Ok(buf.len())),
                Err(e) => return (out, Err(e)),
            }
        }
    }

    #[test]
    fn lines_split_at_their_ends_and_a_partial_line_waits() {
        let (got, left) = lines(b"{\"a\":1}\n{\"b\":2}\r\n\n{\"c\"", 64);
        assert_eq!(got, vec![b"{\"a\":1}".to_vec(), b"{\"b\":2}".to_vec(), Vec::new()]);
        assert_eq!(left, Ok(4));
        assert_eq!(next_line(b"", 64), Ok(None));
    }

    #[test]
    fn a_line_of_exactly_the_limit_is_taken_and_one_byte_more_is_refused() {
        let mut line = vec![b'x'; 8];
        line.extend_from_slice(b"\r\n");
        assert_eq!(next_line(&line, 8), Ok(Some(Line { line: 0..8, consumed: 10 })));
        assert_eq!(next_line(&line[..9], 8), Ok(None), "the \\r may be the end's");
        assert_eq!(next_line(b"xxxxxxxxx\n", 8), Err(TooLong { len: 9, max: 8 }));
        assert_eq!(next_line(b"xxxxxxxxxx", 8), Err(TooLong { len: 10, max: 8 }));
    }

    /// Against a simple reference: split at every `\n`, drop one `\r` before it.
    #[test]
    fn any_bytes_frame_as_the_reference_splits_them() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            let len = (x % 48) as usize;
            let buf: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    b"ab\r\n{}"[(x % 6) as usize]
                })
                .collect();
            let max = 6;
            let (got, left) = lines(&buf, max);
            let mut reference = Vec::new();
            let mut rest = &buf[..];
            let mut failed = false;
            while let Some(n) = rest.iter().position(|&b| b == b'\n') {
                let l = &rest[..n];
                let l = l.strip_suffix(b"\r").unwrap_or(l);
                if l.len() > max {
                    failed = true;
                    break;
                }
                reference.push(l.to_vec());
                rest = &rest[n + 1..];
            }
            let failed = failed || rest.len() > max + 1;
            assert_eq!(got, reference, "{buf:?}");
            assert_eq!(left.is_err(), failed, "{buf:?}");
            if let Ok(left) = left {
                assert_eq!(left, rest.len());
            }
        }
    }
}

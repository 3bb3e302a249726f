//! Syslog over a stream (RFC 6587 §3.4, the framing RFC 5425 also uses): a pure framer (no
//! I/O, `std` only, so the `syslog` fuzz target compiles this file from source).
//!
//! Octet counting (`MSG-LEN SP SYSLOG-MSG`, RFC 6587 §3.4.1) is what Graven documents;
//! a frame starting with `<` is read as non-transparent framing (one message per line,
//! §3.4.2), as rsyslog's `imtcp` also does. A frame longer than the limit is refused from its
//! declared length, before any of it is buffered.

/// Longest MSG-LEN, in digits (so that its value cannot overflow).
const MAX_LEN_DIGITS: usize = 10;

/// One frame found at the start of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The message's bytes: `buf[msg]`.
    pub msg: std::ops::Range<usize>,
    /// Bytes of the buffer the frame takes, framing included.
    pub consumed: usize,
}

/// Why the stream cannot be read as syslog frames: the connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// A frame (declared by its MSG-LEN, or a line without its end) longer than `max`.
    TooLong { len: u64, max: usize },
    /// MSG-LEN is not a number followed by a space.
    BadLength,
    /// A frame starts with neither a digit (octet counting) nor `<` (a message on a line).
    Unknown { byte: u8 },
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::TooLong { len, max } => write!(
                f,
                "a frame of {len} bytes (or more) is longer than the limit of {max} (syslog max_frame_bytes)"
            ),
            FrameError::BadLength => {
                f.write_str("MSG-LEN is not a decimal number (no leading zero, at most 10 digits) followed by a space (RFC 6587 octet counting)")
            }
            FrameError::Unknown { byte } => write!(
                f,
                "a frame starts with byte 0x{byte:02x}: expected MSG-LEN (RFC 6587 octet counting) or '<' (a message per line)"
            ),
        }
    }
}

impl std::error::Error for FrameError {}

/// The first frame of `buf`: `Ok(None)` while it is incomplete (read more), never longer than
/// `max` bytes of message. Line ends between frames are skipped (counted in `consumed`).
pub fn next_frame(buf: &[u8], max: usize) -> Result<Option<Frame>, FrameError> {
    let skip = buf.iter().take_while(|&&b| b == b'\n' || b == b'\r' || b == 0).count();
    let rest = &buf[skip..];
    let Some(&first) = rest.first() else { return Ok(None) };
    match first {
        b'1'..=b'9' => {
            let digits = rest.iter().take(MAX_LEN_DIGITS + 1).take_while(|b| b.is_ascii_digit()).count();
            if digits > MAX_LEN_DIGITS {
                return Err(FrameError::BadLength);
            }
            let Some(&after) = rest.get(digits) else { return Ok(None) };
            if after != b' ' {
                return Err(FrameError::BadLength);
            }
            let len = rest[..digits].iter().fold(0u64, |v, d| v * 10 + u64::from(d - b'0'));
            if len > max as u64 {
                return Err(FrameError::TooLong { len, max });
            }
            let start = skip + digits + 1;
            let end = start + len as usize;
            if buf.len() < end {
                return Ok(None);
            }
            Ok(Some(Frame { msg: start..end, consumed: end }))
        }
        b'<' => match rest.iter().take(max + 1).position(|&b| b == b'\n') {
            Some(n) => {
                let mut end = skip + n;
                if end > skip && buf[end - 1] == b'\r' {
                    end -= 1;
                }
                Ok(Some(Frame { msg: skip..end, consumed: skip + n + 1 }))
            }
            None if rest.len() > max => Err(FrameError::TooLong { len: rest.len() as u64, max }),
            None => Ok(None),
        },
        byte => Err(FrameError::Unknown { byte }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(mut buf: &[u8], max: usize) -> (Vec<Vec<u8>>, Result<usize, FrameError>) {
        let mut out = Vec::new();
        loop {
            match next_frame(buf, max) {
                Ok(Some(f)) => {
                    out.push(buf[f.msg.clone()].to_vec());
                    buf = &buf[f.consumed..];
                }
                Ok(None) => return (out, Ok(buf.len())),
                Err(e) => return (out, Err(e)),
            }
        }
    }

    #[test]
    fn octet_counted_frames_split_where_their_lengths_say() {
        let (got, left) = frames(b"5 <1>1 3 a b11 <13>1 x\ny z", 64);
        assert_eq!(got, vec![b"<1>1 ".to_vec(), b"a b".to_vec(), b"<13>1 x\ny z".to_vec()]);
        assert_eq!(left, Ok(0));
        // Incomplete: a length without its space, a message cut short.
        assert_eq!(next_frame(b"12", 64), Ok(None));
        assert_eq!(next_frame(b"12 <13>1", 64), Ok(None));
        assert_eq!(next_frame(b"", 64), Ok(None));
    }

    #[test]
    fn a_line_is_a_frame_when_it_starts_with_a_priority() {
        let (got, left) = frames(b"<13>1 a\r\n<14>1 b\n<15>1 c", 64);
        assert_eq!(got, vec![b"<13>1 a".to_vec(), b"<14>1 b".to_vec()]);
        assert_eq!(left, Ok(7));
    }

    #[test]
    fn a_frame_longer_than_the_limit_is_refused_before_it_is_read() {
        assert_eq!(next_frame(b"65 <13>1", 64), Err(FrameError::TooLong { len: 65, max: 64 }));
        assert_eq!(next_frame(b"9999999999 ", 64), Err(FrameError::TooLong { len: 9_999_999_999, max: 64 }));
        assert_eq!(next_frame(&[b'<'; 65], 64), Err(FrameError::TooLong { len: 65, max: 64 }));
        assert_eq!(next_frame(b"64 ", 64), Ok(None));
    }

    #[test]
    fn bad_framing_is_a_typed_error() {
        assert_eq!(next_frame(b"12345678901 x", 64), Err(FrameError::BadLength));
        assert_eq!(next_frame(b"12x", 64), Err(FrameError::BadLength));
        assert_eq!(next_frame(b"0 ", 64), Err(FrameError::Unknown { byte: b'0' }));
        assert_eq!(next_frame(b"hello\n", 64), Err(FrameError::Unknown { byte: b'h' }));
    }

    /// Whatever the bytes: no panic, frames within the buffer, never longer than the limit.
    #[test]
    fn any_bytes_frame_or_fail_without_panicking() {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for _ in 0..20_000 {
            let len = (x % 40) as usize;
            let buf: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    b"0123456789 <>\n\rab"[(x % 17) as usize]
                })
                .collect();
            let mut rest = &buf[..];
            while let Ok(Some(f)) = next_frame(rest, 8) {
                assert!(f.msg.end <= f.consumed && f.consumed <= rest.len() && f.consumed > 0);
                assert!(f.msg.len() <= 8);
                rest = &rest[f.consumed..];
            }
        }
    }
}

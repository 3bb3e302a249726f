//! Syslog (`graven-server`'s `syslog::framing` and `syslog::rfc5424`, compiled from source:
//! both are `std` only): the RFC 6587 framer and the RFC 5424 parser, on the bytes a TCP
//! sender writes.
//!
//! Properties:
//! - Neither panics, on any bytes.
//! - Framing: each frame lies inside the buffer, its message is at most the limit, and the
//!   frames of a stream do not depend on how it was split into reads (the whole input framed
//!   at once gives the same messages as its frames re-encoded octet-counted).
//! - Parsing: an accepted message has facility < 24 and severity < 8; each header field is a
//!   slice of the input; a parse error's offset lies within the input; a message that parses
//!   also parses, to the same message, when it is re-framed octet-counted and framed back.
#![no_main]

#[path = "../../crates/graven-server/src/syslog/framing.rs"]
mod framing;
#[path = "../../crates/graven-server/src/syslog/rfc5424.rs"]
mod rfc5424;

use libfuzzer_sys::fuzz_target;

const MAX: usize = 512;

fuzz_target!(|data: &[u8]| {
    check_parse(data);
    check_framing(data);
});

fn check_parse(data: &[u8]) {
    match rfc5424::parse(data) {
        Ok(m) => {
            assert!(m.facility < 24 && m.severity < 8, "{m:?}");
            for f in [m.timestamp, m.hostname, m.app_name, m.procid, m.msgid].into_iter().flatten() {
                let (start, end) = (f.as_ptr() as usize, f.as_ptr() as usize + f.len());
                let (lo, hi) = (data.as_ptr() as usize, data.as_ptr() as usize + data.len());
                assert!(lo <= start && end <= hi, "a field outside the input");
            }
            assert!(m.structured_data.len() <= rfc5424::MAX_SD_ELEMENTS);
            let mut framed = format!("{} ", data.len()).into_bytes();
            framed.extend_from_slice(data);
            if data.len() <= MAX && !data.is_empty() {
                let f = framing::next_frame(&framed, MAX).expect("an octet-counted frame").expect("complete");
                assert_eq!(rfc5424::parse(&framed[f.msg]), Ok(m));
            }
        }
        Err(e) => assert!(e.at <= data.len(), "{e}"),
    }
}

/// Every frame of `buf`, and the error (or incomplete rest) that stops them.
fn all_frames(mut buf: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Ok(Some(f)) = framing::next_frame(buf, MAX) {
        assert!(f.consumed > 0 && f.consumed <= buf.len() && f.msg.end <= f.consumed, "{f:?}");
        assert!(f.msg.len() <= MAX);
        out.push(buf[f.msg.clone()].to_vec());
        buf = &buf[f.consumed..];
    }
    out
}

fn check_framing(data: &[u8]) {
    let msgs = all_frames(data);
    // The same messages, octet-counted, frame back to themselves.
    let mut again = Vec::new();
    for m in &msgs {
        again.extend_from_slice(format!("{} ", m.len()).as_bytes());
        again.extend_from_slice(m);
    }
    let back = all_frames(&again);
    let nonempty: Vec<Vec<u8>> = msgs.iter().filter(|m| !m.is_empty()).cloned().collect();
    // An empty message has no octet-counted form (MSG-LEN starts with a non-zero digit).
    assert_eq!(back.iter().filter(|m| !m.is_empty()).cloned().collect::<Vec<_>>(), nonempty);
}

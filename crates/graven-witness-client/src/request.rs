//! The `add-checkpoint` request body and the witness's answers (C2SP tlog-witness, "HTTP
//! Interface").

use graven_core::hash::Hash;

/// At most this many consistency proof lines may be sent (the spec: "MUST NOT send more than
/// 63").
pub const MAX_PROOF_LINES: usize = 63;
/// Largest answer body read from a witness.
pub const MAX_ANSWER_BYTES: u64 = 64 << 10;
/// At most this many signature lines are read from one answer.
pub const MAX_ANSWER_LINES: usize = 16;

/// The request body: `old <size>`, the proof lines, an empty line, the checkpoint note.
pub fn add_checkpoint_body(old: u64, proof: &[Hash], checkpoint: &str) -> Result<String, AnswerError> {
    if proof.len() > MAX_PROOF_LINES {
        return Err(AnswerError::ProofTooLong(proof.len()));
    }
    let mut body = String::with_capacity(16 + proof.len() * 45 + checkpoint.len());
    body.push_str("old ");
    body.push_str(&old.to_string());
    body.push('\n');
    for h in proof {
        body.push_str(&h.to_base64());
        body.push('\n');
    }
    body.push('\n');
    body.push_str(checkpoint);
    Ok(body)
}

/// What a witness answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `200`: signature lines (each without its newline), not yet verified.
    Cosigned(Vec<String>),
    /// `409`: the size of the latest checkpoint the witness cosigned for this log.
    Conflict(u64),
    /// Any other status, with the start of the body (for the operator's messages).
    Refused { status: u16, body: String },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error("a consistency proof of {0} hashes; add-checkpoint takes at most 63")]
    ProofTooLong(usize),
    #[error("the 409 answer's body is not a tree size in decimal followed by a newline")]
    BadConflictBody,
    #[error("the 200 answer is not one or more signature lines (\"— <name> <base64>\\n\"): {0}")]
    BadSignatureLines(String),
    #[error("the 200 answer has more than {MAX_ANSWER_LINES} signature lines")]
    TooManyLines,
}

/// Reads an answer from its status and body.
pub fn read_answer(status: u16, body: &str) -> Result<Answer, AnswerError> {
    match status {
        200 => signature_lines(body).map(Answer::Cosigned),
        409 => conflict_size(body).map(Answer::Conflict),
        s => Ok(Answer::Refused { status: s, body: body.chars().take(300).collect() }),
    }
}

/// The size in a `409` body: ASCII decimal, no leading zeroes (unless `0`), then `\n`.
pub fn conflict_size(body: &str) -> Result<u64, AnswerError> {
    let digits = body.strip_suffix('\n').ok_or(AnswerError::BadConflictBody)?;
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    if !canonical {
        return Err(AnswerError::BadConflictBody);
    }
    digits.parse().map_err(|_| AnswerError::BadConflictBody)
}

/// The signature lines of a `200` body: one or more lines, each `— <name> <base64>` and each
/// ending in `\n` (C2SP tlog-witness, add-checkpoint). One deviation is tolerated: the last
/// line's newline may be missing, as siglog's witness (0.1.0) sends it. It changes nothing
/// the line says, and every line is still checked against the witness's key before it counts.
pub fn signature_lines(body: &str) -> Result<Vec<String>, AnswerError> {
    let rest = body.strip_suffix('\n').unwrap_or(body);
    if rest.is_empty() {
        return Err(AnswerError::BadSignatureLines("the body is empty".into()));
    }
    let mut lines = Vec::new();
    for line in rest.split('\n') {
        let Some(sig) = line.strip_prefix("\u{2014} ") else {
            return Err(AnswerError::BadSignatureLines("a line does not start with \"— \"".into()));
        };
        let mut parts = sig.split(' ');
        let (Some(name), Some(b64), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(AnswerError::BadSignatureLines("a line is not \"— <name> <signature>\"".into()));
        };
        if name.is_empty() || b64.is_empty() {
            return Err(AnswerError::BadSignatureLines("an empty name or signature".into()));
        }
        if lines.len() == MAX_ANSWER_LINES {
            return Err(AnswerError::TooManyLines);
        }
        lines.push(line.to_owned());
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_the_specs_shape() {
        let h = Hash([7; 32]);
        let body = add_checkpoint_body(5, &[h, h], "o\n9\nroot\n\n— o sig\n").unwrap();
        let b64 = h.to_base64();
        assert_eq!(body, format!("old 5\n{b64}\n{b64}\n\no\n9\nroot\n\n— o sig\n"));
        assert_eq!(add_checkpoint_body(0, &[], "c\n").unwrap(), "old 0\n\nc\n");
        assert_eq!(add_checkpoint_body(0, &[h; 64], "c\n"), Err(AnswerError::ProofTooLong(64)));
    }

    #[test]
    fn conflict_bodies_are_read_strictly() {
        assert_eq!(conflict_size("0\n"), Ok(0));
        assert_eq!(conflict_size("20852014\n"), Ok(20852014));
        for bad in ["", "\n", "12", "012\n", "1 \n", "-1\n", "1\n\n", "99999999999999999999999\n", "x\n"] {
            assert_eq!(conflict_size(bad), Err(AnswerError::BadConflictBody), "{bad:?}");
        }
    }

    #[test]
    fn signature_lines_are_read_strictly() {
        let one = "\u{2014} w.example/1 AAAA\n";
        assert_eq!(signature_lines(one).unwrap(), vec!["\u{2014} w.example/1 AAAA".to_owned()]);
        let two = format!("{one}\u{2014} w.example/2 BBBB\n");
        assert_eq!(signature_lines(&two).unwrap().len(), 2);
        // The last line's newline may be missing (siglog 0.1.0); only the last one's.
        assert_eq!(signature_lines("\u{2014} w AAAA").unwrap(), vec!["\u{2014} w AAAA".to_owned()]);
        assert_eq!(signature_lines(&format!("{one}\u{2014} w.example/2 BBBB")).unwrap().len(), 2);
        for bad in [
            "",
            "\n",
            "\u{2014} w AAAA\n\n",
            "- w AAAA\n",
            "\u{2014} w\n",
            "\u{2014} w A B\n",
            "\u{2014}  AAAA\n",
        ] {
            assert!(signature_lines(bad).is_err(), "{bad:?}");
        }
        let many = one.repeat(MAX_ANSWER_LINES + 1);
        assert_eq!(signature_lines(&many), Err(AnswerError::TooManyLines));
        assert!(matches!(read_answer(404, "unknown log"), Ok(Answer::Refused { status: 404, .. })));
        assert_eq!(read_answer(409, "8\n"), Ok(Answer::Conflict(8)));
    }
}

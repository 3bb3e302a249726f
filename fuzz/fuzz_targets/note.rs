//! Signed notes (C2SP signed-note) and key strings.
//!
//! Properties checked on every input:
//! - `Note::parse` and `note::open` never panic, and `open` fails exactly when `parse` fails,
//!   with the same error.
//! - A parsed note is its text, one blank line and its signature lines, byte for byte: `text()`
//!   is a prefix of the input ending in '\n', and the rest is '\n' plus each `line` + '\n'.
//! - An opened note only claims trusted keys whose signatures are in the note, and never lists a
//!   trusted key's signature among the unchecked ones. With no trusted keys, a parseable note is
//!   always `Unverified`.
//! - A parsed `VerifierKey` prints as a string that re-parses to an equal key, and that string is
//!   the input itself up to the case of the hex key ID. A parsed `SignerKey` survives its secret
//!   string, and a note it signs opens with its verifier.
//! - Any text the fixed test key agrees to sign opens again with the matching verifier key, with
//!   exactly that text.
#![no_main]

use std::sync::LazyLock;

use graven_core::note::{self, MAX_SIGNATURES, Note, NoteError, SignerKey, VerifierKey};
use libfuzzer_sys::fuzz_target;

/// Published test key pair of Tessera's test log (transparency-dev/tessera
/// `testdata/build_log.sh`); the tessera checkpoint seed is signed by it.
const TEST_SKEY: &str =
    "PRIVATE+KEY+example.com/log/testdata+33d7b496+AeymY/SZAX0jZcJ8enZ5FY1Dz+wTML2yWSkK+9DSF3eg";
const TEST_VKEY: &str = "example.com/log/testdata+33d7b496+AeHTu4Q3hEIMHNqc6fASMsq3rKNx280NI+oO5xCFkkSx";
/// The C2SP signed-note example key: the C2SP example seed verifies with it.
const C2SP_VKEY: &str = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
/// The Go checksum database key: the sum.golang.org seed verifies with it.
const SUMDB_VKEY: &str = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8";

static SIGNER: LazyLock<SignerKey> =
    LazyLock::new(|| SignerKey::parse(TEST_SKEY).expect("test signer key parses"));
static TRUSTED: LazyLock<Vec<VerifierKey>> = LazyLock::new(|| {
    let keys: Vec<VerifierKey> = [TEST_VKEY, C2SP_VKEY, SUMDB_VKEY]
        .iter()
        .map(|k| VerifierKey::parse(k).expect("test verifier key parses"))
        .collect();
    assert_eq!(keys[0], SIGNER.verifier());
    keys
});

fuzz_target!(|data: &[u8]| {
    check_note(data);
    if let Ok(s) = std::str::from_utf8(data) {
        check_keys(s);
        check_sign(s);
    }
});

fn check_note(data: &[u8]) {
    let parsed = Note::parse(data);
    let opened = note::open(data, &TRUSTED);
    let n = match parsed {
        Err(e) => {
            assert_eq!(opened.as_ref().err(), Some(&e), "open must fail as parse does");
            return;
        }
        Ok(n) => n,
    };

    let text = n.text();
    assert!(data.starts_with(text.as_bytes()), "text() is not a prefix of the input");
    assert!(text.ends_with('\n'), "text() does not end with a newline");
    let sigs = n.signatures();
    assert!(!sigs.is_empty() && sigs.len() <= MAX_SIGNATURES, "{} signatures", sigs.len());
    let mut rebuilt = String::with_capacity(data.len());
    rebuilt.push_str(text);
    rebuilt.push('\n');
    for s in sigs {
        assert!(s.line.starts_with("\u{2014} "), "signature line without em dash: {:?}", s.line);
        assert!(note::is_valid_key_name(s.name), "invalid key name {:?}", s.name);
        assert!(!s.signature.is_empty(), "empty signature");
        rebuilt.push_str(s.line);
        rebuilt.push('\n');
    }
    assert_eq!(rebuilt.as_bytes(), data, "text + blank line + signature lines != input");

    // No trusted keys: nothing can verify, and no crypto runs.
    match note::open(data, &[]) {
        Err(NoteError::Unverified { seen, trusted }) => assert!(seen.len() <= sigs.len() && trusted.is_empty()),
        other => panic!("open with no keys gave {other:?}"),
    }

    match opened {
        Ok(v) => {
            assert_eq!(v.text(), text, "opened text differs from parsed text");
            assert!(!v.verified_by().is_empty(), "opened with no verified key");
            for k in v.verified_by() {
                assert!(TRUSTED.contains(k), "verified by an untrusted key {k}");
                assert!(
                    sigs.iter().any(|s| s.name == k.name() && s.key_id == k.id()),
                    "verified by {k}, which signed nothing here"
                );
            }
            for o in v.other_signatures() {
                assert!(
                    !TRUSTED.iter().any(|k| k.name() == o.name && k.id() == o.key_id),
                    "a trusted key's signature was left unchecked: {:?}",
                    o.line
                );
                assert!(sigs.contains(o), "other signature not in the note");
            }
        }
        Err(NoteError::InvalidSignature { name }) => {
            assert!(TRUSTED.iter().any(|k| k.name() == name), "InvalidSignature for {name:?}");
        }
        Err(NoteError::Unverified { seen, trusted }) => {
            for s in sigs {
                assert!(
                    !TRUSTED.iter().any(|k| k.name() == s.name && k.id() == s.key_id),
                    "Unverified although a trusted key signed"
                );
            }
            // Each signer is named as `name+keyid`, and each trusted key the same way.
            assert!(seen.iter().all(|who| sigs.iter().any(|s| *who == format!("{}+{:08x}", s.name, s.key_id))));
            assert_eq!(trusted.len(), TRUSTED.len());
        }
        Err(e) => panic!("open failed with {e:?} on a note that parses"),
    }
}

fn check_keys(s: &str) {
    if let Ok(k) = VerifierKey::parse(s) {
        let shown = k.to_string();
        let again = VerifierKey::parse(&shown).unwrap_or_else(|e| panic!("{shown:?}: {e}"));
        assert_eq!(again, k, "Display does not re-parse to an equal key");
        assert_eq!(again.to_string(), shown, "Display is not stable");
        // The only freedom the parser allows is the case of the hex key ID.
        let input = s.trim_end_matches(['\n', '\r']);
        let (name, rest) = input.split_once('+').expect("parsed key has '+'");
        let (id, b64) = rest.split_once('+').expect("parsed key has two '+'");
        assert_eq!(format!("{name}+{}+{b64}", id.to_ascii_lowercase()), shown, "non-canonical key accepted");
    }
    if let Ok(sk) = SignerKey::parse(s) {
        let secret = sk.to_secret_string();
        let again = SignerKey::parse(&secret).unwrap_or_else(|e| panic!("secret string: {e}"));
        assert_eq!((again.name(), again.id()), (sk.name(), sk.id()));
        assert_eq!(again.verifier(), sk.verifier());
        let vk = VerifierKey::parse(&sk.verifier().to_string()).expect("signer's verifier parses");
        assert_eq!(vk, sk.verifier());
        let signed = sk.sign("fuzz\n").expect("signing a fixed text");
        let v = note::open(signed.as_bytes(), std::slice::from_ref(&vk))
            .unwrap_or_else(|e| panic!("a note signed by a parsed signer key does not open: {e}"));
        assert_eq!(v.text(), "fuzz\n");
    }
}

fn check_sign(s: &str) {
    let Ok(signed) = SIGNER.sign(s) else {
        let signable = !s.is_empty()
            && s.ends_with('\n')
            && !s.bytes().any(|b| b < 0x20 && b != b'\n')
            && s.len() < note::MAX_NOTE_SIZE - 200;
        assert!(!signable, "sign refused valid note text");
        return;
    };
    assert!(signed.starts_with(s));
    let v = note::open(signed.as_bytes(), &TRUSTED)
        .unwrap_or_else(|e| panic!("a note signed by the test key does not open: {e}"));
    assert_eq!(v.text(), s, "the signed text came back different");
    assert_eq!(v.verified_by(), std::slice::from_ref(&TRUSTED[0]));
}

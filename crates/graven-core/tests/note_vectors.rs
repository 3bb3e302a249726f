//! C2SP signed-note and tlog-checkpoint vectors.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

mod common;

use common::{read_json, vectors};
use graven_core::checkpoint::{Checkpoint, CheckpointError, OpenError, VerifiedCheckpoint};
use graven_core::note::{self, Note, NoteErrorClass, SignerKey, VerifierKey};
use graven_core::{Hash, TreeSize};

#[test]
fn vkey_cases() {
    let v = read_json("signed-note/vectors.json");
    let cases = v["vkey_cases"].as_array().unwrap();
    assert!(cases.len() >= 9);
    for c in cases {
        let s = c["vkey"].as_str().unwrap();
        match c["want"].as_str().unwrap() {
            "ok" => {
                let k = VerifierKey::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
                assert_eq!(k.name(), c["name"].as_str().unwrap());
                assert_eq!(format!("{:08x}", k.id()), c["key_id_hex"].as_str().unwrap());
                assert_eq!(k.to_string(), s, "encoding round-trips");
            }
            "bad_vkey" => assert!(VerifierKey::parse(s).is_err(), "{s} must be rejected ({})", c["src"]),
            other => panic!("unknown want {other}"),
        }
    }
}

#[test]
fn note_cases() {
    let v = read_json("signed-note/vectors.json");
    let cases = v["note_cases"].as_array().unwrap();
    assert!(cases.len() >= 13);
    for c in cases {
        let src = c["src"].as_str().unwrap();
        let keys: Vec<VerifierKey> = c["vkeys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| VerifierKey::parse(k.as_str().unwrap()).unwrap())
            .collect();
        let bytes = c["note"].as_str().unwrap().as_bytes();
        let result = note::open(bytes, &keys);
        match c["want"].as_str().unwrap() {
            "ok" => {
                let n = result.unwrap_or_else(|e| panic!("{src}: {e}"));
                assert_eq!(n.text(), c["text"].as_str().unwrap(), "{src}");
                let names: Vec<&str> = n.verified_by().iter().map(|k| k.name()).collect();
                let want: Vec<&str> =
                    c["verified"].as_array().unwrap().iter().map(|x| x.as_str().unwrap()).collect();
                assert_eq!(names, want, "{src}");
                let others: Vec<&str> = n.other_signatures().iter().map(|s| s.name).collect();
                let want_others: Vec<&str> = c
                    .get("unverified")
                    .and_then(|u| u.as_array())
                    .map(|a| a.iter().map(|x| x.as_str().unwrap()).collect())
                    .unwrap_or_default();
                assert_eq!(others, want_others, "{src}");
            }
            want => {
                let class = match want {
                    "malformed" => NoteErrorClass::Malformed,
                    "invalid_signature" => NoteErrorClass::InvalidSignature,
                    "unverified" => NoteErrorClass::Unverified,
                    other => panic!("unknown want {other}"),
                };
                let err = result.err().unwrap_or_else(|| panic!("{src}: must be rejected"));
                assert_eq!(err.class(), class, "{src}: {err}");
            }
        }
    }
}

#[test]
fn invalid_utf8_note_is_malformed() {
    let bytes = std::fs::read(vectors().join("signed-note/invalid-utf8.note")).unwrap();
    let v = read_json("signed-note/vectors.json");
    let peter = VerifierKey::parse(v["vkey_cases"][1]["vkey"].as_str().unwrap()).unwrap();
    let err = note::open(&bytes, &[peter]).unwrap_err();
    assert!(matches!(err, note::NoteError::InvalidUtf8(0)), "{err}");
}

#[test]
fn signing_is_byte_identical() {
    let v = read_json("signed-note/vectors.json");
    let cases = v["signing_cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    for c in cases {
        let skey = SignerKey::parse(c["skey"].as_str().unwrap()).unwrap();
        assert_eq!(skey.verifier().to_string(), c["vkey"].as_str().unwrap());
        assert_eq!(skey.to_secret_string(), c["skey"].as_str().unwrap());
        let signed = skey.sign(c["text"].as_str().unwrap()).unwrap();
        assert_eq!(signed, c["want_note"].as_str().unwrap());
        note::open(signed.as_bytes(), &[skey.verifier()]).unwrap();
    }
}

#[test]
fn test_keypairs_match_and_sign() {
    let v = read_json("signed-note/vectors.json");
    for kp in v["test_keypairs"].as_array().unwrap() {
        let skey = SignerKey::parse(kp["skey"].as_str().unwrap()).unwrap();
        assert_eq!(skey.verifier().to_string(), kp["vkey"].as_str().unwrap());
        let n = skey.sign("hello\n").unwrap();
        let vk = VerifierKey::parse(kp["vkey"].as_str().unwrap()).unwrap();
        assert_eq!(note::open(n.as_bytes(), &[vk]).unwrap().text(), "hello\n");
    }
    // A signature by one key, relabelled with another trusted key's name and ID, is an
    // invalid signature (the whole note is rejected), not an unknown key to skip.
    let log = VerifierKey::parse("Log+2271c621+AemuH5ooBpEPcr+W8onrjA1NfuzBVHdezakU81Ekarvs").unwrap();
    let known =
        SignerKey::parse("PRIVATE+KEY+Known+451c786d+AQPRoE2+Z+Ed1HaHBA9F/FfracvcZ2rDU39kCecMEoci").unwrap();
    let signed = known.sign("hello\n").unwrap();
    let parsed = Note::parse(signed.as_bytes()).unwrap();
    let mut raw = log.id().to_be_bytes().to_vec();
    raw.extend_from_slice(&parsed.signatures()[0].signature);
    use base64::Engine as _;
    let forged = format!("hello\n\n\u{2014} Log {}\n", base64::engine::general_purpose::STANDARD.encode(raw));
    let err = note::open(forged.as_bytes(), &[log]).unwrap_err();
    assert_eq!(err.class(), NoteErrorClass::InvalidSignature, "{err}");
}

#[test]
fn sumdb_checkpoints_verify_with_the_go_key() {
    let key =
        VerifierKey::parse("sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8").unwrap();
    for (file, size) in [
        ("sumdb-6476701.note", 6476701),
        ("sumdb-31700353.note", 31700353),
        ("sumdb-65209736.note", 65209736),
    ] {
        let bytes = std::fs::read(vectors().join("tlog-checkpoint").join(file)).unwrap();
        let cp = VerifiedCheckpoint::open(&bytes, &key, "go.sum database tree")
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(cp.size(), TreeSize(size), "{file}");
        assert_eq!(cp.note_bytes(), &bytes[..]);
        // The legacy origin differs from the key name, and we say so when not told to expect it.
        assert!(matches!(
            VerifiedCheckpoint::open(&bytes, &key, key.name()),
            Err(OpenError::OriginMismatch { .. })
        ));
    }
    let bytes =
        std::fs::read(vectors().join("tlog-checkpoint/sumdb-31700353-no-final-newline.note")).unwrap();
    let err = VerifiedCheckpoint::open(&bytes, &key, "go.sum database tree").unwrap_err();
    assert!(matches!(err, OpenError::Note(note::NoteError::NoFinalNewline)), "{err}");
}

#[test]
fn c2sp_example_parses_but_does_not_verify() {
    let bytes = std::fs::read(vectors().join("tlog-checkpoint/c2sp-example-format-only.note")).unwrap();
    let n = Note::parse(&bytes).unwrap();
    let cp = Checkpoint::parse(n.text()).unwrap();
    assert_eq!(cp.origin(), "example.com/behind-the-sofa");
    assert_eq!(cp.size(), TreeSize(20852163));
    assert_eq!(cp.to_text(), n.text());
    let key =
        VerifierKey::parse("sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8").unwrap();
    assert!(note::open(&bytes, &[key]).is_err());
}

#[test]
fn signed_bodies_are_judged_on_the_body() {
    let index = read_json("tlog-checkpoint/signed-bodies/index.json");
    let key = VerifierKey::parse(index["vkey"].as_str().unwrap()).unwrap();
    let cases = index["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 14);
    for c in cases {
        let file = c["file"].as_str().unwrap();
        let bytes = std::fs::read(vectors().join("tlog-checkpoint/signed-bodies").join(file)).unwrap();
        // Every signature is valid: the note itself opens.
        let n = note::open(&bytes, std::slice::from_ref(&key)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let parsed = Checkpoint::parse(n.text());
        let opened = VerifiedCheckpoint::open(&bytes, &key, key.name());
        if c["want_checkpoint_ok"].as_bool().unwrap() {
            let cp = parsed.unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(cp.to_text(), n.text(), "{file}: strict format round-trips");
            opened.unwrap_or_else(|e| panic!("{file}: {e}"));
        } else {
            assert!(parsed.is_err(), "{file} must be rejected");
            assert!(
                matches!(opened, Err(OpenError::Body(_)) | Err(OpenError::OriginMismatch { .. })),
                "{file}"
            );
        }
    }
}

#[test]
fn checkpoint_body_errors_are_specific() {
    let root = Hash([7; 32]).to_base64();
    let cases: &[(&str, CheckpointError)] = &[
        ("o\n01\nROOT\n", CheckpointError::SizeFormat("01".into())),
        ("o\n+1\nROOT\n", CheckpointError::SizeFormat("+1".into())),
        ("o\n18446744073709551616\nROOT\n", CheckpointError::SizeOverflow("18446744073709551616".into())),
        ("\n1\nROOT\n", CheckpointError::EmptyOrigin),
        ("o\n1\nROOT\n\n", CheckpointError::EmptyExtension(1)),
        ("o\n1\n", CheckpointError::TooFewLines),
        ("o\n1\nROOT", CheckpointError::NoFinalNewline),
        ("o\n1\nAAAA\n", CheckpointError::RootFormat),
    ];
    for (text, want) in cases {
        let text = text.replace("ROOT", &root);
        assert_eq!(Checkpoint::parse(&text).unwrap_err(), *want, "{text:?}");
    }
    let ok = Checkpoint::parse(&format!("o\n18446744073709551615\n{root}\next one\n")).unwrap();
    assert_eq!(ok.size(), TreeSize(u64::MAX));
    assert_eq!(ok.extensions(), ["ext one".to_owned()]);
}

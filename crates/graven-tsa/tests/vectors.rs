#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design
//! Committed tokens from `openssl ts` (made by `tests/vectors/make.sh`), checked offline: they
//! stay verifiable long after they were made (validity is checked at genTime, not now), and no
//! single flipped bit makes one verify to anything else.

use graven_tsa::{RootsError, TokenError, TsaRoots, TsaVerifier, token_from_reply};

const ROOT: &[u8] = include_bytes!("vectors/root.pem");
const RSA: &[u8] = include_bytes!("vectors/rsa.token");
const EC: &[u8] = include_bytes!("vectors/ec.token");
const MESSAGE: &[u8] = b"graven tsa fuzz seed\n";
const NONCE: u64 = 0x1122_3344_5566_7788;

fn verifier() -> TsaVerifier {
    TsaVerifier::new(TsaRoots::from_pem(ROOT).unwrap())
}

fn sha256(data: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, data).as_ref().to_vec()
}

#[test]
fn the_committed_tokens_verify() {
    for (token, name, digits) in [(RSA, "CN=Graven Fuzz TSA RSA", 0), (EC, "CN=Graven Fuzz TSA EC", 3)] {
        let v = verifier().verify(token, MESSAGE, Some(NONCE)).unwrap();
        assert_eq!(v.imprint().as_slice(), sha256(MESSAGE));
        assert_eq!(v.tsa_name(), Some(name));
        assert_eq!(v.nonce(), Some(&NONCE.to_be_bytes()[..]));
        assert_eq!(v.policy(), "1.3.6.1.4.1.99999.1");
        assert_eq!(v.root(), "CN=Graven Fuzz Root");
        // genTime is printed with as many fraction digits as the TSA wrote (none, or ms).
        let text = v.gen_time().to_string();
        assert!(text.starts_with("20") && text.ends_with('Z'), "{text}");
        if digits == 0 {
            assert_eq!(v.gen_time().subsec_nanos(), 0);
        }
        assert_eq!(verifier().verify(token, b"graven tsa fuzz seed", None), Err(TokenError::ImprintMismatch));
    }
}

/// Flips one bit in each byte of `token` in turn: every variant is refused, or verifies to
/// exactly what the original does (some bytes, such as SignedData's list of digest
/// algorithms, are not covered by the signature and not relied on).
fn single_bit_flips(token: &[u8]) -> usize {
    let honest = verifier().verify(token, MESSAGE, Some(NONCE)).unwrap();
    let v = verifier();
    let mut still_verify = 0;
    for i in 0..token.len() {
        let mut t = token.to_vec();
        t[i] ^= 1 << (i % 8);
        if let Ok(got) = v.verify(&t, MESSAGE, Some(NONCE)) {
            assert_eq!(got, honest, "flipping a bit of byte {i} changed what the token says");
            still_verify += 1;
        }
    }
    still_verify
}

#[test]
fn no_flipped_bit_verifies_to_anything_else() {
    let rsa = single_bit_flips(RSA);
    let ec = single_bit_flips(EC);
    // Only bytes outside everything signed can change and still verify: SignedData's version
    // and its list of digest algorithms, neither relied on (about ten), and a certificate's
    // outer signature algorithm tag where x509-parser reads it leniently (the signature covers
    // the inner one, which must be the same algorithm).
    assert!(rsa < 16 && ec < 16, "{rsa} and {ec} variants verified");
}

#[test]
fn the_seed_replies_give_the_committed_token_or_the_refusal() {
    let reply = include_bytes!("../../../fuzz/seeds/tsa_token/rsa-reply");
    assert_eq!(token_from_reply(&reply[1..]).unwrap(), RSA);
    let refused = include_bytes!("../../../fuzz/seeds/tsa_token/refused-reply");
    let err = token_from_reply(&refused[1..]).unwrap_err();
    assert!(err.to_string().contains("\"Requested policy is not supported.\""), "{err}");
}

#[test]
fn a_roots_file_holds_certificates_only() {
    assert_eq!(TsaRoots::from_pem(ROOT).unwrap().len(), 1);
    let two = [ROOT, b"comment between blocks\n", ROOT].concat();
    assert_eq!(TsaRoots::from_pem(&two).unwrap().len(), 2);
    assert!(matches!(TsaRoots::from_pem(b""), Err(RootsError::Empty)));
    assert!(matches!(TsaRoots::from_pem(b"just text\n"), Err(RootsError::Empty)));
    let key = b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n-----END PRIVATE KEY-----\n";
    assert_eq!(TsaRoots::from_pem(key).unwrap_err(), RootsError::NotACertificate("PRIVATE KEY".into()));
    let not_a_cert = b"-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n";
    assert!(matches!(TsaRoots::from_pem(not_a_cert), Err(RootsError::BadCertificate { index: 0, .. })));
}

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design
//! graven-tsa against a real TSA: `openssl ts -reply` behind an HTTP handler on a loopback
//! port, with a test PKI made by the test (see `graven_testkit::tsa`). Every refusal is checked for its
//! reason, so a test cannot pass because an earlier check happened to fail.

use std::time::{SystemTime, UNIX_EPOCH};

use graven_core::hash::TreeSize;
use graven_testkit::tsa::{
    DEFAULT_POLICY, OTHER_POLICY, Tsa, cms_token, find_once, pki, sha256, tst_info_of,
};
use graven_tsa::{
    ChainError, ClientError, PkiStatus, ReplyError, TimeOrder, TimeOrderError, TokenError, TsaClient,
    TsaClientConfig, TsaPolicy, TsaRoots, TsaVerifier, VerifiedTimestamp, check_time_order,
};

const NOTE: &[u8] = b"example.com/log\n42\nq9ALjgd6wATHXsoV6zK1N8yVxc8f7wtl1o2Z9/i3C9M=\n\n\xe2\x80\x94 example.com/log Az3grlgt...\n";

fn roots(pem: &[u8]) -> TsaRoots {
    TsaRoots::from_pem(pem).unwrap()
}

/// Verifies against the configured root (the test root).
fn verifier() -> TsaVerifier {
    TsaVerifier::new(roots(&pki().root.pem()))
}

fn client(tsa: &Tsa) -> TsaClient {
    TsaClient::new(TsaClientConfig::new(&tsa.url)).unwrap()
}

/// A fresh token for `NOTE` from `tsa`, with `nonce`.
fn token(tsa: &Tsa, nonce: u64) -> Vec<u8> {
    client(tsa).timestamp(NOTE, nonce).unwrap()
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn check_fresh(v: &VerifiedTimestamp, tsa_name: &str) {
    assert_eq!(v.imprint(), &sha256(NOTE));
    let lag = now() - v.gen_time().unix_seconds();
    assert!((-5..=10).contains(&lag), "genTime {} is {lag} s from now", v.gen_time());
    assert_eq!(v.accuracy().unwrap().as_duration(), std::time::Duration::from_micros(1_500_100));
    assert_eq!(v.policy(), DEFAULT_POLICY);
    assert_eq!(v.tsa_name(), Some(tsa_name));
    assert_eq!(v.signer(), tsa_name);
    assert_eq!(v.root(), "CN=Graven Test Root, O=Graven tests");
    assert!(!v.serial().is_empty());
}

#[test]
fn rsa_token_verifies_with_the_right_imprint_and_a_current_gen_time() {
    let t = token(&pki().rsa, 0x0123_4567_89ab_cdef);
    let v = verifier().verify(&t, NOTE, Some(0x0123_4567_89ab_cdef)).unwrap();
    check_fresh(&v, "CN=Graven Test TSA RSA");
    assert_eq!(v.nonce(), Some(&[0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef][..]));
    // Whole seconds: clock_precision_digits = 0.
    assert_eq!(v.gen_time().subsec_nanos(), 0);
    // A stored token is checked again later without its nonce.
    assert_eq!(verifier().verify(&t, NOTE, None).unwrap(), v);
}

#[test]
fn ecdsa_p256_token_through_an_intermediate_verifies() {
    // P-256 signing SHA-384, ESSCertIDv2, the intermediate sent in the token, genTime in ms.
    let nonce = u64::MAX;
    let t = token(&pki().ec, nonce);
    let v = verifier().verify(&t, NOTE, Some(nonce)).unwrap();
    check_fresh(&v, "CN=Graven Test TSA EC");
    assert_eq!(v.gen_time().subsec_nanos() % 1_000_000, 0, "{}", v.gen_time());
}

#[test]
fn ecdsa_p384_token_verifies() {
    // P-384 signing SHA-256, ESSCertIDv2 naming SHA-384.
    let t = token(&pki().p384, 7);
    let v = verifier().verify(&t, NOTE, Some(7)).unwrap();
    check_fresh(&v, "CN=Graven Test TSA P-384");
}

#[test]
fn another_messages_imprint_is_refused() {
    let t = token(&pki().rsa, 1);
    let other = b"example.com/log\n43\n...\n";
    assert_eq!(verifier().verify(&t, other, Some(1)), Err(TokenError::ImprintMismatch));
    assert_eq!(verifier().verify(&t, &NOTE[1..], None), Err(TokenError::ImprintMismatch));
}

/// Where genTime's digits start: `18 0f` + "YYYYMMDDhhmmssZ" (whole seconds: the RSA TSA;
/// certificates write their dates as UTCTime, tag `17`).
fn gen_time_at(token: &[u8]) -> usize {
    find_once(token, &[0x18, 0x0f, b'2', b'0']) + 2
}

#[test]
fn tampered_tst_info_is_refused() {
    // One digit of genTime changed: the signed messageDigest no longer matches the TSTInfo.
    let mut t = token(&pki().rsa, 2);
    let second = gen_time_at(&t) + 13;
    t[second] = if t[second] == b'0' { b'1' } else { b'0' };
    assert_eq!(verifier().verify(&t, NOTE, Some(2)), Err(TokenError::MessageDigest));
}

#[test]
fn tampered_signed_attribute_is_refused() {
    // One digit of the signingTime attribute changed (OID 1.2.840.113549.1.9.5, then SET,
    // UTCTime "YYMMDDhhmmssZ"): the signature no longer covers the signed attributes.
    let mut t = token(&pki().rsa, 3);
    let attr = find_once(&t, &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x05]);
    let second = attr + 11 + 4 + 11;
    assert_eq!(t[second + 1], b'Z');
    t[second] = if t[second] == b'0' { b'1' } else { b'0' };
    assert_eq!(verifier().verify(&t, NOTE, Some(3)), Err(TokenError::BadSignature));
}

#[test]
fn tst_info_with_a_recomputed_message_digest_is_refused() {
    // The forgery an attacker would try: point the TSTInfo at other bytes and fix up the
    // messageDigest attribute to match. The signature over the attributes catches it.
    let other = b"a rewritten checkpoint\n";
    let mut t = token(&pki().rsa, 4);
    let old_tst = tst_info_of(&pki().dir, &t);
    let at = find_once(&t, &sha256(NOTE));
    t[at..at + 32].copy_from_slice(&sha256(other));
    let new_tst = tst_info_of_unchecked(&old_tst, &sha256(NOTE), &sha256(other));
    let md = find_once(&t, &sha256(&old_tst));
    t[md..md + 32].copy_from_slice(&sha256(&new_tst));
    assert_eq!(verifier().verify(&t, other, Some(4)), Err(TokenError::BadSignature));
}

fn tst_info_of_unchecked(tst: &[u8], from: &[u8; 32], to: &[u8; 32]) -> Vec<u8> {
    let mut out = tst.to_vec();
    let at = find_once(&out, from);
    out[at..at + 32].copy_from_slice(to);
    out
}

#[test]
fn tampered_signature_is_refused() {
    // The signature is the token's last element: flip a bit of its last byte.
    for tsa in [&pki().rsa, &pki().ec, &pki().p384] {
        let mut t = token(tsa, 5);
        *t.last_mut().unwrap() ^= 0x01;
        assert_eq!(verifier().verify(&t, NOTE, Some(5)), Err(TokenError::BadSignature), "{}", tsa.url);
    }
}

#[test]
fn a_tsa_that_does_not_chain_to_the_configured_root_is_refused() {
    // The rogue TSA's root has the configured root's name, and is sent in the token.
    let t = token(&pki().rogue, 6);
    match verifier().verify(&t, NOTE, Some(6)) {
        Err(TokenError::Chain(ChainError::BadSignature { issuer, subject })) => {
            assert!(
                issuer.contains("Graven Test Root") && subject.contains("Graven Test"),
                "{issuer} {subject}"
            );
        }
        other => panic!("{other:?}"),
    }
    // The same token verifies for whoever trusts the rogue root: only the root differs.
    TsaVerifier::new(roots(&pki().rogue_root.pem())).verify(&t, NOTE, Some(6)).unwrap();
    // A root that issued nothing on the path.
    let unrelated = TsaVerifier::new(roots(&pki().p384.signer.pem()));
    assert!(matches!(
        unrelated.verify(&token(&pki().rsa, 6), NOTE, Some(6)),
        Err(TokenError::Chain(ChainError::NoIssuer { .. }))
    ));
}

#[test]
fn certificates_without_a_critical_time_stamping_only_eku_are_refused() {
    let p = pki();
    let tst = tst_info_of(&p.dir, &token(&p.ec, 8));
    // The control: the same construction with the TSA's real certificate verifies.
    let good = cms_token(&p.dir, &tst, &p.ec.signer, &[&p.intermediate]);
    verifier().verify(&good, NOTE, Some(8)).unwrap();
    for (cert, reason) in [
        (&p.no_eku, "it has no extended key usage extension"),
        (&p.eku_not_critical, "its extended key usage extension is not critical"),
        (&p.eku_two_purposes, "its extended key usage is not timeStamping alone"),
    ] {
        let t = cms_token(&p.dir, &tst, cert, &[&p.intermediate]);
        match verifier().verify(&t, NOTE, Some(8)) {
            Err(TokenError::NotTimeStamping { reason: r, .. }) => assert_eq!(r, reason),
            other => panic!("{}: {other:?}", cert.cert.display()),
        }
    }
}

#[test]
fn a_token_without_a_signing_certificate_attribute_is_refused() {
    // RFC 3161 §2.4.1: the ESS attribute binds the signature to one certificate.
    let p = pki();
    let tst = tst_info_of(&p.dir, &token(&p.ec, 17));
    let t = graven_testkit::tsa::cms_token_with(&p.dir, &tst, &p.ec.signer, &[&p.intermediate], false);
    assert_eq!(
        verifier().verify(&t, NOTE, Some(17)),
        Err(TokenError::SigningCertificate(
            "the token has no signing-certificate attribute (RFC 3161 §2.4.1 requires one)"
        ))
    );
}

#[test]
fn a_tsa_certificate_not_valid_at_gen_time_is_refused() {
    match verifier().verify(&token(&pki().expired, 9), NOTE, Some(9)) {
        Err(TokenError::Chain(ChainError::NotValidAt { subject, validity, .. })) => {
            assert_eq!(subject, "\"CN=Graven Test TSA EC\"");
            assert_eq!(validity, "2020-01-01T00:00:00Z to 2021-01-01T00:00:00Z");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_nonce_mismatch_is_refused() {
    let t = token(&pki().ec, 10);
    assert_eq!(verifier().verify(&t, NOTE, Some(11)), Err(TokenError::NonceMismatch));
    assert_eq!(verifier().verify(&t, NOTE, Some(10 + (1 << 32))), Err(TokenError::NonceMismatch));
    // A request without a nonce gets a token without one, which a fresh check refuses.
    let query = graven_testkit::tsa::openssl(
        &pki().dir,
        &["ts", "-query", "-digest", &hex(&sha256(NOTE)), "-sha256", "-cert", "-no_nonce"],
    );
    let t = client(&pki().rsa).send(&query).unwrap();
    assert_eq!(verifier().verify(&t, NOTE, Some(10)), Err(TokenError::NonceMissing));
    verifier().verify(&t, NOTE, None).unwrap();
}

#[test]
fn the_tsa_certificate_itself_may_be_the_configured_root() {
    // Without certReq the token carries no certificate: only a root that is the TSA's own
    // certificate identifies the signer.
    let query = graven_testkit::tsa::openssl(
        &pki().dir,
        &["ts", "-query", "-digest", &hex(&sha256(NOTE)), "-sha256", "-no_nonce"],
    );
    let t = client(&pki().rsa).send(&query).unwrap();
    assert_eq!(verifier().verify(&t, NOTE, None), Err(TokenError::SignerNotFound));
    let pinned = TsaVerifier::new(roots(&pki().rsa.signer.pem()));
    let v = pinned.verify(&t, NOTE, None).unwrap();
    assert_eq!(v.root(), "CN=Graven Test TSA RSA");
}

#[test]
fn a_required_policy_is_checked() {
    let t = token(&pki().rsa, 12);
    let other = TsaPolicy::parse(OTHER_POLICY).unwrap();
    assert_eq!(
        verifier().require_policy(other).verify(&t, NOTE, Some(12)),
        Err(TokenError::Policy { expected: OTHER_POLICY.into(), found: DEFAULT_POLICY.into() })
    );
    let mut config = TsaClientConfig::new(&pki().rsa.url);
    config.policy = Some(other);
    let t = TsaClient::new(config).unwrap().timestamp(NOTE, 12).unwrap();
    assert_eq!(verifier().require_policy(other).verify(&t, NOTE, Some(12)).unwrap().policy(), OTHER_POLICY);
}

#[test]
fn the_client_reports_a_refusal_with_the_tsas_status_text() {
    let mut config = TsaClientConfig::new(&pki().rsa.url);
    config.policy = Some(TsaPolicy::parse("1.2.3.4.99").unwrap());
    let err = TsaClient::new(config).unwrap().timestamp(NOTE, 13).unwrap_err();
    match &err {
        ClientError::Reply { source: ReplyError::Refused(r), .. } => {
            assert_eq!(r.status, PkiStatus::Rejection);
            assert_eq!(r.text, ["Requested policy is not supported."]);
            assert_eq!(r.failures, ["unacceptedPolicy"]);
        }
        other => panic!("{other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("refused the request: status rejection, \"Requested policy is not supported.\""),
        "{message}"
    );

    let err = client(&pki().rsa).send(b"not a request").unwrap_err();
    assert!(
        err.to_string().ends_with("\"Bad request format or system error.\" (failInfo: badDataFormat)"),
        "{err}"
    );
}

#[test]
fn the_client_refuses_what_a_tsa_does_not_answer() {
    let answer = |status, content_type: &str, body: Vec<u8>| {
        let content_type = content_type.to_owned();
        graven_testkit::tsa::serve(move |_| graven_testkit::tsa::Answer {
            status,
            content_type: content_type.clone(),
            body: body.clone(),
        })
    };
    let at =
        |url: String| TsaClient::new(TsaClientConfig::new(url)).unwrap().timestamp(NOTE, 14).unwrap_err();
    assert!(matches!(
        at(answer(500, "text/plain", b"oops".to_vec())),
        ClientError::Status { status: 500, .. }
    ));
    assert!(matches!(at(answer(200, "text/html", b"<html>".to_vec())), ClientError::ContentType { .. }));
    assert!(matches!(
        at(answer(200, "application/timestamp-reply", vec![0x30; 70_000])),
        ClientError::TooLarge { .. }
    ));
    assert!(matches!(
        at(answer(200, "application/timestamp-reply", b"\x30\x03\x02\x01\x00".to_vec())),
        ClientError::Reply { source: ReplyError::Malformed(_), .. }
    ));
    assert!(matches!(TsaClient::new(TsaClientConfig::new("ftp://tsa.example")), Err(ClientError::BadUrl(_))));
    // Nothing listens on this port any more.
    let closed = graven_testkit::net::dead_addr();
    assert!(matches!(at(format!("http://{closed}/")), ClientError::Transport { .. }));
}

#[test]
fn a_later_checkpoint_never_carries_an_earlier_time() {
    // The EC TSA writes milliseconds, so two tokens in a row have increasing times.
    let first = verifier().verify(&token(&pki().ec, 15), NOTE, None).unwrap();
    let second = verifier().verify(&token(&pki().ec, 16), NOTE, None).unwrap();
    assert!(first.gen_time() < second.gen_time(), "{} then {}", first.gen_time(), second.gen_time());

    check_time_order([(TreeSize(10), &first), (TreeSize(20), &second)]).unwrap();
    check_time_order([(TreeSize(20), &second), (TreeSize(10), &first)]).unwrap();
    // Two tokens for one checkpoint are not ordered among themselves.
    check_time_order([(TreeSize(10), &second), (TreeSize(10), &first), (TreeSize(20), &second)]).unwrap();
    assert_eq!(
        check_time_order([(TreeSize(10), &second), (TreeSize(20), &first)]),
        Err(TimeOrderError::EarlierTime {
            size: TreeSize(20),
            time: first.gen_time(),
            earlier_size: TreeSize(10),
            earlier_time: second.gen_time(),
        })
    );

    // A follower, resumed from what it remembered.
    let mut order = TimeOrder::resume(TreeSize(10), second.gen_time());
    assert!(matches!(order.check(TreeSize(20), &first), Err(TimeOrderError::EarlierTime { .. })));
    assert!(matches!(order.check(TreeSize(5), &second), Err(TimeOrderError::OutOfOrder { .. })));
    order.check(TreeSize(20), &second).unwrap();
    assert_eq!(order.latest(), Some((TreeSize(20), second.gen_time())));
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

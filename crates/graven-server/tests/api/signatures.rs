//! RFC 9421 request signatures and client-signed events: attributed to the verified key, every
//! tampering refused, a refusal never attributed to the key it names, the body never read
//! before the signature is checked.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::SigningKey;
use graven_server::testing::Harness;
use serde_json::{Value, json};

use crate::util::{
    add_public, b64, client_sign, http_sign, kid, now_s, post_batch, post_event, signed, signed_post,
};

#[test]
fn signed_requests_are_attributed_and_every_attack_is_refused() {
    let h = Harness::start();
    let t = h.token().to_owned();
    let writer_key = h.identity("svc:signer", "writer", &[]);
    let other_key = h.identity("svc:other", "writer", &[]);
    let k = SigningKey::from_bytes(&[11u8; 32]);
    let other = SigningKey::from_bytes(&[12u8; 32]);
    // Registered by an admin: the event carries the key.
    assert_eq!(add_public(&h, "svc:signer", &k), kid(&k));
    let reg = h.event(h.size() - 1);
    assert_eq!(reg["action"], "graven.key.add_public");
    assert_eq!(reg["details"]["public_key"], b64(k.verifying_key().as_bytes()));
    add_public(&h, "svc:other", &other);
    // The same key cannot belong to two identities.
    let dup = json!({"public_key": b64(k.verifying_key().as_bytes())});
    h.check(h.post("/v1/identities/svc:other/public-keys").bearer(&t).json(dup)).expect(409);

    // Attribution: the actor comes from the verified key; the body's claim only under `claimed`.
    let body = r#"{"action":"deploy.create","actor":{"id":"root"}}"#;
    let hs = http_sign(&k, &kid(&k), body.as_bytes(), now_s(), None);
    let r = h.check(signed(&h, &hs, body)).expect(201);
    let e = h.event(r.json()["index"].as_u64().unwrap());
    assert_eq!(
        e["actor"],
        json!({"id": "svc:signer", "kind": "service_account", "auth": "http_signature", "credential": format!("pubkey:{}", kid(&k))})
    );
    assert_eq!(e["claimed"], json!({"actor": {"id": "root"}}));

    // A replayed signature.
    h.refused(401, signed(&h, &hs, body));
    // Same body and second but a nonce: a distinct signature, accepted once.
    let hn = http_sign(&k, &kid(&k), body.as_bytes(), now_s(), Some("n-1"));
    h.check(signed(&h, &hn, body)).expect(201);
    // A new signature reusing the nonce is a replay.
    let hn2 = http_sign(&k, &kid(&k), br#"{"action":"other"}"#, now_s(), Some("n-1"));
    h.refused(401, signed(&h, &hn2, r#"{"action":"other"}"#));
    // A tampered body: the digest no longer matches.
    let h2 = http_sign(&k, &kid(&k), br#"{"action":"a"}"#, now_s(), None);
    let d = h.denied(401, signed(&h, &h2, r#"{"action":"b"}"#));
    assert_eq!(d["details"]["reason"], "digest-mismatch", "{d}");
    // A tampered body with a matching digest: the signature covers the digest.
    let h3 = http_sign(&k, &kid(&k), br#"{"action":"a3"}"#, now_s(), None);
    let forged_digest = graven_auth::httpsig::content_digest(br#"{"action":"b3"}"#);
    let d = h.denied(
        401,
        signed_post(&h, &forged_digest, &h3.signature_input, &h3.signature, r#"{"action":"b3"}"#),
    );
    assert_eq!(d["details"]["reason"], "bad-signature", "{d}");
    // A tampered signature.
    let h4 = http_sign(&k, &kid(&k), br#"{"action":"a4"}"#, now_s(), None);
    let mut raw = B64.decode(h4.signature.trim_start_matches("sig1=:").trim_end_matches(':')).unwrap();
    raw[5] ^= 1;
    let bad_sig = format!("sig1=:{}:", B64.encode(&raw));
    h.refused(401, signed_post(&h, &h4.content_digest, &h4.signature_input, &bad_sig, r#"{"action":"a4"}"#));
    // Outside the time window, either side.
    for created in [now_s() - 1000, now_s() + 1000] {
        let hs = http_sign(&k, &kid(&k), br#"{"action":"late"}"#, created, None);
        let d = h.denied(401, signed(&h, &hs, r#"{"action":"late"}"#));
        assert_eq!(d["details"]["reason"], "signature-expired", "{d}");
    }
    // An unknown key id.
    let stranger = SigningKey::from_bytes(&[13u8; 32]);
    let hs = http_sign(&stranger, &kid(&stranger), br#"{"action":"x"}"#, now_s(), None);
    h.refused(401, signed(&h, &hs, r#"{"action":"x"}"#));
    // A signature that does not cover content-digest.
    let input =
        format!("sig1=(\"@method\" \"@path\");created={};keyid=\"{}\";alg=\"ed25519\"", now_s(), kid(&k));
    let base = format!("\"@method\": POST\n\"@path\": /v1/events\n\"@signature-params\": {}", &input[5..]);
    let sig = ed25519_dalek::Signer::sign(&k, base.as_bytes());
    let partial = format!("sig1=:{}:", B64.encode(sig.to_bytes()));
    let digest = graven_auth::httpsig::content_digest(br#"{"action":"p"}"#);
    let d = h.denied(401, signed_post(&h, &digest, &input, &partial, r#"{"action":"p"}"#));
    assert_eq!(d["details"]["reason"], "signature-coverage", "{d}");
    // Malformed headers: 400, never a panic.
    for (inp, sg) in [
        ("garbage(", "sig1=:AA==:"),
        ("sig1=(\"@method\")", "sig1=\"x\""),
        (&"a".repeat(9000)[..], "x=:AA==:"),
    ] {
        h.refused(400, signed_post(&h, &digest, inp, sg, r#"{"action":"p"}"#));
    }

    // Client-signed events: accepted over the exact body, stored in the leaf.
    let signed_event =
        client_sign(&k, r#"{"action":"deploy.create","resource":{"type":"k8s","id":"prod/pay"}}"#);
    let r = h.check(post_event(&h, &writer_key, &signed_event)).expect(201);
    let e = h.event(r.json()["index"].as_u64().unwrap());
    assert_eq!(e["client_signature"]["key_id"], kid(&k));
    assert_eq!(e["client_signature"]["alg"], "ed25519");
    // As an NDJSON batch (batch verification).
    let lines: String = (0..3)
        .map(|i| client_sign(&k, &format!(r#"{{"action":"batch.{i}","actor":{{"id":"me"}}}}"#)) + "\n")
        .collect();
    h.check(post_batch(&h, &writer_key, &lines)).expect(201);
    // A client signature over a different body: refused, nothing appended.
    let tampered = signed_event.replace("prod/pay", "prod/other");
    let d = h.denied(403, post_event(&h, &writer_key, &tampered));
    assert_eq!(d["details"]["reason"], "client-signature-invalid", "{d}");
    // One bad line refuses the whole batch, naming the line.
    let before = h.size();
    let r = h.check(post_batch(&h, &writer_key, &format!("{lines}{tampered}\n"))).expect(403);
    assert!(r.text().contains("line 4"), "{}", r.text());
    assert!(h.size() <= before + 1);
    // A client signature by another identity's key.
    let by_other = client_sign(&other, r#"{"action":"deploy.create"}"#);
    let d = h.denied(403, post_event(&h, &writer_key, &by_other));
    assert_eq!(d["details"]["reason"], "client-signature-key", "{d}");
    assert_eq!(h.check(post_event(&h, &other_key, &by_other)).status(), 201, "its owner may submit it");

    // A revoked public key: request signatures and client signatures both refused.
    h.check(
        h.post(format!("/v1/identities/svc:signer/public-keys/{}/revoke", kid(&k))).bearer(&t).json("{}"),
    )
    .expect(200);
    let hs = http_sign(&k, &kid(&k), br#"{"action":"after"}"#, now_s(), None);
    let d = h.denied(401, signed(&h, &hs, r#"{"action":"after"}"#));
    assert_eq!(d["details"]["reason"], "key-revoked", "{d}");
    let late = client_sign(&k, r#"{"action":"after"}"#);
    h.refused(403, post_event(&h, &writer_key, &late));

    // The verifier checks every client signature offline, from keys found in the log.
    let v = h.verify();
    assert_eq!((v.client_signatures, v.client_signatures_not_checked), (5, 0), "{v:?}");
}

/// A signature is checked before any of the body is read: a client that names somebody's key id
/// with a signature that does not verify gets 401 at once, even if it announces a large body and
/// never sends it (so it cannot make the server hold bodies in memory).
#[test]
fn a_bad_signature_is_refused_before_the_body_is_read() {
    let h = Harness::start();
    h.identity("svc:signer", "writer", &[]);
    let k = SigningKey::from_bytes(&[21u8; 32]);
    add_public(&h, "svc:signer", &k);
    // Signed by another key, but naming k's key id.
    let forger = SigningKey::from_bytes(&[22u8; 32]);
    let hs = http_sign(&forger, &kid(&k), b"{}", now_s(), Some("n-1"));
    let before = h.size();
    let mut conn = h.connect();
    conn.write(
        format!(
            "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\nContent-Digest: {}\r\nSignature-Input: {}\r\nSignature: {}\r\n\r\n",
            hs.content_digest, hs.signature_input, hs.signature
        )
        .as_bytes(),
    );
    let started = Instant::now();
    let head = conn.read_until(b"\r\n", Duration::from_secs(10));
    let text = String::from_utf8_lossy(&head).into_owned();
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(5), "answered only after {:?}", started.elapsed());
    // Only the denied record may have been appended.
    assert!(h.size() <= before + 1);
}

/// Review item 4: a signed request naming a real identity's public key id, with a bad
/// signature, an expired `created` or a body that is not the one signed, left a denied record
/// whose actor was that identity. Until a credential is verified, the actor is the server.
#[test]
fn a_refused_signed_request_is_never_attributed_to_the_key_it_names() {
    let h = Harness::start();
    h.identity("svc:victim", "writer", &[]);
    let victim = SigningKey::from_bytes(&[31u8; 32]);
    let attacker = SigningKey::from_bytes(&[32u8; 32]);
    let vk = add_public(&h, "svc:victim", &victim);
    let body = r#"{"action":"deploy.delete"}"#;
    let cases = [
        ("bad-signature", http_sign(&attacker, &vk, body.as_bytes(), now_s(), None)),
        ("signature-expired", http_sign(&attacker, &vk, body.as_bytes(), now_s() - 3600, None)),
        // Genuinely signed by the victim, over another body's digest header.
        ("digest-mismatch", http_sign(&victim, &vk, br#"{"action":"deploy.read"}"#, now_s(), None)),
    ];
    for (reason, hs) in cases {
        // Each from an address of its own: the per-address limit on denied records is 2/s.
        let d: Value = h.denied(401, signed(&h, &hs, body));
        assert_eq!(d["details"]["reason"], reason, "{d}");
        assert_eq!(d["actor"]["id"], "graven:server", "{reason}: {d}");
        assert_eq!(d["claimed"]["actor"]["id"], "svc:victim", "{reason}: {d}");
        assert_eq!(d["claimed"]["actor"]["credential"], format!("key:{vk}"), "{reason}: {d}");
    }
    // The victim's genuine request is still the victim's.
    let hs = http_sign(&victim, &vk, body.as_bytes(), now_s(), None);
    let r = h.check(signed(&h, &hs, body)).expect(201);
    assert_eq!(h.event(r.json()["index"].as_u64().unwrap())["actor"]["id"], "svc:victim");
}

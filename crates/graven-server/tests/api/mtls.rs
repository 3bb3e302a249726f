//! mTLS with SPIFFE IDs: certificates made here, real TLS handshakes (rustls on both ends) over
//! in-memory connections served by the accept loop's own code.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use graven_server::testing::{Answer, Harness};
use serde_json::{Value, json};

struct Pki {
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
    params: rcgen::CertificateParams,
}

fn ca(name: &str) -> Pki {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.distinguished_name.push(rcgen::DnType::CommonName, name);
    p.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    Pki { ca: p.self_signed(&key).unwrap(), ca_key: key, params: p }
}

struct Leaf {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl Pki {
    fn leaf(&self, dns: &[&str], uris: &[&str], client: bool, serial: u8) -> Leaf {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p =
            rcgen::CertificateParams::new(dns.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        for u in uris {
            p.subject_alt_names.push(rcgen::SanType::URI((*u).try_into().unwrap()));
        }
        p.extended_key_usages = vec![if client {
            rcgen::ExtendedKeyUsagePurpose::ClientAuth
        } else {
            rcgen::ExtendedKeyUsagePurpose::ServerAuth
        }];
        p.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x42, serial]));
        let issuer = rcgen::Issuer::from_params(&self.params, &self.ca_key);
        Leaf { cert: p.signed_by(&key, &issuer).unwrap(), key }
    }
}

/// A TLS client trusting `ca` for the server, presenting `client`'s certificate if given.
fn client(ca: &Pki, client: Option<&Leaf>) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.ca.der().clone()).unwrap();
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match client {
        Some(l) => b
            .with_client_auth_cert(
                vec![l.cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(l.key.serialize_der().into()),
            )
            .unwrap(),
        None => b.with_no_client_auth(),
    })
}

/// `POST /v1/events` over TLS with `cert` (and no other credential).
fn post_as(h: &Harness, ca: &Pki, cert: Option<&Leaf>, body: &str) -> std::io::Result<Answer> {
    h.check_tls(client(ca, cert), h.post("/v1/events").json(body))
}

fn write_pem(dir: &Path, name: &str, pem: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, pem).unwrap();
    p
}

/// The server certificate (from `pki`) and its key, written to `dir`.
fn server_files(dir: &Path, pki: &Pki) -> (PathBuf, PathBuf) {
    let server = pki.leaf(&["localhost"], &[], false, 1);
    (
        write_pem(dir, "server.pem", &server.cert.pem()),
        write_pem(dir, "server.key", &server.key.serialize_pem()),
    )
}

/// Creates a writer identity, as the admin with its API key over TLS (no client certificate).
fn create_identity(h: &Harness, ca: &Pki, id: &str) {
    let body = json!({"id": id, "kind": "workload", "owner": "team-platform", "role": "writer"});
    let req = h.post("/v1/identities").bearer(h.token()).json(body);
    h.check_tls(client(ca, None), req).unwrap().expect(201);
}

/// A request that must be refused with `status`, appending one denied record and nothing else.
fn denied(h: &Harness, status: u16, send: impl FnOnce() -> Answer) -> Value {
    let before = h.size();
    let a = send().expect(status);
    a.detail();
    assert_eq!(h.size(), before + 1, "a refused request appends its denied record only");
    let e = h.event(before);
    assert_eq!((&e["outcome"], &e["action"]), (&json!("denied"), &json!("graven.access.denied")), "{e}");
    e
}

#[test]
fn mtls_clients_are_attributed_by_spiffe_id() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pki = ca("graven test CA");
    let (cert, key) = server_files(dir, &pki);
    let mapped = pki.leaf(&[], &["spiffe://example.org/ns/prod/sa/payments"], true, 2);
    let direct = pki.leaf(&[], &["spiffe://example.org/ns/prod/sa/deployer"], true, 3);
    let no_spiffe = pki.leaf(&["client.example.org"], &["https://example.org/not-spiffe"], true, 4);
    let rogue = ca("rogue CA");
    let rogue_client = rogue.leaf(&[], &["spiffe://example.org/ns/prod/sa/deployer"], true, 5);
    let ca_pem = write_pem(dir, "ca.pem", &pki.ca.pem());
    let config = format!(
        "tls_cert = {cert:?}\ntls_key = {key:?}\nclient_ca = {ca_pem:?}\n\n[spiffe_ids]\n\"spiffe://example.org/ns/prod/sa/payments\" = \"workload:payments\"\n"
    );
    let h = Harness::builder().config(&config).start();
    create_identity(&h, &pki, "workload:payments");
    create_identity(&h, &pki, "spiffe://example.org/ns/prod/sa/deployer");

    // A mapped SPIFFE ID; the body's claimed actor changes only `claimed`.
    let r =
        post_as(&h, &pki, Some(&mapped), r#"{"action":"payment.refund","actor":{"id":"admin"}}"#).unwrap();
    let e = h.event(r.expect(201).json()["index"].as_u64().unwrap());
    let fingerprint = {
        use sha2::Digest;
        graven_core::hex::encode(&sha2::Sha256::digest(mapped.cert.der()))
    };
    assert_eq!(
        e["actor"],
        json!({"id": "workload:payments", "kind": "workload", "auth": "mtls",
               "credential": "spiffe://example.org/ns/prod/sa/payments",
               "cert_serial": "4202", "cert_sha256": fingerprint}),
        "{e}"
    );
    assert_eq!(e["claimed"]["actor"]["id"], "admin");
    // A SPIFFE ID that is itself the identity id.
    let r = post_as(&h, &pki, Some(&direct), r#"{"action":"deploy.create"}"#).unwrap();
    let e = h.event(r.expect(201).json()["index"].as_u64().unwrap());
    assert_eq!(e["actor"]["id"], "spiffe://example.org/ns/prod/sa/deployer");
    assert_eq!(e["actor"]["auth"], "mtls");
    // A writer's certificate cannot read.
    let r = h.check_tls(client(&pki, Some(&direct)), h.get("/v1/events/0")).unwrap();
    assert_eq!(r.status(), 403);

    // A certificate from the right CA without a SPIFFE ID: 401 and a denied record only.
    let d = denied(&h, 401, || post_as(&h, &pki, Some(&no_spiffe), r#"{"action":"mtls.attempt"}"#).unwrap());
    assert_eq!(d["details"]["reason"], "no-spiffe-id", "{d}");
    // A certificate from an unknown CA: the handshake fails, nothing is appended.
    let before = h.size();
    let r = post_as(&h, &pki, Some(&rogue_client), r#"{"action":"mtls.attempt"}"#);
    assert!(r.is_err(), "a client certificate from an unknown CA was accepted: {r:?}");
    assert_eq!(h.size(), before);
    // No certificate and no header (client certificates are optional here): 401, not recorded.
    let r = post_as(&h, &pki, None, r#"{"action":"mtls.attempt"}"#).unwrap();
    assert_eq!(r.status(), 401, "{}", r.text());
    assert_eq!(h.size(), before);
    // A disabled identity's certificate stops working.
    h.check(h.post("/v1/identities/workload:payments/disable").bearer(h.token()).json("{}")).expect(200);
    let d = denied(&h, 401, || post_as(&h, &pki, Some(&mapped), r#"{"action":"mtls.attempt"}"#).unwrap());
    assert_eq!(d["details"]["reason"], "identity-disabled", "{d}");
    assert!((0..h.size()).all(|i| h.event(i)["action"] != "mtls.attempt"));
    drop(h);

    // client_auth = "required": a client without a certificate fails the handshake.
    let h = Harness::builder()
        .config(&config.replace("[spiffe_ids]", "client_auth = \"required\"\n[spiffe_ids]"))
        .start();
    let r = h.check_tls(client(&pki, None), h.get("/healthz"));
    assert!(r.is_err(), "no client certificate, yet served: {r:?}");
    h.check_tls(client(&pki, Some(&direct)), h.get("/healthz")).unwrap().expect(200);
}

/// SPIFFE X.509-SVID section 2: "An X.509 SVID MUST contain exactly one URI SAN". A
/// certificate with a SPIFFE ID and another URI is not an SVID and maps to no one (401 and a
/// denied record), whichever order its URIs are in.
#[test]
fn mtls_a_certificate_with_two_uri_sans_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pki = ca("graven test CA");
    let (cert, key) = server_files(dir, &pki);
    let ca_pem = write_pem(dir, "ca.pem", &pki.ca.pem());
    let h = Harness::builder()
        .config(&format!("tls_cert = {cert:?}\ntls_key = {key:?}\nclient_ca = {ca_pem:?}\n"))
        .start();
    let id = "spiffe://prod.example/ns/prod/sa/payments";
    create_identity(&h, &pki, id);
    let one = pki.leaf(&[], &[id], true, 2);
    post_as(&h, &pki, Some(&one), r#"{"action":"payment.refund"}"#).unwrap().expect(201);
    for (serial, uris) in [(3, [id, "https://prod.example/other"]), (4, ["https://prod.example/other", id])] {
        let two = pki.leaf(&[], &uris, true, serial);
        let d = denied(&h, 401, || post_as(&h, &pki, Some(&two), r#"{"action":"mtls.attempt"}"#).unwrap());
        assert_eq!(d["details"]["reason"], "no-spiffe-id", "{uris:?}: {d}");
    }
}

/// Each client CA vouches only for the SPIFFE trust domains listed with it: a certificate
/// that chains to the staging CA and names a production SPIFFE ID is refused (401 and a
/// denied record), though its chain is valid and the identity exists.
#[test]
fn mtls_each_client_ca_vouches_only_for_its_trust_domains() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (prod, staging) = (ca("prod CA"), ca("staging CA"));
    let (cert, key) = server_files(dir, &prod);
    let prod_pem = write_pem(dir, "prod-ca.pem", &prod.ca.pem());
    let staging_pem = write_pem(dir, "staging-ca.pem", &staging.ca.pem());
    let config = format!(
        "tls_cert = {cert:?}\ntls_key = {key:?}\n\n[[client_ca]]\nfile = {prod_pem:?}\ntrust_domains = [\"prod.example\"]\n\n[[client_ca]]\nfile = {staging_pem:?}\ntrust_domains = [\"staging.example\", \"qa.example\"]\n"
    );
    let h = Harness::builder().config(&config).start();
    let (prod_id, staging_id) =
        ("spiffe://prod.example/ns/prod/sa/payments", "spiffe://staging.example/sa/ci");
    create_identity(&h, &prod, prod_id);
    create_identity(&h, &prod, staging_id);

    // Each CA for its own domain.
    for (client, id) in [
        (prod.leaf(&[], &[prod_id], true, 2), prod_id),
        (staging.leaf(&[], &[staging_id], true, 3), staging_id),
    ] {
        let r = post_as(&h, &prod, Some(&client), r#"{"action":"deploy.create"}"#).unwrap();
        assert_eq!(h.event(r.expect(201).json()["index"].as_u64().unwrap())["actor"]["id"], id);
    }
    // The staging CA naming a production identity, and the production CA a staging one.
    for client in [staging.leaf(&[], &[prod_id], true, 4), prod.leaf(&[], &[staging_id], true, 5)] {
        let d =
            denied(&h, 401, || post_as(&h, &prod, Some(&client), r#"{"action":"mtls.attempt"}"#).unwrap());
        assert_eq!(d["details"]["reason"], "trust-domain-not-vouched", "{d}");
        assert_eq!(d["actor"]["id"], "graven:server", "{d}");
    }
    assert!((0..h.size()).all(|i| h.event(i)["action"] != "mtls.attempt"));
    drop(h);

    // One CA given by flag, bound by --client-ca-trust-domain: its certificate for another
    // domain is refused, for its own domain accepted.
    let h = Harness::builder()
        .config(&format!("tls_cert = {cert:?}\ntls_key = {key:?}\n"))
        .overrides(|o| {
            o.client_ca = Some(prod_pem.clone());
            o.client_ca_trust_domains = vec!["prod.example".into()];
        })
        .start();
    create_identity(&h, &prod, prod_id);
    create_identity(&h, &prod, staging_id);
    post_as(&h, &prod, Some(&prod.leaf(&[], &[prod_id], true, 6)), r#"{"action":"deploy.create"}"#)
        .unwrap()
        .expect(201);
    let other = prod.leaf(&[], &[staging_id], true, 7);
    let d = denied(&h, 401, || post_as(&h, &prod, Some(&other), r#"{"action":"mtls.attempt"}"#).unwrap());
    assert_eq!(d["details"]["reason"], "trust-domain-not-vouched", "{d}");
}

/// Syslog over TLS (RFC 5425): a relay's client certificate attests its messages, as it
/// would authenticate an HTTPS request; without a certificate (and no listener identity) the
/// connection is closed and nothing is logged.
#[test]
fn mtls_syslog_over_tls_is_attested_by_the_client_certificate() {
    use graven_server::config::StreamSetup;
    use graven_server::stream_source::{self, Ended};
    use graven_server::syslog::Syslog;
    use tokio::io::AsyncWriteExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pki = ca("graven test CA");
    let (cert, key) = server_files(dir, &pki);
    let ca_pem = write_pem(dir, "ca.pem", &pki.ca.pem());
    let h = Harness::builder()
        .config(&format!("tls_cert = {cert:?}\ntls_key = {key:?}\nclient_ca = {ca_pem:?}\n"))
        .start();
    let relay_id = "spiffe://example.org/ns/logging/sa/rsyslog";
    let body = json!({"id": relay_id, "kind": "workload", "owner": "team-platform", "role": "source",
                      "source": {"types": ["syslog"], "subjects": ["*@*.prod"]}});
    h.check_tls(client(&pki, None), h.post("/v1/identities").bearer(h.token()).json(body))
        .unwrap()
        .expect(201);
    let relay = pki.leaf(&[], &[relay_id], true, 7);
    let setup = StreamSetup {
        listen: "127.0.0.1:6514".parse().unwrap(),
        identity: None,
        tls: true,
        max_frame_bytes: 2048,
        max_connections: 4,
    };
    let msg: &[u8] = b"<38>1 2026-12-07T10:00:00Z web-1.prod rotate 77 keyrot - rotated the signing key";
    let mut framed = format!("{} ", msg.len()).into_bytes();
    framed.extend_from_slice(msg);
    let send = |cert: Option<&Leaf>| -> Ended {
        let config = client(&pki, cert);
        let (st, tls, setup, framed) = (h.state().clone(), h.tls().cloned(), setup.clone(), framed.clone());
        h.block_on(async move {
            let (client_io, server_io) = tokio::io::duplex(64 << 10);
            let server = tokio::spawn(async move {
                let peer = "127.0.0.1:41000".parse().unwrap();
                stream_source::accepted(&Syslog, server_io, peer, setup.listen, &st, &setup, tls.as_ref())
                    .await
            });
            let connector = tokio_rustls::TlsConnector::from(config);
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            if let Ok(mut c) = connector.connect(name, client_io).await {
                let _ = c.write_all(&framed).await;
                let _ = c.shutdown().await;
                // As a relay does: the connection stays open until the server closes it.
                let _ = tokio::io::AsyncReadExt::read_to_end(&mut c, &mut Vec::new()).await;
            }
            server.await.unwrap()
        })
    };
    let size = h.size();
    assert_eq!(send(Some(&relay)), Ended { logged: 1, duplicates: 0, skipped: 0, error: None });
    let e = h.event(size);
    assert_eq!(e["actor"]["id"], "rotate@web-1.prod");
    assert_eq!(e["actor"]["auth"], "attested");
    assert_eq!(e["actor"]["attested_by"]["id"], relay_id);
    assert_eq!(e["actor"]["attested_by"]["auth"], "mtls");
    assert_eq!(e["actor"]["attested_by"]["credential"], relay_id);
    assert_eq!(e["action"], "syslog.keyrot");

    let ended = send(None);
    assert_eq!(ended.logged, 0);
    let e = ended.error.unwrap();
    assert!(e.contains("without a client certificate"), "{e}");
    assert_eq!(h.size(), size + 1);
}

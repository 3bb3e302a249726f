//! TLS for `graven serve`, and mTLS client authentication by SPIFFE ID.
//!
//! With `tls_cert` and `tls_key` the server speaks HTTPS (rustls, TLS 1.2 and 1.3). With
//! `client_ca` as well, clients may present a certificate: rustls verifies its chain against
//! that CA (WebPKI rules, client-auth usage) during the handshake, so a certificate from any
//! other CA fails the handshake. `client_auth = "required"` also fails the handshake of a
//! client without a certificate; `"optional"` (the default) lets it in to use another
//! credential.
//!
//! A verified certificate is mapped to an identity by its one `spiffe://` URI SAN (SPIFFE
//! X.509-SVID): through the `[spiffe_ids]` table when it lists the ID, else the identity whose
//! id is the SPIFFE ID itself. A certificate that chains to the CA but carries no SPIFFE ID
//! (or more than one) completes the handshake and is then refused with 401 on every request
//! that needs a credential, with a `denied` record, so the refusal is visible in the log.
//!
//! Per connection, the certificate is parsed once (SPIFFE ID, serial, SHA-256 fingerprint);
//! per request, only the identity lookup runs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use graven_core::jcs::Value as J;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use sha2::Digest;

use crate::event::Actor;
use crate::registry::{Denial, Principal, Registry};

const MAX_SPIFFE_ID: usize = 2048;

/// Whether a client certificate is optional or required (with `client_ca`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    #[default]
    Optional,
    Required,
}

impl std::str::FromStr for ClientAuth {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "optional" => Ok(ClientAuth::Optional),
            "required" => Ok(ClientAuth::Required),
            _ => Err(format!("client_auth {s:?} must be \"optional\" or \"required\"")),
        }
    }
}

/// The resolved TLS settings.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
    pub client_auth: ClientAuth,
    /// SPIFFE ID → identity id, for IDs that are not identity ids themselves.
    pub spiffe_ids: BTreeMap<String, String>,
}

/// What the handshake proved about the client, put in each request's extensions.
#[derive(Debug, Clone)]
pub struct ClientCert {
    /// The certificate's one `spiffe://` URI SAN, if it has exactly one valid one.
    pub spiffe_id: Option<String>,
    /// Serial number, lowercase hex.
    pub serial: String,
    /// SHA-256 of the DER certificate, lowercase hex.
    pub sha256: String,
}

/// Whether `s` is a SPIFFE ID: `spiffe://<trust domain>[/<path>]`, trust domain of lowercase
/// letters, digits, `.`, `-`, `_`; path segments of letters, digits, `.`, `-`, `_`, none empty,
/// `.` or `..`.
pub fn is_spiffe_id(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("spiffe://") else { return false };
    if s.len() > MAX_SPIFFE_ID {
        return false;
    }
    let (domain, path) = rest.split_once('/').map_or((rest, None), |(d, p)| (d, Some(p)));
    let domain_ok = !domain.is_empty()
        && domain.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b".-_".contains(&b));
    let path_ok = path.is_none_or(|p| {
        p.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b".-_".contains(&b))
        })
    });
    domain_ok && path_ok
}

/// Reads what identifies the client from its (already verified) end-entity certificate.
pub fn client_cert(der: &[u8]) -> ClientCert {
    let sha256 = graven_core::hex::encode(&sha2::Sha256::digest(der));
    let mut spiffe_id = None;
    let mut serial = String::new();
    if let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) {
        serial = graven_core::hex::encode(cert.tbs_certificate.raw_serial());
        if let Ok(Some(san)) = cert.tbs_certificate.subject_alternative_name() {
            let uris: Vec<&str> = san
                .value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::URI(u) => Some(*u),
                    _ => None,
                })
                .filter(|u| u.starts_with("spiffe://"))
                .collect();
            // An X.509-SVID has exactly one SPIFFE ID; anything else identifies no one.
            if let [one] = uris[..]
                && is_spiffe_id(one)
            {
                spiffe_id = Some(one.to_owned());
            }
        }
    }
    ClientCert { spiffe_id, serial, sha256 }
}

/// The principal for a connection's verified client certificate.
pub fn authenticate(
    cert: &ClientCert,
    spiffe_ids: &BTreeMap<String, String>,
    registry: &Registry,
    now_ms: i64,
) -> Result<Arc<Principal>, Denial> {
    let Some(spiffe) = &cert.spiffe_id else {
        return Err(Denial::Federated {
            reason: "no-spiffe-id",
            message: format!(
                "the client certificate (SHA-256 {}) has no SPIFFE ID (one spiffe:// URI SAN); present an X.509-SVID or another credential",
                cert.sha256
            ),
        });
    };
    let id = spiffe_ids.get(spiffe).map_or(spiffe.as_str(), String::as_str);
    registry.federated(
        id,
        spiffe,
        |kind| Actor {
            id: id.to_owned(),
            kind: kind.as_str().into(),
            credential: spiffe.clone(),
            auth: "mtls".into(),
            extra: vec![
                ("cert_serial".into(), J::String(cert.serial.clone())),
                ("cert_sha256".into(), J::String(cert.sha256.clone())),
            ],
        },
        None,
        now_ms,
    )
}

fn read_certs(path: &PathBuf) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("reading certificates from {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

/// Builds the TLS acceptor from the configured PEM files.
pub fn acceptor(cfg: &TlsConfig) -> Result<tokio_rustls::TlsAcceptor, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = read_certs(&cfg.cert)?;
    let key = PrivateKeyDer::from_pem_file(&cfg.key)
        .map_err(|e| format!("reading the private key from {}: {e}", cfg.key.display()))?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match &cfg.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in read_certs(ca)? {
                roots.add(c).map_err(|e| format!("{}: {e}", ca.display()))?;
            }
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let v = match cfg.client_auth {
                ClientAuth::Optional => v.allow_unauthenticated(),
                ClientAuth::Required => v,
            };
            builder.with_client_cert_verifier(v.build().map_err(|e| format!("client_ca: {e}"))?)
        }
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| format!("tls_cert/tls_key: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spiffe_ids_are_checked() {
        for ok in
            ["spiffe://example.org", "spiffe://example.org/ns/prod/sa/deployer", "spiffe://a-b_c.d/x.y-z_1"]
        {
            assert!(is_spiffe_id(ok), "{ok}");
        }
        for bad in [
            "https://example.org/x",
            "spiffe://",
            "spiffe://Example.org/x",
            "spiffe://example.org/",
            "spiffe://example.org//x",
            "spiffe://example.org/../x",
            "spiffe://example.org/a b",
            "spiffe://user@example.org/x",
            "spiffe://example.org:8443/x",
        ] {
            assert!(!is_spiffe_id(bad), "{bad}");
        }
    }

    #[test]
    fn a_certificate_yields_its_one_spiffe_id_serial_and_fingerprint() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        p.subject_alt_names
            .push(rcgen::SanType::URI("spiffe://example.org/ns/prod/sa/deployer".try_into().unwrap()));
        p.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x0a, 0xbc]));
        let cert = p.self_signed(&key).unwrap();
        let c = client_cert(cert.der());
        assert_eq!(c.spiffe_id.as_deref(), Some("spiffe://example.org/ns/prod/sa/deployer"));
        assert_eq!(c.serial, "0abc");
        assert_eq!(c.sha256, graven_core::hex::encode(&sha2::Sha256::digest(cert.der())));
        p.subject_alt_names.push(rcgen::SanType::URI("spiffe://example.org/other".try_into().unwrap()));
        assert_eq!(client_cert(p.self_signed(&key).unwrap().der()).spiffe_id, None, "two SPIFFE IDs");
        let plain =
            rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap().self_signed(&key).unwrap();
        assert_eq!(client_cert(plain.der()).spiffe_id, None);
    }
}

//! TLS for `graven serve`, and mTLS client authentication by SPIFFE ID.
//!
//! With `tls_cert` and `tls_key` the server speaks HTTPS (rustls, TLS 1.2 and 1.3). With
//! client CAs as well, clients may present a certificate: rustls verifies its chain against
//! the union of the client CAs (WebPKI rules, client-auth usage) during the handshake, so a
//! certificate from any other CA fails the handshake. `client_auth = "required"` also fails
//! the handshake of a client without a certificate; `"optional"` (the default) lets it in to
//! use another credential.
//!
//! A verified certificate is mapped to an identity by its SPIFFE ID, the one URI SAN of an
//! X.509-SVID (SPIFFE X.509-SVID, section 2: "An X.509 SVID MUST contain exactly one URI
//! SAN"): through the `[spiffe_ids]` table when it lists the ID, else the identity whose id is
//! the SPIFFE ID itself. Each client CA vouches only for the trust domains configured with it
//! (`[[client_ca]] trust_domains`; the single `client_ca = "file"` setting vouches for any):
//! the SPIFFE ID's trust domain must be vouched for by a CA that the chain verifies against
//! (SPIFFE Trust Domain and Bundle: a trust domain's bundle validates the SVIDs of that trust
//! domain). A certificate that chains to a CA but is no SVID, or names a trust domain none of
//! its CAs vouches for, completes the handshake and is then refused with 401 on every request
//! that needs a credential, with a `denied` record, so the refusal is visible in the log.
//!
//! Per connection, the certificate is parsed once (SPIFFE ID, serial, SHA-256 fingerprint,
//! and, when the CAs' trust domains differ, one chain check per CA that vouches for its
//! domain); per request, only the identity lookup runs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use graven_core::jcs::Value as J;
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use serde::Deserialize;
use sha2::Digest;

use crate::event::Actor;
use crate::registry::{Denial, Principal, Registry};

const MAX_SPIFFE_ID: usize = 2048;
/// Longest trust domain name (SPIFFE ID section 2.1: at most 255 bytes).
const MAX_TRUST_DOMAIN: usize = 255;
/// Client CA bundles, and trust domains per bundle.
pub const MAX_CLIENT_CAS: usize = 32;
pub const MAX_TRUST_DOMAINS: usize = 64;

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

/// The SPIFFE trust domains a client CA vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustDomains {
    /// Any: the single `client_ca = "file"` setting (and `--client-ca` without
    /// `--client-ca-trust-domain`), as before trust domains could be named.
    Any,
    /// Only these (each checked by [`is_trust_domain`]).
    Only(BTreeSet<String>),
}

impl TrustDomains {
    pub fn vouches_for(&self, domain: &str) -> bool {
        match self {
            TrustDomains::Any => true,
            TrustDomains::Only(d) => d.contains(domain),
        }
    }
}

impl std::fmt::Display for TrustDomains {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrustDomains::Any => f.write_str("any trust domain"),
            TrustDomains::Only(d) => {
                let list: Vec<&str> = d.iter().map(String::as_str).collect();
                write!(f, "trust domains {}", list.join(", "))
            }
        }
    }
}

/// One client CA bundle (PEM, one or more CA certificates) and what it vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCa {
    pub file: PathBuf,
    pub trust_domains: TrustDomains,
}

/// The resolved TLS settings.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Client certificates are accepted when this is not empty.
    pub client_cas: Vec<ClientCa>,
    pub client_auth: ClientAuth,
    /// SPIFFE ID → identity id, for IDs that are not identity ids themselves.
    pub spiffe_ids: BTreeMap<String, String>,
}

/// Why a client certificate is not an X.509-SVID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotSvid {
    /// The certificate could not be parsed, or its SAN extension could not (or it has two).
    Unreadable,
    /// No URI SAN.
    NoUri,
    /// More than one URI SAN, of any scheme.
    ManyUris(usize),
    /// Its one URI SAN is not a SPIFFE ID.
    NotSpiffe,
}

impl std::fmt::Display for NotSvid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotSvid::Unreadable => f.write_str("its subject alternative names cannot be read"),
            NotSvid::NoUri => f.write_str("it has no URI SAN"),
            NotSvid::ManyUris(n) => {
                write!(f, "it has {n} URI SANs and an X.509-SVID has exactly one")
            }
            NotSvid::NotSpiffe => {
                f.write_str("its URI SAN is not a SPIFFE ID (spiffe://<trust domain>/<path>)")
            }
        }
    }
}

/// What the handshake proved about the client, put in each request's extensions.
#[derive(Debug, Clone)]
pub struct ClientCert {
    /// The certificate's SPIFFE ID (its one URI SAN), or why it has none.
    pub spiffe_id: Result<String, NotSvid>,
    /// Whether a client CA the chain verifies against vouches for the SPIFFE ID's trust
    /// domain. Always false without a SPIFFE ID.
    pub vouched: bool,
    /// Serial number, lowercase hex.
    pub serial: String,
    /// SHA-256 of the DER certificate, lowercase hex.
    pub sha256: String,
}

/// Whether `s` is a SPIFFE trust domain name: 1 to 255 bytes of lowercase letters, digits,
/// `.`, `-`, `_` (SPIFFE ID section 2.1).
pub fn is_trust_domain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_TRUST_DOMAIN
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b".-_".contains(&b))
}

/// The trust domain of a SPIFFE ID (checked by [`is_spiffe_id`]).
pub fn trust_domain(spiffe_id: &str) -> &str {
    let rest = spiffe_id.strip_prefix("spiffe://").unwrap_or(spiffe_id);
    rest.split('/').next().unwrap_or(rest)
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
    let domain_ok = is_trust_domain(domain);
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

/// Reads what identifies the client from its (already verified) end-entity certificate:
/// serial, fingerprint, and its SPIFFE ID if it is an X.509-SVID. `vouched` is left false;
/// [`ClientCas::client_cert`] decides it.
pub fn client_cert(der: &[u8]) -> ClientCert {
    let sha256 = graven_core::hex::encode(&sha2::Sha256::digest(der));
    let mut spiffe_id = Err(NotSvid::Unreadable);
    let mut serial = String::new();
    if let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) {
        serial = graven_core::hex::encode(cert.tbs_certificate.raw_serial());
        // Err: a malformed or duplicated SAN extension (RFC 5280 section 4.2: at most one).
        spiffe_id = match cert.tbs_certificate.subject_alternative_name() {
            Err(_) => Err(NotSvid::Unreadable),
            Ok(None) => Err(NotSvid::NoUri),
            Ok(Some(san)) => {
                let uris: Vec<&str> = san
                    .value
                    .general_names
                    .iter()
                    .filter_map(|n| match n {
                        x509_parser::extensions::GeneralName::URI(u) => Some(*u),
                        _ => None,
                    })
                    .collect();
                // Exactly one URI SAN, of any scheme, and it is a SPIFFE ID; a second URI is
                // not ignored, whichever comes first.
                match uris[..] {
                    [] => Err(NotSvid::NoUri),
                    [one] if is_spiffe_id(one) => Ok(one.to_owned()),
                    [_] => Err(NotSvid::NotSpiffe),
                    _ => Err(NotSvid::ManyUris(uris.len())),
                }
            }
        };
    }
    ClientCert { spiffe_id, vouched: false, serial, sha256 }
}

/// The client CAs, each with its own chain verifier and the trust domains it vouches for.
#[derive(Debug)]
pub struct ClientCas {
    cas: Vec<(Arc<dyn ClientCertVerifier>, TrustDomains)>,
}

impl ClientCas {
    /// Identifies the client of a connection whose chain (`chain[0]` the end entity) the
    /// handshake verified against one of the CAs. The SPIFFE ID's trust domain is vouched for
    /// when a CA that vouches for it also verifies the chain on its own.
    pub fn client_cert(&self, chain: &[CertificateDer<'_>]) -> Option<ClientCert> {
        let (end_entity, intermediates) = chain.split_first()?;
        let mut cert = client_cert(end_entity);
        if let Ok(id) = &cert.spiffe_id {
            let domain = trust_domain(id);
            // When every CA vouches for the domain, the handshake's check was enough.
            cert.vouched = self.cas.iter().all(|(_, d)| d.vouches_for(domain)) || {
                let now = UnixTime::now();
                self.cas
                    .iter()
                    .filter(|(_, d)| d.vouches_for(domain))
                    .any(|(v, _)| v.verify_client_cert(end_entity, intermediates, now).is_ok())
            };
        }
        Some(cert)
    }
}

/// The TLS acceptor and the client CAs that decide what a client certificate vouches for.
#[derive(Clone)]
pub struct TlsServer {
    pub acceptor: tokio_rustls::TlsAcceptor,
    pub client_cas: Arc<ClientCas>,
}

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsServer").field("client_cas", &self.client_cas).finish_non_exhaustive()
    }
}

/// The principal for a connection's verified client certificate.
pub fn authenticate(
    cert: &ClientCert,
    spiffe_ids: &BTreeMap<String, String>,
    registry: &Registry,
    now_ms: i64,
) -> Result<Arc<Principal>, Denial> {
    let spiffe = match &cert.spiffe_id {
        Ok(id) => id,
        Err(why) => {
            return Err(Denial::Federated {
                reason: "no-spiffe-id",
                message: format!(
                    "the client certificate (SHA-256 {}) is not an X.509-SVID: {why}; present an SVID (exactly one URI SAN, a spiffe:// ID) or another credential",
                    cert.sha256
                ),
            });
        }
    };
    if !cert.vouched {
        return Err(Denial::Federated {
            reason: "trust-domain-not-vouched",
            message: format!(
                "the client certificate (SHA-256 {}) names a SPIFFE ID in trust domain {:?}, which no client CA it chains to vouches for (see trust_domains of [[client_ca]])",
                cert.sha256,
                trust_domain(spiffe)
            ),
        });
    }
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

/// Builds the TLS acceptor and the client CAs from the configured PEM files.
pub fn acceptor(cfg: &TlsConfig) -> Result<TlsServer, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = read_certs(&cfg.cert)?;
    let key = PrivateKeyDer::from_pem_file(&cfg.key)
        .map_err(|e| format!("reading the private key from {}: {e}", cfg.key.display()))?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let mut all = rustls::RootCertStore::empty();
    let mut cas = Vec::new();
    for ca in &cfg.client_cas {
        let mut roots = rustls::RootCertStore::empty();
        for c in read_certs(&ca.file)? {
            roots.add(c.clone()).map_err(|e| format!("{}: {e}", ca.file.display()))?;
            all.add(c).map_err(|e| format!("{}: {e}", ca.file.display()))?;
        }
        let v =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| format!("client CA {}: {e}", ca.file.display()))?;
        cas.push((v, ca.trust_domains.clone()));
    }
    // The handshake accepts a chain to any of the CAs; which trust domains it may name is
    // decided per connection by `ClientCas::client_cert`, so that a refusal is logged.
    let builder = if cas.is_empty() {
        builder.with_no_client_auth()
    } else {
        let v = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(all), provider);
        let v = match cfg.client_auth {
            ClientAuth::Optional => v.allow_unauthenticated(),
            ClientAuth::Required => v,
        };
        builder.with_client_cert_verifier(v.build().map_err(|e| format!("client_ca: {e}"))?)
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| format!("tls_cert/tls_key: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsServer {
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        client_cas: Arc::new(ClientCas { cas }),
    })
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
        assert_eq!(c.spiffe_id.as_deref(), Ok("spiffe://example.org/ns/prod/sa/deployer"));
        assert_eq!(c.serial, "0abc");
        assert_eq!(c.sha256, graven_core::hex::encode(&sha2::Sha256::digest(cert.der())));
        p.subject_alt_names.push(rcgen::SanType::URI("spiffe://example.org/other".try_into().unwrap()));
        assert_eq!(client_cert(p.self_signed(&key).unwrap().der()).spiffe_id, Err(NotSvid::ManyUris(2)));
        let plain =
            rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap().self_signed(&key).unwrap();
        assert_eq!(client_cert(plain.der()).spiffe_id, Err(NotSvid::NoUri));
    }

    /// SPIFFE X.509-SVID section 2: "An X.509 SVID MUST contain exactly one URI SAN". A second
    /// URI of any scheme, not only a second `spiffe://` one, makes the certificate no SVID.
    #[test]
    fn an_svid_has_exactly_one_uri_san() {
        let key = rcgen::KeyPair::generate().unwrap();
        let with = |uris: &[&str]| {
            let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            for u in uris {
                p.subject_alt_names.push(rcgen::SanType::URI((*u).try_into().unwrap()));
            }
            client_cert(p.self_signed(&key).unwrap().der()).spiffe_id
        };
        assert_eq!(with(&["spiffe://a.example/x"]).as_deref(), Ok("spiffe://a.example/x"));
        for uris in [
            &["spiffe://a.example/x", "https://a.example/y"][..],
            &["https://a.example/y", "spiffe://a.example/x"],
            &["spiffe://a.example/x", "spiffe://b.example/y"],
            &["spiffe://a.example/x", "SPIFFE://b.example/y"],
            &["spiffe://a.example/x", "spiffe://a.example/x"],
        ] {
            assert_eq!(with(uris), Err(NotSvid::ManyUris(2)), "{uris:?}");
        }
        assert_eq!(with(&["SPIFFE://a.example/x"]), Err(NotSvid::NotSpiffe));
    }
}

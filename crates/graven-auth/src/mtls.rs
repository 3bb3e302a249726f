//! mTLS client authentication by SPIFFE ID: what a verified client certificate says, and the
//! principal it maps to. The TLS handshake itself (rustls acceptor, the client CAs' union) is
//! the server's; it hands each connection's verified chain to [`ClientCas::client_cert`].
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
use std::sync::Arc;

use graven_core::jcs::Value as J;
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::{CertificateDer, UnixTime};
use sha2::Digest;

use crate::principal::{Actor, Denial, Principal};
use crate::registry::Registry;

const MAX_SPIFFE_ID: usize = 2048;
/// Longest trust domain name (SPIFFE ID section 2.1: at most 255 bytes).
const MAX_TRUST_DOMAIN: usize = 255;
/// Trust domains one client CA may vouch for.
pub const MAX_TRUST_DOMAINS: usize = 64;

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
    /// The client CAs: each one's chain verifier (built by the TLS layer from its bundle) and
    /// the trust domains it vouches for.
    pub fn new(cas: Vec<(Arc<dyn ClientCertVerifier>, TrustDomains)>) -> Self {
        ClientCas { cas }
    }

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

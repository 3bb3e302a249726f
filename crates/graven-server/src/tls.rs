//! TLS for `graven serve`: the rustls acceptor, and the client CAs it checks client
//! certificates against.
//!
//! With `tls_cert` and `tls_key` the server speaks HTTPS (rustls, TLS 1.2 and 1.3). With
//! client CAs as well, clients may present a certificate: rustls verifies its chain against
//! the union of the client CAs (WebPKI rules, client-auth usage) during the handshake, so a
//! certificate from any other CA fails the handshake. `client_auth = "required"` also fails
//! the handshake of a client without a certificate; `"optional"` (the default) lets it in to
//! use another credential. What a verified certificate names, and the identity it maps to, is
//! [`graven_auth::mtls`]'s: each connection's chain goes to [`ClientCas::client_cert`] once.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use graven_auth::mtls::{ClientCas, TrustDomains};
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

/// Client CA bundles.
pub const MAX_CLIENT_CAS: usize = 32;

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
        cas.push((v as Arc<dyn ClientCertVerifier>, ca.trust_domains.clone()));
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
        client_cas: Arc::new(ClientCas::new(cas)),
    })
}

//! `graven serve`: the HTTP API over the log engine ([`graven_engine`]) and its credentials
//! ([`graven_auth`]).
//!
//! | module | what |
//! |---|---|
//! | [`http`] | `fn app(state) -> Router`: the route table, the guard, and the handlers of events, proofs, tiles, search and the stream |
//! | [`alerting`] | alert rules on every committed event, alerts as events, webhooks (the log is the queue) |
//! | [`console`] | the auditor's console at `/ui`: sessions, server-rendered pages, the browser's own proof check |
//! | [`admin`] | `/v1/identities` and its keys and public keys |
//! | [`audit`] | the server's own events: identity and key changes, refused requests, their summaries |
//! | [`serve`] | start-up, the accept loop, graceful drain |
//! | [`logs`] | the log on standard error: one line per request and per error, text or JSON |
//! | [`stream_source`] | sources on their own TCP listener: accept loop, attestation, read-no-faster-than-logged commits |
//! | [`syslog`] | the syslog listener: RFC 5424 over TCP (RFC 6587 octet counting) or TLS (RFC 5425), reported as a platform source |
//! | [`openbao_socket`] | OpenBao's `socket` audit device: one JSON entry per line over TCP, reported as the `openbao` source |
//! | [`tls`] | the rustls acceptor and the client CAs |
//! | [`timestamping`] | trusted time: the latest checkpoint stamped by an RFC 3161 TSA at most once per interval, tokens checked and stored |
//! | [`witnessing`] | witness cosignatures for each checkpoint (the rounds of [`graven_witness_client`], fed by the engine) |
//! | [`config`], [`metrics`], [`problem`] | flags > env > TOML > defaults; Prometheus; RFC 9457 problems |

pub mod alerting;
pub mod config;
pub mod console;
pub mod http;
pub mod logs;
pub mod metrics;
pub mod openbao_socket;
pub mod problem;
pub mod reload;
pub mod serve;
pub mod source_ids;
pub mod stream_source;
pub mod syslog;
#[cfg(feature = "testing")]
pub mod testing;
pub mod timestamping;
pub mod tls;
pub mod witnessing;

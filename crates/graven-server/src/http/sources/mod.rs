//! Platform sources (docs/sources.md): a `source` identity reports the events of the subjects
//! it vouches for, as the platform records them, and each is stored with that subject as its
//! actor, marked `"auth": "attested"` and `attested_by` the source's own verified credential,
//! so a reported actor is never taken for one that authenticated itself.
//!
//! | module | what |
//! |---|---|
//! | [`report`] | what every source shares: the grant check, the attested actor, the original record kept (or its digest), de-duplication by the platform's event id, one all-or-nothing commit |
//! | [`cloudtrail`] | `POST /v1/sources/cloudtrail`: AWS CloudTrail log files (`{"Records": [...]}`), as `graven import cloudtrail` posts them |
//! | [`kubernetes`] | `POST /v1/sources/kubernetes`: the API server's audit webhook (`audit.k8s.io/v1` `EventList`) |
//! | [`openbao`] | `POST /v1/sources/openbao`: OpenBao's (and Vault's) `http` audit device |
//! | [`otlp`] | `POST /v1/logs`: OpenTelemetry logs over OTLP/HTTP (protobuf or JSON, gzip or not), answered as OTLP answers |
//! | [`otlp_map`] | OTLP logs decoded and mapped to events, with no I/O (the fuzz target `otlp_logs` compiles it alone) |

pub mod cloudtrail;
pub mod kubernetes;
pub mod openbao;
pub mod otlp;
pub mod otlp_map;
pub mod report;

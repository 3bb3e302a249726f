//! Who may do what to a Graven log: credentials in, a verified [`principal::Principal`] out.
//! No HTTP framework and no engine: the server's HTTP layer calls in with the parts of a
//! request it needs, and turns every refusal into a problem document and a `denied` record.
//!
//! | module | what |
//! |---|---|
//! | [`principal`] | `Principal` (a verified identity and role), `Actor` (what its events are attributed to), `Denial` |
//! | [`identity`] | the identity model (pure): kinds, roles, statuses, field rules, the allowed-action glob |
//! | [`apikey`] | `gvn_<key id>_<secret>`: parse, encode, mint (pure, fuzzed from source) |
//! | [`public_key`] | registered Ed25519 keys: the accepted encodings |
//! | [`registry`], [`registry_file`] | `identities.json` (or a shared log's signed object) in memory; O(1) authentication; the file format |
//! | [`jwt`], [`oidc`] | JWS tokens and JWKs (pure, fuzzed); OIDC federation with cached key sets |
//! | [`httpsig`], [`sigauth`] | RFC 9421 signatures and RFC 9530 digests; the request-signature credential |
//! | [`replay_claims`] | a shared log's replay cache: one create-only object per signed request, over an `ObjectStore` |
//! | [`mtls`] | the principal of a verified client certificate (SPIFFE ID, trust domains) |
//! | [`event_signature`] | client-signed events, checked before sequencing |
//! | [`shape`] | a request body attributed to its actor as a canonical event; the reserved `graven.` namespace |
//! | [`access`] | what a route needs and which roles have it; the `Authorization` header |
//! | [`ratelimit`] | token buckets bounding `denied` records, and the tally of what they drop |
//!
//! Module dependencies point one way: `principal` → {`identity`, `apikey`}; `registry` →
//! {`principal`, `identity`, `apikey`, `public_key`, `registry_file`}; `oidc`, `mtls`,
//! `sigauth`, `event_signature` → `registry`; `sigauth` → `replay_claims`; `shape` → `principal`.

pub mod access;
pub mod apikey;
pub mod event_signature;
pub mod httpsig;
pub mod identity;
pub mod jwt;
pub mod mtls;
pub mod oidc;
pub mod principal;
pub mod public_key;
pub mod ratelimit;
pub mod registry;
pub mod registry_file;
pub mod replay_claims;
pub mod shape;
pub mod sigauth;

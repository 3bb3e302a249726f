//! `graven serve`: the durable log engine and its HTTP API.
pub mod apikey;
pub mod audit;
pub mod auth;
pub mod config;
pub mod engine;
pub mod event;
pub mod http;
pub mod identities;
pub mod identity;
pub mod indexer;
pub mod metrics;
pub mod problem;
pub mod ratelimit;
pub mod registry;
pub mod server;
pub mod store;

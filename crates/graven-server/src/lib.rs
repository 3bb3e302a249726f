//! `graven serve`: the durable log engine and its HTTP API.
pub mod auth;
pub mod config;
pub mod engine;
pub mod event;
pub mod http;
pub mod indexer;
pub mod metrics;
pub mod problem;
pub mod server;
pub mod store;

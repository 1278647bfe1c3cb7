//! spillway: a Redis-protocol caching proxy with PostgreSQL as the system of record.
pub mod cache;
pub mod cmd;
pub mod config;
pub mod error;
pub mod keyspace;
pub mod resp;
pub mod store;

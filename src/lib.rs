//! spillway: a Redis-protocol caching proxy with PostgreSQL as the system of record.
pub mod cache;
pub mod cmd;
pub mod config;
pub mod engine;
pub mod error;
pub mod health;
pub mod keyspace;
pub mod net;
pub mod processor;
pub mod resp;
pub mod server;
pub mod stats;
pub mod store;
pub mod wal;
pub mod write;

/// The Redis version spillway reports (HELLO, INFO): the command set and
/// reply shapes it follows.
pub const REDIS_VERSION: &str = "7.2.0";

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

/// Opens the backends, binds `server.listen` and serves until `shutdown`.
pub async fn run(config: config::Config, shutdown: CancellationToken) -> error::Result<()> {
    let listener = tokio::net::TcpListener::bind(&config.server.listen).await?;
    let engine: Arc<engine::Engine> = engine::Engine::open(config).await?;
    tracing::info!(
        listen = %engine.config.server.listen,
        cache = %engine.config.cache.backend,
        database = engine.store.name(),
        "spillway listening"
    );
    server::run(listener, engine, shutdown).await;
    Ok(())
}

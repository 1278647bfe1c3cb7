//! spillway: a Redis-protocol caching proxy with PostgreSQL as the system of record.
pub mod cache;
pub mod cmd;
pub mod config;
pub mod engine;
pub mod error;
pub mod health;
pub mod keyspace;
pub mod mapped;
pub mod net;
pub mod processor;
pub mod reload;
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
    tokio::spawn(reload_on_sighup(engine.clone(), shutdown.clone()));
    server::run(listener, engine, shutdown).await;
    Ok(())
}

/// SIGHUP reloads the config (see `reload`); a refused reload is logged
/// and changes nothing.
async fn reload_on_sighup(engine: Arc<engine::Engine>, shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::error!("cannot install the SIGHUP handler; reload with SPILLWAY RELOAD");
        return;
    };
    while shutdown
        .run_until_cancelled(hup.recv())
        .await
        .flatten()
        .is_some()
    {
        tracing::info!("SIGHUP received: reloading the configuration");
        let _ = engine.reload();
    }
}

//! The network edge: the accept loop with its client limit, per-connection
//! tasks, and the ordered shutdown (stop accepting → let connections finish
//! their in-flight requests, bounded by `server.shutdown_timeout` → stop
//! background tasks → close backends).

pub mod connection;
pub mod dispatch;
pub mod session;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::engine::Engine;
use crate::stats::Stats;

/// Serves `listener` until `shutdown` is cancelled, then shuts down in order.
pub async fn run(listener: TcpListener, engine: Arc<Engine>, shutdown: CancellationToken) {
    let background = TaskTracker::new();
    let stop_background = CancellationToken::new();
    engine.spawn_background(&background, stop_background.clone());
    let connections = TaskTracker::new();
    let next_id = AtomicU64::new(1);
    let needs_auth = engine.config.server.requirepass.is_some();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (mut stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                // Out of file descriptors and the like: back off, keep serving.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        Stats::add(&engine.stats.connections_received, 1);
        let clients = &engine.stats.connected_clients;
        if Stats::get(clients) as usize >= engine.config.server.max_clients {
            Stats::add(&engine.stats.rejected_connections, 1);
            tokio::spawn(async move {
                let _ = stream
                    .write_all(b"-ERR max number of clients reached\r\n")
                    .await;
            });
            continue;
        }
        let _ = stream.set_nodelay(true);
        clients.fetch_add(1, Ordering::Relaxed);
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        let session = session::Session::new(id, peer.to_string(), needs_auth);
        let engine = engine.clone();
        let stop = shutdown.clone();
        connections.spawn(async move {
            connection::serve(engine.clone(), stream, session, stop).await;
            engine
                .stats
                .connected_clients
                .fetch_sub(1, Ordering::Relaxed);
        });
    }
    drop(listener);
    tracing::info!(
        connections = connections.len(),
        "shutting down: no longer accepting"
    );
    connections.close();
    let grace = engine.config.server.shutdown_timeout;
    let deadline = std::time::Instant::now() + grace;
    if tokio::time::timeout(grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            ?grace,
            "connections still busy after shutdown_timeout; closing them"
        );
    }
    stop_background.cancel();
    background.close();
    background.wait().await;
    engine.close(deadline).await;
    tracing::info!("shutdown complete");
}

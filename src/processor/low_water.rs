//! Reports this instance's low-water version to the database
//! (`Store::set_low_water`): a version at or below every write it has
//! pending or may still issue (`Backlog::low_water`). The sweepers of all
//! instances purge tombstones and expired rows only below the lowest
//! reported one, so a write held back here (the database down, a long
//! outage of this instance) cannot be resurrected by a purge: its version
//! still meets the tombstone it must lose to.
//!
//! Reported once before serving and then every second, also while idle
//! (an idle instance must not hold purging back). A failed report is
//! logged and tried again at the next tick; the stored value stays the
//! last one reported, which is still a valid bound.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Backlog;
use crate::error::{Result, with_timeout};
use crate::keyspace::now_millis;
use crate::store::Store;

/// How often the low-water version is reported (at most).
pub const REPORT_EVERY: Duration = Duration::from_secs(1);
const LOG_EVERY: Duration = Duration::from_secs(10);

pub struct LowWater {
    pub store: Arc<dyn Store>,
    pub backlog: Arc<Backlog>,
    pub instance: String,
    pub db_timeout: Duration,
}

impl LowWater {
    /// Computes and stores the bound once.
    pub async fn report(&self) -> Result<()> {
        let low = self.backlog.low_water(now_millis());
        with_timeout(
            self.store.name(),
            self.db_timeout,
            self.store.set_low_water(&self.instance, low),
        )
        .await
    }

    /// Reports every `REPORT_EVERY` until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(REPORT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing_since: Option<tokio::time::Instant> = None;
        let mut last_log: Option<tokio::time::Instant> = None;
        while stop.run_until_cancelled(tick.tick()).await.is_some() {
            let Some(reported) = stop.run_until_cancelled(self.report()).await else {
                return;
            };
            let Err(e) = reported else {
                failing_since = None;
                continue;
            };
            let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
            if last_log.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
                tracing::warn!(
                    error = %e,
                    failing_for = ?since.elapsed(),
                    "cannot report the low-water version; sweepers keep what the last report covers"
                );
                last_log = Some(tokio::time::Instant::now());
            }
        }
    }
}

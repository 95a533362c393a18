//! Tells the other hub instances whose feeds grew, after the commits that grew them, so that
//! their subscribers look at the feed at once (LISTEN/NOTIFY); and listens for what they tell.
//!
//! Why not a NOTIFY inside each write: PostgreSQL keeps its notification queue in commit order
//! by taking one database-wide lock in every transaction that notifies and holding it through
//! that transaction's commit and WAL flush. Writes that notify therefore commit one at a time,
//! across every instance, however narrow their own locks. Here each instance gathers the
//! agencies its commits touched and sends them in one notification of its own, off the write
//! path; its commit need not be durable (a lost one costs a subscriber at most its once-a-second
//! poll, as does an instance that stops between a commit and its notification).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::sync::Notify;

use super::feed::FeedSignals;
use crate::domain::AgencyId;

/// The channel the instances notify on. The payload names the agencies whose feeds grew.
pub const FEED_CHANNEL: &str = "tsunagu_feed";
/// The payload when too many agencies to name (NOTIFY payloads stop at 8000 bytes).
const EVERYONE: &str = "*";
/// The longest payload that names agencies.
const MAX_PAYLOAD: usize = 7000;

/// One per store: the agencies touched by commits not yet told, and the task that tells them.
#[derive(Debug)]
pub(crate) struct Notifier {
    pool: PgPool,
    touched: Mutex<BTreeSet<String>>,
    wake: Notify,
}

impl Notifier {
    pub(crate) fn new(pool: PgPool) -> Arc<Self> {
        Arc::new(Self {
            pool,
            touched: Mutex::default(),
            wake: Notify::new(),
        })
    }

    /// Called after a commit that appended to the feeds of `agencies`.
    pub(crate) fn tell(&self, agencies: &[AgencyId]) {
        if agencies.is_empty() {
            return;
        }
        self.touched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(agencies.iter().map(|agency| agency.as_str().to_owned()));
        self.wake.notify_one();
    }

    /// Sends one notification for everything touched since the last, until the pool is closed.
    /// Under load, the commits made while one notification is under way go in the next.
    pub(crate) fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let notifier = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                let _ =
                    tokio::time::timeout(Duration::from_secs(1), notifier.wake.notified()).await;
                if notifier.pool.is_closed() {
                    return;
                }
                let touched = std::mem::take(
                    &mut *notifier
                        .touched
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner),
                );
                if touched.is_empty() {
                    continue;
                }
                if let Err(error) = notifier.send(&payload(&touched)).await {
                    tracing::warn!(%error, "cannot tell the other instances of new feed entries");
                }
            }
        })
    }

    async fn send(&self, payload: &str) -> Result<(), sqlx::Error> {
        let mut tx = self
            .pool
            .begin_with("BEGIN; SET LOCAL synchronous_commit = off")
            .await?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(FEED_CHANNEL)
            .bind(payload)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }
}

/// Wakes this instance's subscriptions of the agencies each notification names, until the
/// connection fails.
pub(crate) async fn listen(
    options: &PgConnectOptions,
    signals: &FeedSignals,
) -> Result<(), sqlx::Error> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(3))
        .connect_with(options.clone())
        .await?;
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.listen(FEED_CHANNEL).await?;
    loop {
        let notification = listener.recv().await?;
        let payload = notification.payload();
        if payload == EVERYONE {
            signals.wake_everyone();
        } else {
            let agencies: Vec<_> = payload.split(',').filter_map(AgencyId::parse).collect();
            signals.wake(&agencies);
        }
    }
}

/// The agencies, comma-separated, or [`EVERYONE`] when they would not fit.
fn payload(agencies: &BTreeSet<String>) -> String {
    let named = agencies
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(",");
    if named.len() > MAX_PAYLOAD {
        EVERYONE.to_owned()
    } else {
        named
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_names_each_agency_once_or_everyone_when_too_long() {
        let few: BTreeSet<String> = ["kodomo", "hospital"].map(str::to_owned).into();
        assert_eq!(payload(&few), "hospital,kodomo");
        let many: BTreeSet<String> = (0..2000).map(|n| format!("agency-{n}")).collect();
        assert_eq!(payload(&many), EVERYONE);
    }
}

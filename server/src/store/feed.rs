//! Wake-ups for live feeds: after a commit that appended feed entries, only the subscribers of
//! the agencies concerned look at the database again, so a thousand idle subscriptions cost
//! nothing when one of them gets an event.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;

use crate::domain::AgencyId;

/// One watch channel per agency that has a live subscription, plus one for everybody (a
/// commit seen through another hub instance whose agencies are not known, a reconnect).
#[derive(Debug)]
pub struct FeedSignals {
    agencies: Mutex<HashMap<AgencyId, watch::Sender<u64>>>,
    everyone: watch::Sender<u64>,
}

impl Default for FeedSignals {
    fn default() -> Self {
        Self {
            agencies: Mutex::new(HashMap::new()),
            everyone: watch::Sender::new(0),
        }
    }
}

impl FeedSignals {
    /// A waker for one agency's subscription.
    pub fn subscribe(&self, agency: &AgencyId) -> FeedWaker {
        let mine = match self.agencies.lock() {
            Ok(mut agencies) => agencies
                .entry(agency.clone())
                .or_insert_with(|| watch::Sender::new(0))
                .subscribe(),
            // A poisoned map only loses targeted wake-ups; the poll and `everyone` remain.
            Err(_) => watch::Sender::new(0).subscribe(),
        };
        FeedWaker {
            mine,
            everyone: self.everyone.subscribe(),
        }
    }

    /// Wakes the subscriptions of these agencies.
    pub fn wake(&self, agencies: &[AgencyId]) {
        if agencies.is_empty() {
            return;
        }
        if let Ok(mut map) = self.agencies.lock() {
            for agency in agencies {
                if let Some(sender) = map.get(agency) {
                    if sender.receiver_count() == 0 {
                        map.remove(agency);
                    } else {
                        sender.send_modify(|generation| *generation += 1);
                    }
                }
            }
        }
    }

    /// Wakes every subscription.
    pub fn wake_everyone(&self) {
        self.everyone.send_modify(|generation| *generation += 1);
    }
}

/// What a subscription waits on.
#[derive(Debug)]
pub struct FeedWaker {
    mine: watch::Receiver<u64>,
    everyone: watch::Receiver<u64>,
}

impl FeedWaker {
    /// Marks every wake-up so far as seen: call it before reading the feed, so that a commit
    /// after the read wakes the next `changed`.
    pub fn mark_seen(&mut self) {
        self.mine.borrow_and_update();
        self.everyone.borrow_and_update();
    }

    /// Waits for the next wake-up.
    pub async fn changed(&mut self) {
        tokio::select! {
            result = self.mine.changed() => {
                if result.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            result = self.everyone.changed() => {
                if result.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> AgencyId {
        AgencyId::parse(text).unwrap()
    }

    #[tokio::test]
    async fn only_the_agencies_concerned_are_woken() {
        let signals = FeedSignals::default();
        let mut hospital = signals.subscribe(&id("hospital"));
        let mut nursery = signals.subscribe(&id("nursery"));
        hospital.mark_seen();
        nursery.mark_seen();
        signals.wake(&[id("hospital")]);
        tokio::time::timeout(std::time::Duration::from_millis(100), hospital.changed())
            .await
            .expect("the hospital is woken");
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), nursery.changed())
                .await
                .is_err(),
            "the nursery is not"
        );
    }

    #[tokio::test]
    async fn waking_everyone_wakes_every_subscription() {
        let signals = FeedSignals::default();
        let mut hospital = signals.subscribe(&id("hospital"));
        hospital.mark_seen();
        signals.wake_everyone();
        tokio::time::timeout(std::time::Duration::from_millis(100), hospital.changed())
            .await
            .expect("woken");
    }

    #[test]
    fn agencies_without_subscribers_are_forgotten() {
        let signals = FeedSignals::default();
        drop(signals.subscribe(&id("hospital")));
        signals.wake(&[id("hospital")]);
        assert!(signals.agencies.lock().unwrap().is_empty());
    }
}

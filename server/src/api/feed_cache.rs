//! Pages of each agency's feed kept in memory, encoded. A feed entry never changes once
//! committed, so a page read from the database once can be served again without it, and its
//! events sent as the bytes they were first encoded to.
//!
//! What is kept must say not only which entries exist but that none is missing between them:
//! each cached entry carries the cursor after which, up to its own, the agency's feed holds
//! nothing else. A page is served from memory only when that chain is unbroken from the
//! requested cursor for the whole page; anything else (the tail of the feed, a cursor never
//! read, a gap after an eviction) goes to the database, and what it returns is remembered.
//!
//! This relies on the store's guarantee that a reader never sees a feed entry before an entry
//! of a lower cursor that will still appear in the same agency's feed: SQLite has one writer,
//! and PostgreSQL draws an agency's cursors under that agency's feed lock, held until the
//! commit is visible, so each agency's cursors become visible in order.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};

use tsunagu_proto::served::EncodedFeedEvent;

use crate::domain::AgencyId;

/// Bytes counted for an entry beyond its encoded size: the map node and the buffer's header.
const ENTRY_OVERHEAD: usize = 96;

/// One entry of a feed: its cursor and the `FeedEvent` as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedItem {
    pub cursor: u64,
    pub event: EncodedFeedEvent,
}

/// The feed entries of every agency read recently, within a memory budget.
#[derive(Debug)]
pub struct FeedCache {
    budget: usize,
    inner: Mutex<Agencies>,
}

#[derive(Debug, Default)]
struct Agencies {
    feeds: HashMap<AgencyId, AgencyFeed>,
    bytes: usize,
    /// Advances on every use, to find the agencies read least recently.
    clock: u64,
}

#[derive(Debug, Default)]
struct AgencyFeed {
    entries: BTreeMap<u64, Cached>,
    bytes: usize,
    last_used: u64,
}

#[derive(Debug)]
struct Cached {
    /// The agency's feed has no entry with a cursor between this one and the entry's own.
    empty_after: u64,
    event: EncodedFeedEvent,
    bytes: usize,
}

impl FeedCache {
    /// A cache holding about `budget` bytes at most; 0 keeps nothing.
    pub fn new(budget: usize) -> Self {
        Self {
            budget,
            inner: Mutex::new(Agencies::default()),
        }
    }

    /// The `limit` entries of `agency`'s feed after `after`, when all of them are known to be
    /// the next ones; `None` sends the caller to the database.
    pub fn page(&self, agency: &AgencyId, after: u64, limit: usize) -> Option<Vec<FeedItem>> {
        if self.budget == 0 || limit == 0 {
            return None;
        }
        let mut agencies = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        agencies.clock += 1;
        let now = agencies.clock;
        let feed = agencies.feeds.get_mut(agency)?;
        feed.last_used = now;
        let mut page = Vec::with_capacity(limit);
        let mut previous = after;
        for (&cursor, cached) in feed.entries.range(after.saturating_add(1)..) {
            if cached.empty_after > previous {
                // An entry between `previous` and this one may exist but was never read.
                return None;
            }
            // A reference count, not a copy.
            page.push(FeedItem {
                cursor,
                event: cached.event.clone(),
            });
            if page.len() == limit {
                return Some(page);
            }
            previous = cursor;
        }
        // The end of what is cached, not necessarily of the feed.
        None
    }

    /// Remembers a page just read from the database: `events` are all of `agency`'s feed
    /// entries after `after`, in order, up to the last one's cursor.
    pub fn remember(&self, agency: &AgencyId, after: u64, events: &[FeedItem]) {
        if self.budget == 0 || events.is_empty() {
            return;
        }
        let mut agencies = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        agencies.clock += 1;
        let now = agencies.clock;
        let feed = agencies.feeds.entry(agency.clone()).or_default();
        feed.last_used = now;
        let mut added = 0;
        let mut previous = after;
        for event in events {
            let cursor = event.cursor;
            if cursor <= previous {
                // Not the order the store promises: keep nothing rather than a wrong chain.
                tracing::warn!(
                    agency = %agency,
                    cursor,
                    previous,
                    "feed page out of order; not cached"
                );
                return;
            }
            match feed.entries.get_mut(&cursor) {
                Some(cached) => cached.empty_after = cached.empty_after.min(previous),
                None => {
                    let bytes = event.event.0.len() + ENTRY_OVERHEAD;
                    feed.entries.insert(
                        cursor,
                        Cached {
                            empty_after: previous,
                            event: event.event.clone(),
                            bytes,
                        },
                    );
                    feed.bytes += bytes;
                    added += bytes;
                }
            }
            previous = cursor;
        }
        agencies.bytes += added;
        agencies.evict_down_to(self.budget);
    }

    /// Bytes counted for what is held now.
    #[cfg(test)]
    pub fn held_bytes(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .bytes
    }
}

impl Agencies {
    /// Forgets whole agencies, least recently read first, until at most three quarters of
    /// `budget` is held, so that eviction is not paid on every insert.
    fn evict_down_to(&mut self, budget: usize) {
        if self.bytes <= budget {
            return;
        }
        let target = budget / 4 * 3;
        let mut by_age: Vec<(u64, AgencyId)> = self
            .feeds
            .iter()
            .map(|(agency, feed)| (feed.last_used, agency.clone()))
            .collect();
        by_age.sort_unstable_by_key(|(used, _)| *used);
        for (_, agency) in by_age {
            if self.bytes <= target {
                break;
            }
            if let Some(feed) = self.feeds.remove(&agency) {
                self.bytes -= feed.bytes;
            }
        }
        // One agency alone over the budget: drop its oldest entries, which readers page past.
        for feed in self.feeds.values_mut() {
            while self.bytes > target {
                let Some((_, cached)) = feed.entries.pop_first() else {
                    break;
                };
                feed.bytes -= cached.bytes;
                self.bytes -= cached.bytes;
            }
        }
        self.feeds.retain(|_, feed| !feed.entries.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agency(name: &str) -> AgencyId {
        AgencyId::parse(name).unwrap()
    }

    fn event(cursor: u64) -> FeedItem {
        FeedItem {
            cursor,
            event: EncodedFeedEvent::encode(&tsunagu_proto::v1::FeedEvent {
                cursor,
                event_id: format!("event-{cursor:04}"),
                ..tsunagu_proto::v1::FeedEvent::default()
            }),
        }
    }

    fn events(cursors: &[u64]) -> Vec<FeedItem> {
        cursors.iter().map(|&cursor| event(cursor)).collect()
    }

    fn cursors(page: Option<Vec<FeedItem>>) -> Option<Vec<u64>> {
        page.map(|events| events.iter().map(|e| e.cursor).collect())
    }

    #[test]
    fn a_page_read_once_is_served_again_and_to_no_other_agency() {
        let cache = FeedCache::new(1 << 20);
        let nursery = agency("nursery");
        cache.remember(&nursery, 0, &events(&[3, 7, 9]));
        assert_eq!(cache.page(&nursery, 0, 3), Some(events(&[3, 7, 9])));
        assert_eq!(cursors(cache.page(&nursery, 3, 2)), Some(vec![7, 9]));
        assert_eq!(cursors(cache.page(&nursery, 5, 2)), Some(vec![7, 9]));
        assert_eq!(cache.page(&agency("hospital"), 0, 3), None);
    }

    #[test]
    fn a_page_reaching_past_what_was_read_goes_to_the_database() {
        let cache = FeedCache::new(1 << 20);
        let nursery = agency("nursery");
        cache.remember(&nursery, 0, &events(&[3, 7, 9]));
        // Entries after 9 may have been committed since.
        assert_eq!(cache.page(&nursery, 7, 2), None);
        assert_eq!(cache.page(&nursery, 9, 1), None);
    }

    #[test]
    fn a_gap_never_read_is_not_skipped() {
        let cache = FeedCache::new(1 << 20);
        let nursery = agency("nursery");
        cache.remember(&nursery, 0, &events(&[3, 7]));
        // Read after 20: says nothing of (7, 20], where entries may exist.
        cache.remember(&nursery, 20, &events(&[21, 22]));
        assert_eq!(cache.page(&nursery, 3, 2), None);
        assert_eq!(cursors(cache.page(&nursery, 20, 2)), Some(vec![21, 22]));
        // Once (7, 21] is read, the chain is whole.
        cache.remember(&nursery, 7, &events(&[21]));
        assert_eq!(
            cursors(cache.page(&nursery, 0, 4)),
            Some(vec![3, 7, 21, 22])
        );
    }

    #[test]
    fn memory_stays_within_the_budget_forgetting_the_least_recently_read() {
        let one = event(1).event.0.len() + ENTRY_OVERHEAD;
        let cache = FeedCache::new(one * 10);
        let (old, new) = (agency("old"), agency("new"));
        cache.remember(&old, 0, &events(&[1, 2, 3, 4, 5, 6]));
        cache.remember(&new, 0, &events(&[1, 2, 3]));
        assert!(cache.page(&new, 0, 3).is_some());
        cache.remember(&new, 3, &events(&[4, 5, 6]));
        assert!(cache.held_bytes() <= one * 10);
        assert_eq!(
            cache.page(&old, 0, 1),
            None,
            "the older reader is forgotten"
        );
        assert_eq!(
            cursors(cache.page(&new, 0, 6)),
            Some(vec![1, 2, 3, 4, 5, 6])
        );
    }

    #[test]
    fn a_zero_budget_keeps_nothing() {
        let cache = FeedCache::new(0);
        let nursery = agency("nursery");
        cache.remember(&nursery, 0, &events(&[1]));
        assert_eq!(cache.page(&nursery, 0, 1), None);
        assert_eq!(cache.held_bytes(), 0);
    }
}

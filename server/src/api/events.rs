//! EventService: each agency's own feed, read by cursor or streamed live, and acknowledged.

use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};
use tsunagu_proto::served::event_service_server::EventService;
use tsunagu_proto::served::{EncodedFeedEvent, ListEventsPage};
use tsunagu_proto::v1 as pb;

use super::feed_cache::FeedItem;
use super::{Hub, convert};
use crate::casework::audit::AuditTarget;
use crate::casework::feed;
use crate::domain::AgencyId;
use crate::error::Error;
use crate::identity::caller;
use crate::store::Locking;

/// How many entries a subscription reads from the store at a time.
const SUBSCRIBE_PAGE: u32 = 500;
/// How many feed entries a read from the database fetches at least, for the cache.
const FEED_READ_AHEAD: u32 = 1000;
/// A subscriber looks at the store at least this often even without a signal, so that entries
/// written by another hub instance on the same database arrive too.
const SUBSCRIBE_POLL: Duration = Duration::from_secs(1);

impl Hub {
    /// A page of `agency`'s feed after `after`: from memory when all of it is there, else from
    /// the database, reading ahead and remembering what it read.
    async fn feed_page(
        &self,
        agency: &AgencyId,
        after: u64,
        limit: u32,
    ) -> Result<Vec<FeedItem>, Error> {
        if let Some(page) = self.feed_cache.page(agency, after, limit as usize) {
            return Ok(page);
        }
        // Read ahead: a reader paging on, or a window sliding by a few entries, then finds the
        // next pages in memory. At the feed's tail there is nothing more to read.
        let mut page: Vec<FeedItem> = self
            .store
            .feed_page(agency, after, limit.max(FEED_READ_AHEAD))
            .await?
            .iter()
            .map(|(event, about)| FeedItem {
                cursor: event.cursor,
                event: EncodedFeedEvent::encode(&convert::feed_event(event, about.as_ref())),
            })
            .collect();
        self.feed_cache.remember(agency, after, &page);
        page.truncate(limit as usize);
        Ok(page)
    }
}

type FeedStream = Pin<Box<dyn Stream<Item = Result<EncodedFeedEvent, Status>> + Send>>;

#[tonic::async_trait]
impl EventService for Hub {
    async fn list_events(
        &self,
        request: Request<pb::ListEventsRequest>,
    ) -> Result<Response<ListEventsPage>, Status> {
        let caller = caller(&request)?.agency.clone();
        let agency = &caller.id;
        let query = request.get_ref();
        let audit = self.audit(&caller, "EventService/ListEvents");
        let result = async {
            let limit = convert::limit("limit", query.limit, 100, 1000)?;
            // No snapshot is shared: committed feed entries never change, and the cursor is
            // only ever moved forward.
            let events = self.feed_page(agency, query.after_cursor, limit).await?;
            let acknowledged_cursor = self.store.feed_acknowledged(agency).await?;
            // A read of the caller's own feed: one record per call, none per event.
            audit.read(self, &AuditTarget::default()).await?;
            Ok(ListEventsPage {
                last_cursor: events.last().map_or(query.after_cursor, |e| e.cursor),
                events: events.into_iter().map(|item| item.event).collect(),
                acknowledged_cursor,
            })
        }
        .await;
        audit.finish(self, result).await
    }

    type SubscribeStream = FeedStream;

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let caller = caller(&request)?.agency.clone();
        let agency = caller.id.clone();
        let query = request.get_ref();
        let audit = self.audit(&caller, "EventService/Subscribe");
        let start = async {
            let cursor = if query.from_acknowledged {
                if query.after_cursor != 0 {
                    return Err(Error::invalid(
                        "after_cursor",
                        "must be 0 when from_acknowledged is set",
                    ));
                }
                self.store.feed_acknowledged(&agency).await?
            } else {
                query.after_cursor
            };
            // A read of the caller's own feed: one record when the subscription starts.
            audit.read(self, &AuditTarget::default()).await?;
            Ok(cursor)
        }
        .await;
        let mut cursor = match start {
            Ok(cursor) => cursor,
            Err(error) => return audit.finish(self, Err(error)).await,
        };
        let (sender, receiver) = mpsc::channel(64);
        let hub = self.clone();
        let mut waker = self.store.feed_signals().subscribe(&agency);
        let mut stopping = self.stopping.subscribe();
        tokio::spawn(async move {
            let _open =
                crate::telemetry::GaugeGuard::new(crate::telemetry::names::OPEN_SUBSCRIPTIONS);
            loop {
                if *stopping.borrow_and_update() {
                    let _ = sender
                        .send(Err(Status::unavailable(
                            "the hub is shutting down; subscribe again from your acknowledged \
                             cursor",
                        )))
                        .await;
                    return;
                }
                // Mark wake-ups seen before reading, so a commit after the read wakes the
                // wait below.
                waker.mark_seen();
                let page = match hub.feed_page(&agency, cursor, SUBSCRIBE_PAGE).await {
                    Ok(page) => page,
                    Err(error) => {
                        let _ = sender.send(Err(Status::from(error))).await;
                        return;
                    }
                };
                if page.is_empty() {
                    tokio::select! {
                        () = waker.changed() => {}
                        () = tokio::time::sleep(SUBSCRIBE_POLL) => {}
                        () = sender.closed() => return,
                        _ = stopping.changed() => {}
                    }
                    continue;
                }
                let waiting = u32::try_from(page.len()).unwrap_or(u32::MAX);
                metrics::histogram!(crate::telemetry::names::FEED_LAG).record(f64::from(waiting));
                for item in page {
                    cursor = item.cursor;
                    if sender.send(Ok(item.event)).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(receiver),
        )))
    }

    async fn ack_events(
        &self,
        request: Request<pb::AckEventsRequest>,
    ) -> Result<Response<pb::AckEventsResponse>, Status> {
        let caller = caller(&request)?.agency.clone();
        let agency = &caller.id;
        let cursor = request.get_ref().cursor;
        let audit = self.audit(&caller, "EventService/AckEvents");
        let result = async {
            let now = self.clock.now();
            // Reads only committed cursors, and the acknowledgement only ever moves forward
            // (one statement), so this need not wait for other writes.
            let (agency, written) = (agency.clone(), audit.clone());
            self.store
                .write(Locking::Narrow, move |tx| {
                    Box::pin(async move {
                        let acknowledged_cursor =
                            feed::acknowledge(tx, &agency, cursor, now).await?;
                        written.write(tx, &AuditTarget::default(), now).await?;
                        Ok(pb::AckEventsResponse {
                            acknowledged_cursor,
                        })
                    })
                })
                .await
        }
        .await;
        audit.finish(self, result).await
    }
}

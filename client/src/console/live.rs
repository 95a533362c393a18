//! Live updates: one subscription to this agency's feed for the whole console, passed on to
//! every open page as Server-Sent Events. An event carries ids and its kind only; a page that
//! hears one reads itself again from the console.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use serde::Serialize;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tsunagu_proto::v1::{FeedEvent, ListEventsRequest, SubscribeRequest};

use super::state::AppState;
use crate::render::Coded;

/// What a page is told about one feed event.
#[derive(Clone, Debug, Serialize)]
pub struct LiveEvent {
    pub kind: &'static str,
    pub case_id: String,
    pub referral_id: String,
}

impl From<&FeedEvent> for LiveEvent {
    fn from(event: &FeedEvent) -> Self {
        LiveEvent {
            kind: event.kind().code(),
            case_id: event.case_id.clone(),
            referral_id: event.referral_id.clone(),
        }
    }
}

/// `GET /live`: the feed's events from now on, as Server-Sent Events.
pub async fn events(
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = BroadcastStream::new(state.live().subscribe()).filter_map(|event| async move {
        let event = match event {
            Ok(event) => event,
            // A page that fell behind only needs to know that something changed.
            Err(_) => LiveEvent {
                kind: "lagged",
                case_id: String::new(),
                referral_id: String::new(),
            },
        };
        let data = serde_json::to_string(&event).ok()?;
        Some(Ok(Event::default().event("feed").data(data)))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// Follows the agency's feed from its current end for as long as the console runs, and
/// starts again after the hub went away. Events before the console started are not passed on:
/// the pages read the current state when they open.
pub async fn follow(state: AppState) {
    let mut after: Option<u64> = None;
    loop {
        match follow_once(&state, &mut after).await {
            Ok(()) => tracing::debug!("the feed subscription ended; subscribing again"),
            Err(error) => tracing::warn!(error = %error, "the feed subscription failed; retrying"),
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

async fn follow_once(state: &AppState, after: &mut Option<u64>) -> Result<(), crate::ClientError> {
    let hub = state.hub();
    let start = match *after {
        Some(cursor) => cursor,
        None => {
            let end = feed_end(state).await?;
            *after = Some(end);
            end
        }
    };
    let mut stream = hub
        .events()
        .subscribe(SubscribeRequest {
            after_cursor: start,
            from_acknowledged: false,
        })
        .await
        .map_err(|status| hub.call_error(status))?
        .into_inner();
    while let Some(event) = stream.next().await {
        let event = event.map_err(|status| hub.call_error(status))?;
        *after = Some(event.cursor);
        notify(state.live(), &event);
    }
    Ok(())
}

/// The cursor of the feed's last event: read forward from the acknowledged cursor.
async fn feed_end(state: &AppState) -> Result<u64, crate::ClientError> {
    const PAGE: u32 = 1000;
    let hub = state.hub();
    let first = hub
        .events()
        .list_events(ListEventsRequest {
            after_cursor: 0,
            limit: 1,
        })
        .await
        .map_err(|status| hub.call_error(status))?
        .into_inner();
    let mut cursor = first.acknowledged_cursor.max(first.last_cursor);
    loop {
        let page = hub
            .events()
            .list_events(ListEventsRequest {
                after_cursor: cursor,
                limit: PAGE,
            })
            .await
            .map_err(|status| hub.call_error(status))?
            .into_inner();
        cursor = page.last_cursor.max(cursor);
        if page.events.len() < PAGE as usize {
            return Ok(cursor);
        }
    }
}

fn notify(live: &broadcast::Sender<LiveEvent>, event: &FeedEvent) {
    // No page open is not an error.
    let _ = live.send(LiveEvent::from(event));
}

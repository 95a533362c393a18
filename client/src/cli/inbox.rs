//! `tsunagu inbox`: the referrals the agency received (or sent), and `--watch`, which follows the
//! agency's event feed live and acknowledges each event once it is printed.

use std::time::Duration;

use clap::Args;
use tokio::sync::watch;
use tsunagu_client::{ClientError, Hub};
use tsunagu_proto::v1::{
    AckEventsRequest, ListReferralsRequest, ReferralDirection, SubscribeRequest,
};

use super::Context;
use super::common::{CallExt, open_sealed, resolve_case_id};
use super::tables::{feed_line, referrals_table_with_bodies};
use super::views::{FeedEventView, ReferralView};

pub const EXAMPLES: &str = "\
Examples:
  # What has been referred to you and is still open
  tsunagu --as aoba-hospital inbox

  # What you sent, or both directions, including confirmed, cancelled and declined ones
  tsunagu --as aoba-kodomo inbox --sent
  tsunagu --as aoba-kodomo inbox --all --include-closed
  tsunagu --as aoba-kodomo inbox --all --case 3f8a51c0 --json

  # Follow your event feed live from the last acknowledged cursor (Ctrl-C stops); each event
  # is acknowledged once printed, so the next --watch resumes after it
  tsunagu --as aoba-hospital inbox --watch
  tsunagu --as aoba-hospital inbox --watch --json     # one JSON object per line

IDs are shown by their last 8 characters; every command that takes a case or referral id
accepts them that short.";

#[derive(Debug, Args)]
pub struct InboxArgs {
    /// Referrals you sent instead of those you received
    #[arg(long, conflicts_with = "all")]
    pub sent: bool,

    /// Referrals you sent and received
    #[arg(long)]
    pub all: bool,

    /// Include confirmed, cancelled and declined referrals
    #[arg(long)]
    pub include_closed: bool,

    /// Only referrals about this case (id or its last 8 characters)
    #[arg(long = "case", value_name = "CASE_ID")]
    pub case_id: Option<String>,

    /// Follow your event feed live instead of listing: one line per event, each acknowledged
    /// once printed; Ctrl-C stops
    #[arg(long, conflicts_with_all = ["sent", "all", "include_closed", "case_id"])]
    pub watch: bool,
}

impl InboxArgs {
    pub fn direction(&self) -> ReferralDirection {
        if self.all {
            ReferralDirection::All
        } else if self.sent {
            ReferralDirection::Sent
        } else {
            ReferralDirection::Received
        }
    }
}

pub async fn run(ctx: &Context, args: InboxArgs) -> anyhow::Result<()> {
    if args.watch {
        return watch(ctx).await;
    }
    let hub = ctx.connect().await?;
    let case_id = match &args.case_id {
        Some(id) => resolve_case_id(&hub, id).await?,
        None => String::new(),
    };
    let mut referrals = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = hub
            .referrals()
            .list_referrals(ListReferralsRequest {
                direction: args.direction().into(),
                case_id: case_id.clone(),
                include_closed: args.include_closed,
                limit: 500,
                page_token: page_token.clone(),
            })
            .await
            .answer(&hub)?;
        referrals.extend(page.referrals);
        if page.next_page_token.is_empty() || page.next_page_token == page_token {
            break;
        }
        page_token = page.next_page_token;
    }
    if ctx.json() {
        let views: Vec<ReferralView> = referrals
            .iter()
            .map(|r| {
                let mut view = ReferralView::from(r);
                view.body = open_sealed(ctx, r.body.as_ref()).view(false);
                view
            })
            .collect();
        return ctx.print_json(&views);
    }
    if referrals.is_empty() {
        eprintln!(
            "no {}referrals{}",
            if args.include_closed { "" } else { "open " },
            match args.direction() {
                ReferralDirection::Sent => " sent",
                ReferralDirection::All => "",
                _ => " received",
            }
        );
        return Ok(());
    }
    let table =
        referrals_table_with_bodies(&referrals, |r| open_sealed(ctx, r.body.as_ref()).status());
    ctx.print(&table.to_string())
}

/// Whether following the feed may resume after this error (the hub went away or restarted).
fn resumable(error: &ClientError) -> bool {
    match error {
        ClientError::Connect { .. } => true,
        ClientError::Rpc(status) => matches!(
            status.code(),
            tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
        ),
        _ => false,
    }
}

/// Turns true once Ctrl-C is pressed (listened for once, so no press between two waits is lost).
fn stop_signal() -> watch::Receiver<bool> {
    let (sender, receiver) = watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = sender.send(true);
        }
    });
    receiver
}

/// Completes once Ctrl-C was pressed.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|pressed| *pressed).await.is_err() {
        // The listener could not be installed: never stop on a signal.
        std::future::pending::<()>().await;
    }
}

/// Waits `delay`, or returns false at once when Ctrl-C is pressed.
async fn pause(delay: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        () = stopped(stop) => false,
    }
}

/// Follows the feed from the acknowledged cursor, printing and acknowledging each event, and
/// resubscribing after the last processed cursor when the stream breaks. At-least-once: an event
/// seen again after a reconnect (same or lower cursor) is skipped.
async fn watch(ctx: &Context) -> anyhow::Result<()> {
    let hub = ctx.connect().await?;
    if !ctx.json() {
        eprintln!(
            "following the event feed at {} from the acknowledged cursor (Ctrl-C stops)",
            hub.endpoint()
        );
    }
    let mut stop = stop_signal();
    let mut last: Option<u64> = None;
    let mut delay = Duration::from_secs(1);
    loop {
        match follow(ctx, &hub, &mut last, &mut stop).await? {
            Followed::Stopped => return Ok(()),
            Followed::Ended => {
                eprintln!("the hub closed the feed; resubscribing");
                delay = Duration::from_secs(1);
            }
            Followed::Broken(error) => {
                eprintln!(
                    "the feed broke ({error}); resubscribing in {}s",
                    delay.as_secs()
                );
            }
        }
        if !pause(delay, &mut stop).await {
            return Ok(());
        }
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

enum Followed {
    /// Ctrl-C.
    Stopped,
    /// The hub ended the stream.
    Ended,
    /// A failure worth retrying.
    Broken(ClientError),
}

async fn follow(
    ctx: &Context,
    hub: &Hub,
    last: &mut Option<u64>,
    stop: &mut watch::Receiver<bool>,
) -> anyhow::Result<Followed> {
    let request = match *last {
        Some(cursor) => SubscribeRequest {
            after_cursor: cursor,
            from_acknowledged: false,
        },
        None => SubscribeRequest {
            after_cursor: 0,
            from_acknowledged: true,
        },
    };
    let mut events = hub.events();
    let subscribed = tokio::select! {
        answer = events.subscribe(request) => answer,
        () = stopped(stop) => return Ok(Followed::Stopped),
    };
    let mut stream = match subscribed.answer(hub) {
        Ok(stream) => stream,
        Err(error) if resumable(&error) => return Ok(Followed::Broken(error)),
        Err(error) => return Err(error.into()),
    };
    loop {
        let next = tokio::select! {
            next = stream.message() => next,
            () = stopped(stop) => return Ok(Followed::Stopped),
        };
        let event = match next {
            Ok(Some(event)) => event,
            Ok(None) => return Ok(Followed::Ended),
            Err(status) => {
                let error = hub.call_error(status);
                if resumable(&error) {
                    return Ok(Followed::Broken(error));
                }
                return Err(error.into());
            }
        };
        if last.is_some_and(|cursor| event.cursor <= cursor) {
            continue;
        }
        if ctx.json() {
            let mut line = serde_json::to_string(&FeedEventView::from(&event))?;
            line.push('\n');
            ctx.print(&line)?;
        } else {
            ctx.print(&format!("{}\n", feed_line(&event)))?;
        }
        hub.events()
            .ack_events(AckEventsRequest {
                cursor: event.cursor,
            })
            .await
            .answer(hub)?;
        *last = Some(event.cursor);
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn parse(extra: &[&str]) -> Result<InboxArgs, clap::Error> {
        let mut argv = vec!["tsunagu", "inbox"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv)?.command {
            Command::Inbox(args) => Ok(args),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn the_inbox_lists_received_referrals_by_default() {
        assert_eq!(parse(&[]).unwrap().direction(), ReferralDirection::Received);
        assert_eq!(
            parse(&["--sent"]).unwrap().direction(),
            ReferralDirection::Sent
        );
        assert_eq!(
            parse(&["--all"]).unwrap().direction(),
            ReferralDirection::All
        );
    }

    #[test]
    fn sent_and_all_cannot_be_combined() {
        assert!(parse(&["--sent", "--all"]).is_err());
    }

    #[test]
    fn watching_takes_no_listing_filters() {
        assert!(parse(&["--watch"]).unwrap().watch);
        assert!(parse(&["--watch", "--sent"]).is_err());
        assert!(parse(&["--watch", "--include-closed"]).is_err());
    }

    #[test]
    fn a_lost_connection_is_resumable_and_a_refusal_is_not() {
        assert!(resumable(&ClientError::Connect {
            endpoint: "https://127.0.0.1:7443".into(),
            detail: "connection reset".into(),
        }));
        assert!(resumable(&ClientError::Rpc(tonic::Status::unavailable(
            "restarting"
        ))));
        assert!(!resumable(&ClientError::Rpc(
            tonic::Status::permission_denied("suspended")
        )));
    }
}

//! `tsunagu events`: the agency's event feed by cursor, and `events ack` to record the cursor
//! processed.

use clap::{Args, Subcommand};
use serde::Serialize;
use tsunagu_proto::v1::{AckEventsRequest, ListEventsRequest};

use super::Context;
use super::common::CallExt;
use super::tables::feed_table;
use super::views::FeedEventView;

pub const EXAMPLES: &str = "\
Examples:
  # Your feed from the beginning, 100 events at a time, then the next page
  tsunagu --as aoba-hospital events
  tsunagu --as aoba-hospital events --after 100 --limit 50

  # Only what you have not acknowledged yet, and acknowledging everything up to cursor 12
  tsunagu --as aoba-hospital events --new
  tsunagu --as aoba-hospital events ack 12

  tsunagu --as aoba-hospital events --json

To follow the feed live, use `tsunagu inbox --watch`.";

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct EventsArgs {
    #[command(subcommand)]
    pub command: Option<EventsCommand>,

    /// Events after this cursor [default: 0, the beginning]
    #[arg(long, value_name = "CURSOR", conflicts_with = "new")]
    pub after: Option<u64>,

    /// Only events after the cursor you last acknowledged
    #[arg(long)]
    pub new: bool,

    /// At most this many events (1 to 1000)
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Record that everything up to and including CURSOR has been processed
    #[command(after_help = EXAMPLES)]
    Ack(AckArgs),
}

#[derive(Debug, Args)]
pub struct AckArgs {
    /// The cursor of the last event processed
    #[arg(value_name = "CURSOR")]
    pub cursor: u64,
}

#[derive(Debug, Serialize)]
struct EventsView {
    events: Vec<FeedEventView>,
    last_cursor: u64,
    acknowledged_cursor: u64,
}

pub async fn run(ctx: &Context, args: EventsArgs) -> anyhow::Result<()> {
    let hub = ctx.connect().await?;
    if let Some(EventsCommand::Ack(ack)) = args.command {
        let acknowledged = hub
            .events()
            .ack_events(AckEventsRequest { cursor: ack.cursor })
            .await
            .answer(&hub)?
            .acknowledged_cursor;
        if ctx.json() {
            return ctx.print_json(&serde_json::json!({ "acknowledged_cursor": acknowledged }));
        }
        return ctx.print(&format!(
            "acknowledged the feed up to cursor {acknowledged}\n"
        ));
    }

    let after = if args.new {
        hub.events()
            .list_events(ListEventsRequest {
                after_cursor: 0,
                limit: 1,
            })
            .await
            .answer(&hub)?
            .acknowledged_cursor
    } else {
        args.after.unwrap_or(0)
    };
    let page = hub
        .events()
        .list_events(ListEventsRequest {
            after_cursor: after,
            limit: args.limit,
        })
        .await
        .answer(&hub)?;
    if ctx.json() {
        return ctx.print_json(&EventsView {
            events: page.events.iter().map(FeedEventView::from).collect(),
            last_cursor: page.last_cursor,
            acknowledged_cursor: page.acknowledged_cursor,
        });
    }
    let mut out = String::new();
    if page.events.is_empty() {
        eprintln!("no events after cursor {after}");
    } else {
        out.push_str(&feed_table(&page.events).to_string());
    }
    out.push_str(&format!(
        "last cursor: {}   acknowledged: {}{}\n",
        page.last_cursor,
        page.acknowledged_cursor,
        if page.events.len() == args.limit as usize {
            format!("   (more: --after {})", page.last_cursor)
        } else {
            String::new()
        }
    ));
    ctx.print(&out)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn parse(extra: &[&str]) -> Result<EventsArgs, clap::Error> {
        let mut argv = vec!["tsunagu", "events"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv)?.command {
            Command::Events(args) => Ok(args),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn events_lists_from_a_cursor_or_acknowledges_one() {
        let list = parse(&["--after", "5", "--limit", "10"]).unwrap();
        assert_eq!((list.after, list.limit), (Some(5), 10));
        assert!(list.command.is_none());
        let ack = parse(&["ack", "12"]).unwrap();
        assert!(matches!(
            ack.command,
            Some(EventsCommand::Ack(AckArgs { cursor: 12 }))
        ));
    }

    #[test]
    fn the_event_limit_stays_within_the_contract() {
        assert!(parse(&["--limit", "0"]).is_err());
        assert!(parse(&["--limit", "1001"]).is_err());
        assert!(parse(&["--after", "3", "--new"]).is_err());
    }
}

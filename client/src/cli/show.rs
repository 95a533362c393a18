//! `tsunagu show`: one referral with its three layers, deadlines, overdue timers and timeline.

use std::path::PathBuf;

use anyhow::{anyhow, bail};
use clap::Args;
use serde::Serialize;
use tsunagu_client::render::{
    KeyValues, deadline_term, deadline_term_label, format_optional_japan_time, label,
    purpose_label, short_id,
};
use tsunagu_proto::v1::{
    GetReferralRequest, LegalBasisKind, NotConnectedReason, Referral, TimerKind,
};

use super::Context;
use super::common::{
    CallExt, NOT_READABLE, Opened, open_sealed, resolve_referral_id, revealed_text, write_output,
};
use super::tables::{HIDDEN, connection_cell, response_cell, timeline_table};
use super::views::{ReferralEventView, ReferralView};

pub const EXAMPLES: &str = "\
Examples:
  # One referral: its three layers, deadlines, overdue timers and timeline
  tsunagu --as aoba-hospital show c59dce82

  # Also print the body and notes you can open, or write the opened body to a file / stdout
  tsunagu --as aoba-hospital show c59dce82 --reveal
  tsunagu --as aoba-hospital show c59dce82 --body-out referral.txt
  tsunagu --as aoba-hospital show c59dce82 --body-out - | less

  tsunagu --as aoba-kodomo show c59dce82 --json";

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The referral id (or its last 8 characters, as the tables show)
    #[arg(value_name = "REFERRAL_ID")]
    pub referral_id: String,

    /// Print the content of the body and notes your agency can open (otherwise only whether
    /// they are readable)
    #[arg(long)]
    pub reveal: bool,

    /// Write the opened body to FILE (`-` for stdout, which then carries only the body)
    #[arg(long, value_name = "FILE")]
    pub body_out: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct ShowView {
    referral: ReferralView,
    events: Vec<ReferralEventView>,
}

/// The deadline line of one timer: the time, and "OVERDUE" when it passed unmet.
fn deadline_line(referral: &Referral, timer: TimerKind) -> String {
    let deadlines = referral.deadlines.unwrap_or_default();
    let at = match timer {
        TimerKind::DeliverBy => deadlines.deliver_by,
        TimerKind::RespondBy => deadlines.respond_by,
        TimerKind::ConnectBy => deadlines.connect_by,
        TimerKind::ConfirmBy => deadlines.confirm_by,
        TimerKind::Unspecified => None,
    };
    let mut line = format!("{} JST", format_optional_japan_time(at.as_ref()));
    let term = deadline_term(referral.deadline_terms.as_ref(), timer);
    if let Some(term) = deadline_term_label(term.as_ref()) {
        line.push_str(&format!("  [{term}]"));
    }
    if referral.overdue().any(|t| t == timer) {
        line.push_str("  OVERDUE (期限超過)");
    }
    line
}

/// The referral as `key: value` lines for people.
pub fn referral_details(referral: &Referral, body_status: &str) -> KeyValues {
    let mut list = KeyValues::new();
    let from = if referral.from_agency.is_empty() {
        HIDDEN.to_owned()
    } else if referral.sender_attested {
        // age does not authenticate senders; the hub vouches for the mTLS identity that sent it.
        format!(
            "{} (attested by the hub from its certificate)",
            referral.from_agency
        )
    } else {
        referral.from_agency.clone()
    };
    let mut basis = label(referral.basis());
    if referral.basis() == LegalBasisKind::Consent && !referral.consent_id.is_empty() {
        basis.push_str(&format!(", consent {}", referral.consent_id));
    }
    if referral.consent_withdrawn {
        basis.push_str(" — consent since withdrawn (同意撤回)");
    }
    list.entry("referral", &referral.referral_id)
        .entry("case", &referral.case_id)
        .entry("from", from)
        .entry("to", &referral.to_agency)
        .entry("purpose", purpose_label(&referral.purpose))
        .entry("urgency", label(referral.urgency()))
        .entry("basis", basis)
        .entry(
            "sent",
            format!(
                "{} JST",
                format_optional_japan_time(referral.sent_at.as_ref())
            ),
        )
        .entry(
            "delivery",
            format!(
                "{}  {}",
                label(referral.delivery()),
                format_optional_japan_time(referral.delivered_at.as_ref())
            ),
        )
        .entry(
            "response",
            format!(
                "{}  {}",
                response_cell(referral),
                format_optional_japan_time(referral.responded_at.as_ref())
            ),
        )
        .entry(
            "connection",
            format!(
                "{}  {}",
                connection_cell(referral),
                format_optional_japan_time(referral.connection_updated_at.as_ref())
            ),
        );
    if referral.not_connected_reason() == NotConnectedReason::ReferredElsewhere
        || !referral.linked_referral_id.is_empty()
    {
        list.entry("referred on to", &referral.linked_referral_id);
    }
    match &referral.confirmed_at {
        Some(at) => list.entry(
            "confirmed",
            format!(
                "{} JST by {}",
                format_optional_japan_time(Some(at)),
                referral.confirmed_by
            ),
        ),
        None => list.entry("confirmed", "not yet (未確認)"),
    };
    if let Some(closed) = &referral.closed_with_reason {
        let text = if closed.reason_text.is_empty() {
            String::new()
        } else {
            format!(" 「{}」", closed.reason_text)
        };
        list.entry(
            "next step",
            format!(
                "理由を記録して終結 (closed with reason): {}{text}, {} JST by {}",
                closed.reason_code,
                format_optional_japan_time(closed.closed_at.as_ref()),
                closed.closed_by
            ),
        );
    } else if referral.next_step_needed {
        list.entry(
            "next step",
            "次の支援が必要 (needed): refer again, or `tsunagu close <REFERRAL_ID> --reason …`",
        );
    }
    for timer in [
        TimerKind::DeliverBy,
        TimerKind::RespondBy,
        TimerKind::ConnectBy,
        TimerKind::ConfirmBy,
    ] {
        list.entry(label(timer), deadline_line(referral, timer));
    }
    list.entry("body", body_status);
    list
}

pub async fn run(ctx: &Context, args: ShowArgs) -> anyhow::Result<()> {
    let hub = ctx.connect().await?;
    let referral_id = resolve_referral_id(&hub, &args.referral_id).await?;
    let answer = hub
        .referrals()
        .get_referral(GetReferralRequest { referral_id })
        .await
        .answer(&hub)?;
    let referral = answer
        .referral
        .ok_or_else(|| anyhow!("the hub answered without the referral"))?;
    let body = open_sealed(ctx, referral.body.as_ref());

    if let Some(path) = &args.body_out {
        match &body {
            Opened::Readable(plaintext) => write_output(path, plaintext)?,
            Opened::Absent => bail!("referral {} has no body", referral.referral_id),
            Opened::Unreadable { .. } => bail!(
                "the body of referral {} is not readable by this agency: it was not sealed to \
                 your age key",
                referral.referral_id
            ),
        }
        if path.as_os_str() == "-" {
            return Ok(());
        }
        eprintln!("wrote the opened body to {}", path.display());
    }

    if ctx.json() {
        let mut view = ReferralView::from(&referral);
        view.body = body.view(args.reveal);
        let events = answer
            .events
            .iter()
            .map(|event| {
                let mut v = ReferralEventView::from(event);
                v.note = open_sealed(ctx, event.note.as_ref()).view(args.reveal);
                v.reason_detail = open_sealed(ctx, event.reason_detail.as_ref()).view(args.reveal);
                v
            })
            .collect();
        return ctx.print_json(&ShowView {
            referral: view,
            events,
        });
    }

    let mut out = referral_details(&referral, &body.status()).to_string();
    if args.reveal
        && let Opened::Readable(plaintext) = &body
    {
        out.push_str(&revealed_text(plaintext, "  "));
    }
    out.push_str(&format!("\nTimeline ({} events)\n", answer.events.len()));
    let table = timeline_table(&answer.events, |event| {
        open_sealed(ctx, event.note.as_ref()).status()
    });
    out.push_str(&table.to_string());
    if args.reveal {
        for event in &answer.events {
            match open_sealed(ctx, event.note.as_ref()) {
                Opened::Readable(plaintext) => out.push_str(&format!(
                    "note with {} ({}):\n{}",
                    label(event.action()),
                    short_id(&event.event_id),
                    revealed_text(&plaintext, "  ")
                )),
                Opened::Unreadable { .. } => out.push_str(&format!(
                    "note with {}: {NOT_READABLE}\n",
                    label(event.action())
                )),
                Opened::Absent => {}
            }
            match open_sealed(ctx, event.reason_detail.as_ref()) {
                Opened::Readable(plaintext) => out.push_str(&format!(
                    "reason detail (理由の詳細) with {} ({}):\n{}",
                    label(event.action()),
                    short_id(&event.event_id),
                    revealed_text(&plaintext, "  ")
                )),
                Opened::Unreadable { .. } => out.push_str(&format!(
                    "reason detail (理由の詳細) with {}: {NOT_READABLE}\n",
                    label(event.action())
                )),
                Opened::Absent => {}
            }
        }
    }
    ctx.print(&out)
}

#[cfg(test)]
mod tests {
    use prost_types::Timestamp;
    use tsunagu_proto::v1::{ConnectionState, Deadlines, ResponseState};

    use super::*;

    #[test]
    fn an_overdue_timer_is_marked_next_to_its_deadline() {
        let referral = Referral {
            referral_id: "r".into(),
            response: ResponseState::Accepted.into(),
            connection: ConnectionState::NotConnected.into(),
            deadlines: Some(Deadlines {
                confirm_by: Some(Timestamp {
                    seconds: 1_743_467_400,
                    nanos: 0,
                }),
                ..Deadlines::default()
            }),
            overdue: vec![TimerKind::ConfirmBy.into()],
            ..Referral::default()
        };
        let text = referral_details(&referral, "-").to_string();
        let line = |key: &str| {
            text.lines()
                .find(|l| l.starts_with(key))
                .unwrap_or_default()
                .to_owned()
        };
        assert!(
            line("confirm_by").ends_with(" 2025-04-01 09:30 JST  OVERDUE (期限超過)"),
            "{text}"
        );
        assert!(line("respond_by").ends_with(" - JST"), "{text}");
        assert!(text.contains("confirmed:"), "{text}");
        assert!(text.contains("from:"), "{text}");
        assert!(text.contains("(hidden)"), "{text}");
    }
}

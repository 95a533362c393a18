//! `tsunagu ack`, `cancel`, `confirm` and `close`: moving one layer of a referral, or recording
//! the next step after a confirmed "did not connect" (RecordReferralAction).

use std::path::PathBuf;

use anyhow::{anyhow, bail};
use clap::{Args, ValueEnum};
use prost_types::Timestamp;
use serde::Serialize;
use tsunagu_client::Hub;
use tsunagu_client::render::{label, short_id};
use tsunagu_proto::v1::{
    GetReferralRequest, NotConnectedReason, RecordReferralActionRequest,
    RecordReferralActionResponse, ReferralAction,
};

use super::Context;
use super::common::{
    CallExt, NotConnectedArg, WriteArgs, get_case, parse_code, parse_rfc3339, read_payload,
    resolve_referral_id, seal_for,
};
use super::tables::{connection_cell, from_to, response_cell};
use super::views::{ReferralEventView, ReferralView};

pub const ACK_EXAMPLES: &str = "\
Examples (the recipient's side):
  # The hospital's system received the referral, then the hospital accepts it
  tsunagu --as aoba-hospital ack c59dce82 delivered
  tsunagu --as aoba-hospital ack c59dce82 accept

  # … or declines it, with a reason code and a sealed note for the sender
  tsunagu --as aoba-hospital ack c59dce82 decline --reason no_capacity \\
      --note-text '今月は満床です。来月であれば受入可能。'

  # Work on it, and report whether the family actually connected (つながったか)
  tsunagu --as aoba-hospital ack c59dce82 start
  tsunagu --as aoba-hiroba ack 30774df9 contact-attempted --note-text '電話 2回 不在'
  tsunagu --as aoba-hospital ack c59dce82 connected
  tsunagu --as aoba-hiroba ack 30774df9 not-connected --not-connected-reason could-not-contact
  tsunagu --as aoba-hiroba ack 30774df9 not-connected \\
      --not-connected-reason referred-elsewhere --linked-referral <NEW_REFERRAL_ID>
  tsunagu --as aoba-hospital ack c59dce82 complete

The sender (or the municipality's coordinator) then closes the handoff with `tsunagu confirm`.";

pub const CANCEL_EXAMPLES: &str = "\
Examples (the sender's side):
  tsunagu --as aoba-kodomo cancel c59dce82 --reason family_moved
  tsunagu --as aoba-kodomo cancel c59dce82 --reason duplicate --note-text '重複して送信したため'";

pub const CONFIRM_EXAMPLES: &str = "\
Examples (the sender or the municipality's coordinator):
  # Confirm the reported outcome (connected or not connected); this closes the handoff
  tsunagu --as aoba-kodomo confirm c59dce82
  tsunagu --as aoba-kodomo confirm 30774df9 --note-text '母に電話で確認済み'";

pub const CLOSE_EXAMPLES: &str = "\
After a confirmed \"did not connect\" (つながらなかった), the family stays on your and the
coordinator's worklists (followups: 次の支援が必要) until a next step is recorded: refer the
family again (`tsunagu refer`), or close its need with a reason (理由を記録して終結).

Examples (the sender or the municipality's coordinator):
  tsunagu --as aoba-kodomo close 30774df9 --reason moved-out
  tsunagu --as aoba-kodomo close 30774df9 --reason no-further-support-needed \\
      --reason-text '母子ともに経過良好' --note-text '4月の訪問で確認。詳細は記録のとおり。'

Reasons: no-further-support-needed (これ以上の支援は不要), family-declined-all-support
(家族がすべての支援を辞退), moved-out (市区町村外へ転出), supported-otherwise (ネットワーク外の
支援を利用). --reason-text is stored in the clear (200 characters at most, never a name);
details belong in the sealed --note-text.";

/// Why a family's need is closed after a confirmed "did not connect".
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CloseReasonArg {
    /// The family needs no further support (これ以上の支援は不要)
    NoFurtherSupportNeeded,
    /// The family declined every support offered (家族がすべての支援を辞退)
    FamilyDeclinedAllSupport,
    /// The family moved out of the municipality (市区町村外へ転出)
    MovedOut,
    /// The family is supported outside this network (ネットワーク外の支援を利用)
    SupportedOtherwise,
}

impl CloseReasonArg {
    /// The code the hub takes.
    pub fn code(self) -> &'static str {
        match self {
            Self::NoFurtherSupportNeeded => "no_further_support_needed",
            Self::FamilyDeclinedAllSupport => "family_declined_all_support",
            Self::MovedOut => "moved_out",
            Self::SupportedOtherwise => "supported_otherwise",
        }
    }
}

#[derive(Debug, Args)]
pub struct CloseArgs {
    /// The referral id (or its last 8 characters, as the tables show)
    #[arg(value_name = "REFERRAL_ID")]
    pub referral_id: String,

    /// Why the family's need is closed
    #[arg(long, value_enum, value_name = "REASON")]
    pub reason: CloseReasonArg,

    /// A short note to the reason, stored in the clear: at most 200 characters, never a name
    #[arg(long, value_name = "TEXT")]
    pub reason_text: Option<String>,

    #[command(flatten)]
    pub note: NoteArgs,

    #[command(flatten)]
    pub write: WriteArgs,
}

/// What the recipient reports with `ack`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AckVerb {
    /// Your system received the referral (delivery: sent → delivered)
    Delivered,
    /// You take the referral on (requested → accepted)
    Accept,
    /// You cannot take it on (requested → declined; needs --reason)
    Decline,
    /// Work has started (accepted → in_progress)
    Start,
    /// Work is done (in_progress → completed)
    Complete,
    /// It did not work out (accepted or in_progress → failed; needs --reason)
    Fail,
    /// You tried to reach the family (repeatable)
    ContactAttempted,
    /// The family connected with your service (つながった)
    Connected,
    /// The family did not connect (needs --not-connected-reason)
    NotConnected,
}

impl From<AckVerb> for ReferralAction {
    fn from(verb: AckVerb) -> Self {
        match verb {
            AckVerb::Delivered => ReferralAction::AcknowledgeDelivery,
            AckVerb::Accept => ReferralAction::Accept,
            AckVerb::Decline => ReferralAction::Decline,
            AckVerb::Start => ReferralAction::Start,
            AckVerb::Complete => ReferralAction::Complete,
            AckVerb::Fail => ReferralAction::Fail,
            AckVerb::ContactAttempted => ReferralAction::RecordContactAttempt,
            AckVerb::Connected => ReferralAction::ReportConnected,
            AckVerb::NotConnected => ReferralAction::ReportNotConnected,
        }
    }
}

/// An optional sealed note about an action, and when the action happened.
#[derive(Clone, Debug, Default, Args)]
pub struct NoteArgs {
    /// A note about the action as text, sealed to you and the other party
    #[arg(long, value_name = "TEXT", conflicts_with = "note_file")]
    pub note_text: Option<String>,

    /// A note about the action from a file (`-` reads stdin), sealed to you and the other party
    #[arg(long, value_name = "FILE")]
    pub note_file: Option<PathBuf>,

    /// A detail of the reason (decline, fail, cancel, not-connected, close) for the law's
    /// review, sealed to both parties, you and the municipality's coordinator
    #[arg(long, value_name = "TEXT")]
    pub sealed_detail: Option<String>,

    /// When it happened, RFC 3339 [default: now]
    #[arg(long, value_name = "TIME", value_parser = parse_rfc3339)]
    pub occurred_at: Option<Timestamp>,
}

#[derive(Debug, Args)]
pub struct AckArgs {
    /// The referral id (or its last 8 characters, as the tables show)
    #[arg(value_name = "REFERRAL_ID")]
    pub referral_id: String,

    /// What to report
    #[arg(value_enum, value_name = "ACTION")]
    pub verb: AckVerb,

    /// Short reason code for decline and fail, for example no_capacity (details go in the note)
    #[arg(long = "reason", value_name = "CODE", value_parser = parse_code)]
    pub reason: Option<String>,

    /// Why the family did not connect (with not-connected)
    #[arg(long, value_enum, value_name = "REASON")]
    pub not_connected_reason: Option<NotConnectedArg>,

    /// The new referral the family was passed on to (with --not-connected-reason referred-elsewhere)
    #[arg(long, value_name = "REFERRAL_ID")]
    pub linked_referral: Option<String>,

    #[command(flatten)]
    pub note: NoteArgs,

    #[command(flatten)]
    pub write: WriteArgs,
}

#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The referral id (or its last 8 characters, as the tables show)
    #[arg(value_name = "REFERRAL_ID")]
    pub referral_id: String,

    /// Short reason code, for example family_moved (details go in the note)
    #[arg(long = "reason", value_name = "CODE", value_parser = parse_code)]
    pub reason: String,

    #[command(flatten)]
    pub note: NoteArgs,

    #[command(flatten)]
    pub write: WriteArgs,
}

#[derive(Debug, Args)]
pub struct ConfirmArgs {
    /// The referral id (or its last 8 characters, as the tables show)
    #[arg(value_name = "REFERRAL_ID")]
    pub referral_id: String,

    #[command(flatten)]
    pub note: NoteArgs,

    #[command(flatten)]
    pub write: WriteArgs,
}

/// The action request of `ack`, checked for the fields the action needs (no note, no id lookup).
pub fn ack_request(args: &AckArgs) -> anyhow::Result<RecordReferralActionRequest> {
    let action = ReferralAction::from(args.verb);
    let needs_reason = matches!(args.verb, AckVerb::Decline | AckVerb::Fail);
    if needs_reason && args.reason.is_none() {
        bail!(
            "`ack … {}` needs --reason <CODE>, for example no_capacity",
            verb_name(args.verb)
        );
    }
    let not_connected = args.not_connected_reason.map(NotConnectedReason::from);
    match (args.verb, not_connected) {
        (AckVerb::NotConnected, None) => bail!(
            "`ack … not-connected` needs --not-connected-reason: could-not-contact, \
             declined-by-family, not-eligible, no-capacity, moved or referred-elsewhere"
        ),
        (AckVerb::NotConnected, _) => {}
        (_, Some(_)) => bail!("--not-connected-reason only goes with `not-connected`"),
        (_, None) => {}
    }
    let referred_elsewhere = not_connected == Some(NotConnectedReason::ReferredElsewhere);
    match (&args.linked_referral, referred_elsewhere) {
        (None, true) => bail!(
            "--not-connected-reason referred-elsewhere needs --linked-referral <REFERRAL_ID> \
             (send the new referral first)"
        ),
        (Some(_), false) => {
            bail!("--linked-referral only goes with --not-connected-reason referred-elsewhere")
        }
        _ => {}
    }
    Ok(RecordReferralActionRequest {
        referral_id: args.referral_id.clone(),
        action: action.into(),
        reason_code: args.reason.clone().unwrap_or_default(),
        not_connected_reason: not_connected.unwrap_or_default().into(),
        linked_referral_id: args.linked_referral.clone().unwrap_or_default(),
        note: None,
        staff: Some(args.write.staff()),
        occurred_at: args.note.occurred_at,
        idempotency_key: args.write.idempotency_key(),
        ..RecordReferralActionRequest::default()
    })
}

fn verb_name(verb: AckVerb) -> String {
    verb.to_possible_value()
        .map_or_else(String::new, |v| v.get_name().to_owned())
}

/// Sends an action: resolves the referral id, seals the note (if any) to every active key of
/// both parties of the referral that the caller may see, of the caller's agency and, for a case
/// registered with 要対協, of the coordinator, and records it.
/// With `retry_key` (an explicit `--idempotency-key`), the sealed note is kept for a retry.
pub async fn record(
    ctx: &Context,
    hub: &Hub,
    mut request: RecordReferralActionRequest,
    note: Option<Vec<u8>>,
    detail: Option<&str>,
    retry_key: Option<&str>,
) -> anyhow::Result<RecordReferralActionResponse> {
    request.referral_id = resolve_referral_id(hub, &request.referral_id).await?;
    if note.is_some() || detail.is_some() {
        let referral = hub
            .referrals()
            .get_referral(GetReferralRequest {
                referral_id: request.referral_id.clone(),
            })
            .await
            .answer(hub)?
            .referral
            .ok_or_else(|| anyhow!("the hub answered without the referral"))?;
        let parties: Vec<&str> = [referral.from_agency.as_str(), referral.to_agency.as_str()]
            .into_iter()
            .filter(|agency| !agency.is_empty())
            .collect();
        let case = get_case(hub, &referral.case_id).await?;
        let mut sealer = ctx.sealer(hub)?;
        if let Some(plaintext) = note {
            request.note = Some(
                seal_for(
                    ctx,
                    &mut sealer,
                    &plaintext,
                    &parties,
                    Some(&case),
                    retry_key,
                )
                .await?,
            );
        }
        if let Some(detail) = detail {
            // The coordinator reviews reasons, so the detail is sealed to it even for a case
            // not registered with the 要対協.
            let coordinators = sealer.coordinators(&case.municipality).await?;
            let mut readers = parties.clone();
            readers.extend(coordinators.iter().map(String::as_str));
            let retry_key = retry_key.map(|key| format!("{key}#reason_detail"));
            request.reason_detail = Some(
                seal_for(
                    ctx,
                    &mut sealer,
                    detail.as_bytes(),
                    &readers,
                    Some(&case),
                    retry_key.as_deref(),
                )
                .await?,
            );
        }
    }
    Ok(hub
        .referrals()
        .record_referral_action(request)
        .await
        .answer(hub)?)
}

#[derive(Debug, Serialize)]
struct ActionView {
    referral: Option<ReferralView>,
    event: Option<ReferralEventView>,
}

/// Prints the outcome of an action: a short confirmation, or the JSON of the result.
pub fn print_outcome(
    ctx: &Context,
    action: ReferralAction,
    answer: &RecordReferralActionResponse,
) -> anyhow::Result<()> {
    if ctx.json() {
        return ctx.print_json(&ActionView {
            referral: answer.referral.as_ref().map(ReferralView::from),
            event: answer.event.as_ref().map(ReferralEventView::from),
        });
    }
    let referral = answer
        .referral
        .as_ref()
        .ok_or_else(|| anyhow!("the hub answered without the referral"))?;
    ctx.print(&format!(
        "referral {} ({}): {} recorded\n  now {} · {} · {}\n",
        short_id(&referral.referral_id),
        from_to(referral),
        label(action),
        label(referral.delivery()),
        response_cell(referral),
        connection_cell(referral),
    ))
}

async fn run_action(
    ctx: &Context,
    request: RecordReferralActionRequest,
    note: &NoteArgs,
    write: &WriteArgs,
) -> anyhow::Result<()> {
    let note_payload = read_payload(note.note_file.as_deref(), note.note_text.as_deref())?;
    let action = request.action();
    let hub = ctx.connect().await?;
    let answer = record(
        ctx,
        &hub,
        request,
        note_payload,
        note.sealed_detail.as_deref(),
        write.idempotency_key.as_deref(),
    )
    .await?;
    print_outcome(ctx, action, &answer)
}

pub async fn run_ack(ctx: &Context, args: AckArgs) -> anyhow::Result<()> {
    let request = ack_request(&args)?;
    run_action(ctx, request, &args.note, &args.write).await
}

pub async fn run_cancel(ctx: &Context, args: CancelArgs) -> anyhow::Result<()> {
    let request = RecordReferralActionRequest {
        referral_id: args.referral_id.clone(),
        action: ReferralAction::Cancel.into(),
        reason_code: args.reason.clone(),
        staff: Some(args.write.staff()),
        occurred_at: args.note.occurred_at,
        idempotency_key: args.write.idempotency_key(),
        ..RecordReferralActionRequest::default()
    };
    run_action(ctx, request, &args.note, &args.write).await
}

pub async fn run_confirm(ctx: &Context, args: ConfirmArgs) -> anyhow::Result<()> {
    let request = RecordReferralActionRequest {
        referral_id: args.referral_id.clone(),
        action: ReferralAction::Confirm.into(),
        staff: Some(args.write.staff()),
        occurred_at: args.note.occurred_at,
        idempotency_key: args.write.idempotency_key(),
        ..RecordReferralActionRequest::default()
    };
    run_action(ctx, request, &args.note, &args.write).await
}

pub async fn run_close(ctx: &Context, args: CloseArgs) -> anyhow::Result<()> {
    let request = close_request(&args);
    run_action(ctx, request, &args.note, &args.write).await
}

/// The action request of `close`.
pub fn close_request(args: &CloseArgs) -> RecordReferralActionRequest {
    RecordReferralActionRequest {
        referral_id: args.referral_id.clone(),
        action: ReferralAction::CloseWithReason.into(),
        reason_code: args.reason.code().to_owned(),
        reason_text: args.reason_text.clone().unwrap_or_default(),
        staff: Some(args.write.staff()),
        occurred_at: args.note.occurred_at,
        idempotency_key: args.write.idempotency_key(),
        ..RecordReferralActionRequest::default()
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn ack(extra: &[&str]) -> anyhow::Result<RecordReferralActionRequest> {
        let mut argv = vec!["tsunagu", "ack", "0190f3a2"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv)?.command {
            Command::Ack(args) => ack_request(&args),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn each_ack_word_maps_to_its_contract_action() {
        let cases = [
            ("delivered", ReferralAction::AcknowledgeDelivery),
            ("accept", ReferralAction::Accept),
            ("start", ReferralAction::Start),
            ("complete", ReferralAction::Complete),
            ("contact-attempted", ReferralAction::RecordContactAttempt),
            ("connected", ReferralAction::ReportConnected),
        ];
        for (word, action) in cases {
            assert_eq!(ack(&[word]).unwrap().action(), action, "{word}");
        }
    }

    #[test]
    fn decline_and_fail_need_a_reason_code() {
        assert!(ack(&["decline"]).is_err());
        assert!(ack(&["fail"]).is_err());
        let request = ack(&["decline", "--reason", "no-capacity"]).unwrap();
        assert_eq!(request.action(), ReferralAction::Decline);
        assert_eq!(request.reason_code, "no_capacity");
    }

    #[test]
    fn not_connected_needs_its_reason_and_only_it_takes_one() {
        assert!(ack(&["not-connected"]).is_err());
        let request = ack(&[
            "not-connected",
            "--not-connected-reason",
            "could-not-contact",
        ])
        .unwrap();
        assert_eq!(request.action(), ReferralAction::ReportNotConnected);
        assert_eq!(
            request.not_connected_reason(),
            NotConnectedReason::CouldNotContact
        );
        assert!(ack(&["connected", "--not-connected-reason", "moved"]).is_err());
    }

    #[test]
    fn referred_elsewhere_needs_the_linked_referral() {
        assert!(
            ack(&[
                "not-connected",
                "--not-connected-reason",
                "referred-elsewhere"
            ])
            .is_err()
        );
        let request = ack(&[
            "not-connected",
            "--not-connected-reason",
            "referred-elsewhere",
            "--linked-referral",
            "0190f3c4-0000-7000-8000-000000000003",
        ])
        .unwrap();
        assert_eq!(
            request.linked_referral_id,
            "0190f3c4-0000-7000-8000-000000000003"
        );
        assert!(ack(&["accept", "--linked-referral", "x"]).is_err());
    }

    #[test]
    fn an_unknown_ack_word_is_a_usage_error() {
        assert!(ack(&["received"]).is_err());
    }

    #[test]
    fn close_needs_one_of_the_close_reasons_and_takes_a_short_text() {
        assert!(Cli::try_parse_from(["tsunagu", "close", "0190f3a2"]).is_err());
        assert!(
            Cli::try_parse_from(["tsunagu", "close", "0190f3a2", "--reason", "family_moved"])
                .is_err()
        );
        let cli = Cli::try_parse_from([
            "tsunagu",
            "close",
            "0190f3a2",
            "--reason",
            "moved-out",
            "--reason-text",
            "転出先へ連絡済み",
        ])
        .unwrap();
        let Command::Close(args) = cli.command else {
            panic!("parsed as {:?}", cli.command);
        };
        let request = close_request(&args);
        assert_eq!(request.action(), ReferralAction::CloseWithReason);
        assert_eq!(request.reason_code, "moved_out");
        assert_eq!(request.reason_text, "転出先へ連絡済み");
    }

    #[test]
    fn cancel_requires_a_reason() {
        assert!(Cli::try_parse_from(["tsunagu", "cancel", "0190f3a2"]).is_err());
        assert!(
            Cli::try_parse_from(["tsunagu", "cancel", "0190f3a2", "--reason", "family_moved"])
                .is_ok()
        );
    }

    #[test]
    fn every_write_carries_a_fresh_idempotency_key_unless_one_is_given() {
        let first = ack(&["accept"]).unwrap().idempotency_key;
        let second = ack(&["accept"]).unwrap().idempotency_key;
        assert_ne!(first, second);
        assert!(uuid::Uuid::parse_str(&first).is_ok());
        let fixed = ack(&["accept", "--idempotency-key", "retry-1"]).unwrap();
        assert_eq!(fixed.idempotency_key, "retry-1");
    }
}

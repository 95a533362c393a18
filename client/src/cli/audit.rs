//! `tsunagu audit`: the audit records the hub lets this agency see (its own calls, calls about the
//! cases it takes part in, and for a coordinator its municipality's), and `audit head` to keep a
//! copy of the hash chain's head.

use clap::{Args, Subcommand};
use prost_types::Timestamp;
use serde::Serialize;
use tsunagu_client::audit_head::HeadWatch;
use tsunagu_client::render::{Table, format_japan_time, label, short_id};
use tsunagu_proto::v1::{AuditRecord, GetAuditHeadRequest, ListAuditRecordsRequest};

use super::Context;
use super::common::{CallExt, parse_municipality, parse_rfc3339, resolve_case_id};
use super::views::{StaffView, code, text, time};

pub const EXAMPLES: &str = "\
Examples:
  # Who read or changed what: your own calls and those on your cases, oldest first
  tsunagu --as aoba-kodomo audit

  # One case, within a time range, as JSON
  tsunagu --as aoba-kodomo audit --case 1a2b3c4d --since 2026-04-01T00:00:00+09:00 --json

  # A coordinator: the municipality's records, the next page after record 1200
  tsunagu --as aoba-kodomo audit --municipality 141178 --after 1200

  # Keep the chain's head, to compare with later (a rewritten history shows up)
  tsunagu --as aoba-kodomo audit head

  # After the operator explained a rollback or a new signing key (a development hub whose
  # ./data was wiped has a new one): forget the pinned hub, the next command pins it afresh
  tsunagu --as aoba-kodomo audit forget-hub";

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: Option<AuditCommand>,

    /// Only records about this case (full id, or the short id the tables show)
    #[arg(long = "case", value_name = "CASE_ID")]
    pub case_id: Option<String>,

    /// Only records about this municipality's cases (6-digit code, for example 141178)
    #[arg(long, value_name = "CODE", value_parser = parse_municipality)]
    pub municipality: Option<String>,

    /// Only records from this time on (RFC 3339, for example 2026-04-01T00:00:00+09:00)
    #[arg(long, value_name = "TIME", value_parser = parse_rfc3339)]
    pub since: Option<Timestamp>,

    /// Only records before this time (RFC 3339)
    #[arg(long, value_name = "TIME", value_parser = parse_rfc3339)]
    pub until: Option<Timestamp>,

    /// Only records after this sequence number (the next page)
    #[arg(long, value_name = "SEQ", default_value_t = 0)]
    pub after: u64,

    /// At most this many records (1 to 1000)
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// The hash chain's head (sequence number and hash), to keep and compare later. Every
    /// command already checks the hub's signed head against the newest this profile saw.
    Head,

    /// Forget the hub's audit signing key and newest head this profile pinned (after showing
    /// them), so the next command pins the hub afresh. Only once the operator has explained a
    /// rollback or a new key: a development hub whose ./data was wiped has a new key
    #[command(name = "forget-hub")]
    ForgetHub,
}

/// One audit record, as `--json` prints it.
#[derive(Debug, Serialize)]
struct AuditRecordView {
    sequence: u64,
    at: Option<String>,
    /// Null when hidden from you (the reporter of an abuse notification).
    agency_id: Option<String>,
    agency_hidden: bool,
    staff: Option<StaffView>,
    action: String,
    municipality: Option<String>,
    case_id: Option<String>,
    referral_id: Option<String>,
    note_id: Option<String>,
    consent_id: Option<String>,
    basis: Option<&'static str>,
    /// "ok", or the gRPC code of the refusal, for example "PERMISSION_DENIED".
    outcome: String,
    hash: Option<String>,
}

impl From<&AuditRecord> for AuditRecordView {
    fn from(record: &AuditRecord) -> Self {
        AuditRecordView {
            sequence: record.sequence,
            at: time(record.at.as_ref()),
            agency_id: text(&record.agency_id),
            agency_hidden: record.agency_hidden,
            staff: StaffView::of(record.staff.as_ref()),
            action: record.action.clone(),
            municipality: text(&record.municipality),
            case_id: text(&record.case_id),
            referral_id: text(&record.referral_id),
            note_id: text(&record.note_id),
            consent_id: text(&record.consent_id),
            basis: code(record.basis()),
            outcome: record.outcome.clone(),
            hash: text(&record.hash),
        }
    }
}

/// `audit forget-hub`: never connects (the hub is what this profile refuses).
fn forget_hub(ctx: &Context) -> anyhow::Result<()> {
    let credentials = ctx.credentials()?;
    let path = HeadWatch::path_for(&credentials.known_keys);
    let forgotten = HeadWatch::forget(&path)?;
    if ctx.json() {
        return ctx.print_json(&serde_json::json!({
            "file": path.display().to_string(),
            "forgotten": forgotten.as_ref().map(|head| serde_json::json!({
                "signing_key": head.signing_key,
                "first_seen": head.first_seen,
                "sequence": head.sequence,
                "hash": head.hash,
                "seen_at": head.seen_at,
            })),
        }));
    }
    let Some(head) = forgotten else {
        return ctx.print(&format!(
            "this profile has pinned no hub ({} does not exist); nothing to forget\n",
            path.display()
        ));
    };
    ctx.print(&format!(
        "forgot the hub this profile pinned (ハブの監査署名鍵の記憶を消しました):\n  \
         audit signing key  {}  (pinned {})\n  \
         newest head seen   record {} ({}…), {}\n  \
         file removed       {}\n\
         The next command pins the key the hub signs with now: compare it with what the hub's \
         operator reads from `tsunagu-hub audit head`.\n",
        head.signing_key,
        head.first_seen,
        head.sequence,
        &head.hash[..head.hash.len().min(16)],
        head.seen_at,
        path.display()
    ))
}

pub async fn run(ctx: &Context, args: AuditArgs) -> anyhow::Result<()> {
    if let Some(AuditCommand::ForgetHub) = args.command {
        return forget_hub(ctx);
    }
    let hub = ctx.connect().await?;
    if let Some(AuditCommand::Head) = args.command {
        // `connect` has checked this head against the one remembered, and remembered it.
        let head = hub
            .audit()
            .get_audit_head(GetAuditHeadRequest::default())
            .await
            .answer(&hub)?;
        if ctx.json() {
            return ctx.print_json(&serde_json::json!({
                "sequence": head.sequence,
                "hash": head.hash,
                "signing_key": head.signing_key,
            }));
        }
        eprintln!(
            "signed by the hub's audit key {} (pinned by this profile)",
            head.signing_key
        );
        return ctx.print(&format!("{}:{}\n", head.sequence, head.hash));
    }

    let case_id = match &args.case_id {
        Some(text) => resolve_case_id(&hub, text).await?,
        None => String::new(),
    };
    let records = hub
        .audit()
        .list_audit_records(ListAuditRecordsRequest {
            case_id,
            municipality: args.municipality.unwrap_or_default(),
            from: args.since,
            until: args.until,
            after_sequence: args.after,
            limit: args.limit,
        })
        .await
        .answer(&hub)?
        .records;
    if ctx.json() {
        let views: Vec<AuditRecordView> = records.iter().map(AuditRecordView::from).collect();
        return ctx.print_json(&views);
    }
    if records.is_empty() {
        eprintln!("no audit records match");
        return Ok(());
    }
    let mut out = audit_table(&records).to_string();
    if records.len() == args.limit as usize
        && let Some(last) = records.last()
    {
        out.push_str(&format!("(more: --after {})\n", last.sequence));
    }
    ctx.print(&out)
}

/// The records as a table for people, times in Japan.
fn audit_table(records: &[AuditRecord]) -> Table {
    let mut table = Table::new([
        "SEQ",
        "TIME (JST)",
        "AGENCY",
        "STAFF",
        "ACTION",
        "CASE",
        "REFERRAL/NOTE",
        "BASIS",
        "OUTCOME",
    ]);
    for record in records {
        let agency = if record.agency_hidden {
            "(hidden)".to_owned()
        } else {
            record.agency_id.clone()
        };
        let staff = record
            .staff
            .as_ref()
            .map_or_else(|| "-".to_owned(), |s| format!("{} ({})", s.name, s.role));
        // "ReferralService/SendReferral" reads as "SendReferral" in a table; --json has it all.
        let action = record
            .action
            .rsplit_once('/')
            .map_or(record.action.as_str(), |(_, method)| method);
        let about = if !record.referral_id.is_empty() {
            format!("referral {}", short_id(&record.referral_id))
        } else if !record.note_id.is_empty() {
            format!("note {}", short_id(&record.note_id))
        } else if !record.consent_id.is_empty() {
            format!("consent {}", short_id(&record.consent_id))
        } else {
            "-".to_owned()
        };
        table.row([
            record.sequence.to_string(),
            record
                .at
                .as_ref()
                .map_or_else(|| "-".to_owned(), format_japan_time),
            agency,
            staff,
            action.to_owned(),
            short_id(&record.case_id).to_owned(),
            about,
            label(record.basis()),
            record.outcome.clone(),
        ]);
    }
    table
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use tsunagu_proto::v1::{LegalBasisKind, Staff};

    use super::*;
    use crate::cli::{Cli, Command};

    fn parse(extra: &[&str]) -> Result<AuditArgs, clap::Error> {
        let mut argv = vec!["tsunagu", "audit"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv)?.command {
            Command::Audit(args) => Ok(args),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn audit_takes_a_case_a_municipality_and_a_time_range() {
        let args = parse(&[
            "--case",
            "1a2b3c4d",
            "--municipality",
            "141178",
            "--since",
            "2026-04-01T00:00:00+09:00",
            "--until",
            "2026-05-01T00:00:00+09:00",
        ])
        .unwrap();
        assert_eq!(args.case_id.as_deref(), Some("1a2b3c4d"));
        assert_eq!(args.municipality.as_deref(), Some("141178"));
        let since = args.since.unwrap();
        assert_eq!(
            since.seconds, 1_774_969_200,
            "midnight in Japan is 15:00 UTC"
        );
        assert!(args.until.unwrap().seconds > since.seconds);
        assert!(args.command.is_none());
    }

    #[test]
    fn audit_refuses_a_malformed_time_or_municipality() {
        assert!(parse(&["--since", "yesterday"]).is_err());
        assert!(parse(&["--municipality", "aoba"]).is_err());
        assert!(parse(&["--limit", "0"]).is_err());
    }

    #[test]
    fn audit_head_is_a_subcommand() {
        let args = parse(&["head"]).unwrap();
        assert!(matches!(args.command, Some(AuditCommand::Head)));
    }

    #[test]
    fn the_table_shows_a_hidden_reporter_as_hidden_and_refusals_by_code() {
        let records = vec![
            AuditRecord {
                sequence: 7,
                at: Some(Timestamp {
                    seconds: 1_775_000_000,
                    nanos: 0,
                }),
                agency_id: String::new(),
                agency_hidden: true,
                action: "ReferralService/SendReferral".to_owned(),
                case_id: "0190a8f4-0000-7000-8000-00000000abcd".to_owned(),
                referral_id: "0190a8f4-0000-7000-8000-00000000ef01".to_owned(),
                basis: LegalBasisKind::AbuseNotification as i32,
                outcome: "ok".to_owned(),
                ..AuditRecord::default()
            },
            AuditRecord {
                sequence: 8,
                agency_id: "chiyoda".to_owned(),
                staff: Some(Staff {
                    name: "山田".to_owned(),
                    role: "保健師".to_owned(),
                }),
                action: "CaseService/GetCase".to_owned(),
                outcome: "PERMISSION_DENIED".to_owned(),
                ..AuditRecord::default()
            },
        ];
        let text = audit_table(&records).to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("SEQ"), "{text}");
        assert!(lines[1].contains("(hidden)"), "{text}");
        assert!(lines[1].contains("SendReferral"), "{text}");
        assert!(lines[1].contains("referral 0000ef01"), "{text}");
        assert!(lines[1].contains("abuse_notification"), "{text}");
        assert!(lines[2].contains("chiyoda"), "{text}");
        assert!(lines[2].contains("PERMISSION_DENIED"), "{text}");
        let json = serde_json::to_value(AuditRecordView::from(&records[0])).unwrap();
        assert_eq!(json["agency_id"], serde_json::Value::Null);
        assert_eq!(json["agency_hidden"], true);
        assert_eq!(json["basis"], "abuse_notification");
    }
}

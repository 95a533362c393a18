//! `tsunagu case open|show|list`: cases (one family, child or pregnant person) and their threads.

use std::path::PathBuf;

use anyhow::anyhow;
use clap::{ArgGroup, Args, Subcommand};
use serde::Serialize;
use tsunagu_client::render::{KeyValues, format_optional_japan_time, label, short_id};
use tsunagu_proto::v1::thread_entry::Entry;
use tsunagu_proto::v1::{
    CaseCategory, CaseStage, DecisionOutcome, GetCaseThreadRequest, OpenCaseRequest,
};

use super::Context;
use super::common::{
    CallExt, CategoryArg, Opened, StageArg, WriteArgs, list_all_cases, open_sealed, parse_agency,
    parse_municipality, read_payload, resolve_case_id, revealed_text, seal_for,
};
use super::tables::{
    HIDDEN, actor_cell, cases_table, event_summary, participants_table, staff_cell,
};
use super::views::{CaseView, NoteView, ReferralEventView};

pub const EXAMPLES: &str = "\
Examples:
  # Open a 特定妊婦 case in 青葉区 (141178); the header (name, birth date, address) is sealed
  tsunagu --as aoba-kodomo case open --municipality 141178 \\
      --category specific-expectant-mother --stage pregnancy \\
      --header-text '氏名: 青葉 花子 (架空) / 出産予定日: 2026-06-01'

  # The header from a file, or from stdin with --header-file -
  tsunagu --as aoba-kodomo case open --municipality 141178 --category requires-support \\
      --stage infancy --header-file header.txt
  printf '氏名: …' | tsunagu --as aoba-kodomo case open --municipality 141178 \\
      --category general --stage postnatal --header-file -

  # The cases you take part in, and one case with its participants and thread
  tsunagu --as aoba-kodomo case list --municipality 141178
  tsunagu --as aoba-kodomo case show 3f8a51c0
  tsunagu --as aoba-kodomo case show 3f8a51c0 --reveal     # also print the notes you can open
  tsunagu --as aoba-kodomo case list --json";

#[derive(Debug, Args)]
pub struct CaseArgs {
    #[command(subcommand)]
    pub command: CaseCommand,
}

#[derive(Debug, Subcommand)]
pub enum CaseCommand {
    /// Open a case in a municipality you serve, with a sealed header
    #[command(after_help = EXAMPLES)]
    Open(OpenArgs),

    /// Show a case: its participants and its thread (referral events and notes)
    #[command(after_help = EXAMPLES)]
    Show(ShowArgs),

    /// List the cases you take part in (a coordinator: every case of its municipality)
    #[command(after_help = EXAMPLES)]
    List(ListArgs),
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("header").required(true).args(["header_file", "header_text"])))]
pub struct OpenArgs {
    /// Municipality code (6-digit 全国地方公共団体コード), for example 141178
    #[arg(long, value_name = "CODE", value_parser = parse_municipality)]
    pub municipality: String,

    /// Case category (ケース種別)
    #[arg(long, value_enum)]
    pub category: CategoryArg,

    /// Life stage of the family (支援の段階)
    #[arg(long, value_enum)]
    pub stage: StageArg,

    /// The case header (names, birth dates, address) from a file; `-` reads stdin. Sealed before
    /// it leaves this machine
    #[arg(long, value_name = "FILE")]
    pub header_file: Option<PathBuf>,

    /// The case header as text. Sealed before it leaves this machine
    #[arg(long, value_name = "TEXT")]
    pub header_text: Option<String>,

    /// Also seal the header to every active age key of this agency (repeatable), for agencies
    /// you will share with; it is always sealed to your own agency's keys
    #[arg(long = "reader", value_name = "AGENCY", value_parser = parse_agency)]
    pub readers: Vec<String>,

    #[command(flatten)]
    pub write: WriteArgs,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The case id (or its last 8 characters, as the tables show)
    #[arg(value_name = "CASE_ID")]
    pub case_id: String,

    /// Print the content of the header and notes your agency can open (otherwise only whether
    /// they are readable)
    #[arg(long)]
    pub reveal: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only cases of this municipality code
    #[arg(long, value_name = "CODE", value_parser = parse_municipality)]
    pub municipality: Option<String>,
}

pub async fn run(ctx: &Context, args: CaseArgs) -> anyhow::Result<()> {
    match args.command {
        CaseCommand::Open(args) => open(ctx, args).await,
        CaseCommand::Show(args) => show(ctx, args).await,
        CaseCommand::List(args) => list(ctx, args).await,
    }
}

async fn open(ctx: &Context, args: OpenArgs) -> anyhow::Result<()> {
    let header = read_payload(args.header_file.as_deref(), args.header_text.as_deref())?
        .ok_or_else(|| anyhow!("give the case header with --header-text or --header-file"))?;
    let hub = ctx.connect().await?;
    let readers: Vec<&str> = args.readers.iter().map(String::as_str).collect();
    let mut sealer = ctx.sealer(&hub)?;
    let header = Some(
        seal_for(
            ctx,
            &mut sealer,
            &header,
            &readers,
            None,
            args.write.idempotency_key.as_deref(),
        )
        .await?,
    );
    let case = hub
        .cases()
        .open_case(OpenCaseRequest {
            municipality: args.municipality,
            category: CaseCategory::from(args.category).into(),
            stage: CaseStage::from(args.stage).into(),
            header,
            staff: Some(args.write.staff()),
            idempotency_key: args.write.idempotency_key(),
        })
        .await
        .answer(&hub)?
        .case
        .ok_or_else(|| anyhow!("the hub answered without the case"))?;
    if ctx.json() {
        return ctx.print_json(&CaseView::from(&case));
    }
    ctx.print(&format!(
        "opened case {} in {}: {}, {}{}\n",
        case.case_id,
        case.municipality,
        label(case.category()),
        label(case.stage()),
        if case.header.is_some() {
            ", header sealed"
        } else {
            ""
        }
    ))
}

/// One entry of a case thread, as `case show --json` prints it.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ThreadEntryView {
    ReferralEvent(ReferralEventView),
    Note(NoteView),
}

#[derive(Debug, Serialize)]
struct CaseThreadView {
    case: CaseView,
    entries: Vec<ThreadEntryView>,
}

async fn show(ctx: &Context, args: ShowArgs) -> anyhow::Result<()> {
    let hub = ctx.connect().await?;
    let case_id = resolve_case_id(&hub, &args.case_id).await?;
    let thread = hub
        .cases()
        .get_case_thread(GetCaseThreadRequest {
            case_id,
            since: None,
        })
        .await
        .answer(&hub)?;
    let case = thread
        .case
        .ok_or_else(|| anyhow!("the hub answered without the case"))?;
    let header = open_sealed(ctx, case.header.as_ref());

    if ctx.json() {
        let mut view = CaseView::from(&case);
        view.header = header.view(args.reveal);
        let entries = thread
            .entries
            .iter()
            .filter_map(|entry| match &entry.entry {
                Some(Entry::ReferralEvent(event)) => {
                    let mut v = ReferralEventView::from(event);
                    v.note = open_sealed(ctx, event.note.as_ref()).view(args.reveal);
                    Some(ThreadEntryView::ReferralEvent(v))
                }
                Some(Entry::Note(note)) => {
                    let mut v = NoteView::from(note);
                    v.body = open_sealed(ctx, note.body.as_ref()).view(args.reveal);
                    Some(ThreadEntryView::Note(v))
                }
                // 要対協 decisions, re-seals and transfers are not in the JSON view yet.
                Some(Entry::Decision(_) | Entry::Reseal(_) | Entry::Transfer(_)) | None => None,
            })
            .collect();
        return ctx.print_json(&CaseThreadView {
            case: view,
            entries,
        });
    }

    let mut out = String::new();
    let mut list = KeyValues::new();
    list.entry("case", &case.case_id)
        .entry("municipality", &case.municipality)
        .entry("category", label(case.category()))
        .entry("stage", label(case.stage()))
        .entry("opened by", &case.opened_by)
        .entry(
            "opened",
            format!(
                "{} JST",
                format_optional_japan_time(case.opened_at.as_ref())
            ),
        )
        .entry(
            "要対協",
            if case.council_registered {
                "registered (登録済)"
            } else {
                "not registered (未登録)"
            },
        )
        .entry("header", header.status());
    out.push_str(&list.to_string());
    if args.reveal
        && let Opened::Readable(text) = &header
    {
        out.push_str(&revealed_text(text, "  "));
    }

    out.push_str(&format!("\nParticipants ({})\n", case.participants.len()));
    out.push_str(&participants_table(&case.participants).to_string());

    out.push_str(&format!("\nThread ({} entries)\n", thread.entries.len()));
    let mut table = tsunagu_client::render::Table::new([
        "WHEN (JST)",
        "TYPE",
        "ID",
        "FROM",
        "STAFF",
        "WHAT",
        "CONTENT",
    ]);
    let mut revealed = String::new();
    for entry in &thread.entries {
        match &entry.entry {
            Some(Entry::ReferralEvent(event)) => {
                let note = open_sealed(ctx, event.note.as_ref());
                let when = event.occurred_at.as_ref().or(event.recorded_at.as_ref());
                table.row([
                    format_optional_japan_time(when),
                    "referral".to_owned(),
                    short_id(&event.referral_id).to_owned(),
                    actor_cell(event),
                    staff_cell(event.actor_staff.as_ref()),
                    event_summary(event),
                    note.status(),
                ]);
                if args.reveal
                    && let Opened::Readable(text) = &note
                {
                    revealed.push_str(&format!(
                        "note on referral {} by {}:\n{}",
                        short_id(&event.referral_id),
                        actor_cell(event),
                        revealed_text(text, "  ")
                    ));
                }
            }
            Some(Entry::Note(note)) => {
                let body = open_sealed(ctx, note.body.as_ref());
                let from = if note.from_agency.is_empty() {
                    HIDDEN.to_owned()
                } else {
                    note.from_agency.clone()
                };
                let to: Vec<String> = note
                    .recipients
                    .iter()
                    .map(|r| {
                        if r.acknowledged_at.is_some() {
                            format!("{} ✓", r.agency_id)
                        } else {
                            r.agency_id.clone()
                        }
                    })
                    .collect();
                table.row([
                    format_optional_japan_time(note.sent_at.as_ref()),
                    "note".to_owned(),
                    short_id(&note.note_id).to_owned(),
                    from.clone(),
                    staff_cell(note.staff.as_ref()),
                    format!(
                        "note (連絡) to {} [{}]",
                        tsunagu_client::render::join_or_dash(&to),
                        label(note.basis())
                    ),
                    body.status(),
                ]);
                if args.reveal
                    && let Opened::Readable(text) = &body
                {
                    revealed.push_str(&format!(
                        "note {} from {from}:\n{}",
                        short_id(&note.note_id),
                        revealed_text(text, "  ")
                    ));
                }
            }
            Some(Entry::Decision(decision)) => {
                let plan = open_sealed(ctx, decision.plan.as_ref());
                let outcome = match decision.outcome() {
                    DecisionOutcome::Continue => {
                        format!("継続 (next review {})", decision.next_review_on)
                    }
                    DecisionOutcome::Close => format!("終結: {}", decision.close_reason),
                    DecisionOutcome::Transfer => format!("移管 → {}", decision.transfer_to),
                    DecisionOutcome::Unspecified => "-".to_owned(),
                };
                table.row([
                    format_optional_japan_time(decision.decided_at.as_ref()),
                    "decision".to_owned(),
                    short_id(&decision.decision_id).to_owned(),
                    decision.decided_by.clone(),
                    staff_cell(decision.staff.as_ref()),
                    format!("要対協 {} {outcome}", decision.held_on),
                    plan.status(),
                ]);
            }
            Some(Entry::Reseal(record)) => {
                table.row([
                    format_optional_japan_time(record.resealed_at.as_ref()),
                    "reseal".to_owned(),
                    short_id(record.field.as_ref().map_or("", |f| f.id.as_str())).to_owned(),
                    record.resealed_by.clone(),
                    staff_cell(record.staff.as_ref()),
                    format!(
                        "再封緘: {} → +{}",
                        tsunagu_client::reseal::kind_label(record.field.as_ref().map(|f| f.kind())),
                        record.added_readers.join(", ")
                    ),
                    "-".to_owned(),
                ]);
            }
            Some(Entry::Transfer(transfer)) => {
                table.row([
                    format_optional_japan_time(transfer.at.as_ref()),
                    "transfer".to_owned(),
                    short_id(&transfer.transfer_id).to_owned(),
                    "-".to_owned(),
                    "-".to_owned(),
                    format!(
                        "移管 {} → {} {} (case {} → {})",
                        transfer.from_municipality,
                        transfer.to_municipality,
                        label(transfer.state()),
                        short_id(&transfer.sent_case_id),
                        if transfer.receiving_case_id.is_empty() {
                            "-"
                        } else {
                            short_id(&transfer.receiving_case_id)
                        }
                    ),
                    "-".to_owned(),
                ]);
            }
            None => {}
        }
    }
    if table.is_empty() {
        out.push_str("(no entries yet)\n");
    } else {
        out.push_str(&table.to_string());
    }
    if !revealed.is_empty() {
        out.push_str("\nContent you can open\n");
        out.push_str(&revealed);
    }
    ctx.print(&out)
}

async fn list(ctx: &Context, args: ListArgs) -> anyhow::Result<()> {
    let hub = ctx.connect().await?;
    let cases = list_all_cases(&hub, args.municipality.unwrap_or_default()).await?;
    if ctx.json() {
        let views: Vec<CaseView> = cases.iter().map(CaseView::from).collect();
        return ctx.print_json(&views);
    }
    if cases.is_empty() {
        eprintln!("no cases");
        return Ok(());
    }
    ctx.print(&cases_table(&cases).to_string())
}

#[cfg(test)]
mod tests {
    use crate::cli::{Cli, Command};
    use clap::Parser;
    use tsunagu_proto::v1::{CaseCategory, CaseStage};

    use super::*;

    #[test]
    fn case_open_turns_its_words_into_the_contract_enums() {
        let cli = Cli::try_parse_from([
            "tsunagu",
            "case",
            "open",
            "--municipality",
            "141178",
            "--category",
            "specific-expectant-mother",
            "--stage",
            "school-age",
            "--header-text",
            "x",
        ])
        .unwrap();
        let Command::Case(CaseArgs {
            command: CaseCommand::Open(open),
        }) = cli.command
        else {
            panic!("not case open");
        };
        assert_eq!(
            CaseCategory::from(open.category),
            CaseCategory::SpecificExpectantMother
        );
        assert_eq!(CaseStage::from(open.stage), CaseStage::SchoolAge);
        if std::env::var_os("TSUNAGU_STAFF_NAME").is_none() {
            assert_eq!(open.write.staff().name, "担当者");
        }
        if std::env::var_os("TSUNAGU_STAFF_ROLE").is_none() {
            assert_eq!(open.write.staff().role, "職員");
        }
    }

    #[test]
    fn a_header_cannot_come_from_a_file_and_text_at_once() {
        let parsed = Cli::try_parse_from([
            "tsunagu",
            "case",
            "open",
            "--municipality",
            "141178",
            "--category",
            "general",
            "--stage",
            "infancy",
            "--header-text",
            "x",
            "--header-file",
            "h.txt",
        ]);
        assert!(parsed.is_err());
    }

    #[test]
    fn a_case_needs_a_header() {
        let parsed = Cli::try_parse_from([
            "tsunagu",
            "case",
            "open",
            "--municipality",
            "141178",
            "--category",
            "general",
            "--stage",
            "infancy",
        ]);
        assert!(parsed.is_err());
    }

    #[test]
    fn a_municipality_code_must_have_six_digits() {
        let parsed = Cli::try_parse_from(["tsunagu", "case", "list", "--municipality", "1411"]);
        assert!(parsed.is_err());
    }
}

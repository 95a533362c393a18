//! `tsunagu transfer propose|ack|accept|decline|withdraw|show|list`: 移管 of a case to another
//! municipality when a family moves, for the coordinators (調整機関) of both sides.

use std::path::PathBuf;

use anyhow::anyhow;
use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use serde::Serialize;
use tsunagu_client::Hub;
use tsunagu_client::render::{KeyValues, Table, format_optional_japan_time, label, short_id};
use tsunagu_proto::v1::{
    AcceptTransferRequest, AcknowledgeTransferRequest, DeclineTransferRequest, GetTransferRequest,
    ListTransfersRequest, ProposeTransferRequest, Transfer, TransferTimer, TransferView,
    WithdrawTransferRequest,
};

use super::Context;
use super::common::{
    BasisArgs, CallExt, WriteArgs, get_case, is_full_id, open_sealed, parse_agency, parse_code,
    parse_municipality, read_payload, resolve_case_id, revealed_text, seal_for, unique_short_match,
};

pub const EXAMPLES: &str = "\
Examples:
  # A (青葉区) proposes the transfer of a registered case to 千代田区 (131016), with a sealed
  # 引継ぎ事項 for 千代田区's coordinator
  tsunagu --as aoba-kodomo transfer propose 3f8a51c0 --to 131016 --basis council-sharing \\
      --justification '要対協登録ケースの転居に伴う引継ぎ' --note-file hikitsugi.txt
  # Without a registration: a consent covering the receiving coordinator for case_transfer
  tsunagu --as aoba-kodomo transfer propose 3f8a51c0 --to 131016 --basis consent

  # B (千代田区) sees its worklist, confirms receipt, then accepts with its 主担当機関 and a new
  # case (the header is sealed here), or links a case it already has, or declines
  tsunagu --as chiyoda-kodomo transfer list --open
  tsunagu --as chiyoda-kodomo transfer ack 9c1d22aa
  tsunagu --as chiyoda-kodomo transfer accept 9c1d22aa --lead chiyoda-hoken \\
      --header-text '氏名: …'
  tsunagu --as chiyoda-kodomo transfer accept 9c1d22aa --lead chiyoda-hoken --case 51aa0c3e
  tsunagu --as chiyoda-kodomo transfer decline 9c1d22aa --reason not-moved-in \\
      --detail '転入届が未提出'

  # A withdraws (the family stays); either side shows one transfer or lists them as JSON
  tsunagu --as aoba-kodomo transfer withdraw 9c1d22aa
  tsunagu --as aoba-kodomo transfer show 9c1d22aa --reveal
  tsunagu --as aoba-kodomo transfer list --json";

#[derive(Debug, Args)]
pub struct TransferArgs {
    #[command(subcommand)]
    pub command: TransferCommand,
}

#[derive(Debug, Subcommand)]
pub enum TransferCommand {
    /// As A's coordinator: propose the transfer of a case to the municipality the family moves to
    #[command(after_help = EXAMPLES)]
    Propose(ProposeArgs),
    /// As B's coordinator: confirm receipt of a proposed transfer
    #[command(after_help = EXAMPLES)]
    Ack(IdArgs),
    /// As B's coordinator: take the family on, naming the 主担当機関 and opening or linking the case
    #[command(after_help = EXAMPLES)]
    Accept(AcceptArgs),
    /// As B's coordinator: decline, with a reason
    #[command(after_help = EXAMPLES)]
    Decline(DeclineArgs),
    /// As A's coordinator: withdraw a transfer in progress or declined (the family stays)
    #[command(after_help = EXAMPLES)]
    Withdraw(IdArgs),
    /// Show one transfer: its state, timers and the sealed 引継ぎ事項
    #[command(after_help = EXAMPLES)]
    Show(ShowArgs),
    /// List the transfers of your municipalities (the worklist with --open or --overdue)
    #[command(after_help = EXAMPLES)]
    List(ListArgs),
}

#[derive(Debug, Args)]
pub struct ProposeArgs {
    /// The case to transfer (its id, or the last 8 characters the tables show)
    #[arg(value_name = "CASE_ID")]
    pub case_id: String,

    /// The municipality code the family moves to
    #[arg(long, value_name = "CODE", value_parser = parse_municipality)]
    pub to: String,

    #[command(flatten)]
    pub basis: BasisArgs,

    /// 引継ぎ事項 from a file (`-`: stdin), sealed to the receiving coordinators and you
    #[arg(long, value_name = "FILE", conflicts_with = "note_text")]
    pub note_file: Option<PathBuf>,

    /// 引継ぎ事項 as text, sealed to the receiving coordinators and you
    #[arg(long, value_name = "TEXT")]
    pub note_text: Option<String>,

    #[command(flatten)]
    pub write: WriteArgs,
}

#[derive(Debug, Args)]
pub struct IdArgs {
    /// The transfer id (or the last 8 characters the tables show)
    #[arg(value_name = "TRANSFER_ID")]
    pub transfer_id: String,

    #[command(flatten)]
    pub write: WriteArgs,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("receiving").required(true).args(["case", "header_file", "header_text"])))]
pub struct AcceptArgs {
    /// The transfer id (or the last 8 characters the tables show)
    #[arg(value_name = "TRANSFER_ID")]
    pub transfer_id: String,

    /// 主担当機関: an agency of your municipality that leads the family's support
    #[arg(long, value_name = "AGENCY", value_parser = parse_agency)]
    pub lead: String,

    /// Link a case your municipality already has, instead of opening one
    #[arg(long, value_name = "CASE_ID")]
    pub case: Option<String>,

    /// The new case's header from a file (`-`: stdin), sealed to you and the lead agency
    #[arg(long, value_name = "FILE")]
    pub header_file: Option<PathBuf>,

    /// The new case's header as text, sealed to you and the lead agency
    #[arg(long, value_name = "TEXT")]
    pub header_text: Option<String>,

    #[command(flatten)]
    pub write: WriteArgs,
}

/// Why B declines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DeclineArg {
    /// 転入が確認できない
    NotMovedIn,
    /// 別の自治体へ転居した
    MovedElsewhere,
    /// 情報が不足している
    InsufficientInformation,
    /// 既に支援中
    AlreadySupported,
    /// その他
    Other,
}

impl DeclineArg {
    fn code(self) -> &'static str {
        match self {
            Self::NotMovedIn => "not_moved_in",
            Self::MovedElsewhere => "moved_elsewhere",
            Self::InsufficientInformation => "insufficient_information",
            Self::AlreadySupported => "already_supported",
            Self::Other => "other",
        }
    }
}

/// The Japanese words of a decline reason code.
fn decline_label(code: &str) -> String {
    let ja = match code {
        "not_moved_in" => "転入未確認",
        "moved_elsewhere" => "別自治体へ転居",
        "insufficient_information" => "情報不足",
        "already_supported" => "既に支援中",
        "other" => "その他",
        "" => return "-".to_owned(),
        _ => return code.to_owned(),
    };
    format!("{code} ({ja})")
}

#[derive(Debug, Args)]
pub struct DeclineArgs {
    /// The transfer id (or the last 8 characters the tables show)
    #[arg(value_name = "TRANSFER_ID")]
    pub transfer_id: String,

    /// Why
    #[arg(long, value_enum)]
    pub reason: DeclineArg,

    /// A short note, at most 200 characters, stored in the clear: never a name
    #[arg(long, value_name = "TEXT")]
    pub detail: Option<String>,

    #[command(flatten)]
    pub write: WriteArgs,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The transfer id (or the last 8 characters the tables show)
    #[arg(value_name = "TRANSFER_ID")]
    pub transfer_id: String,

    /// Print the 引継ぎ事項 if your agency can open it
    #[arg(long)]
    pub reveal: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this municipality (either side)
    #[arg(long, value_name = "CODE", value_parser = parse_municipality)]
    pub municipality: Option<String>,

    /// Only the worklist: transfers someone of yours still has to act on
    #[arg(long, conflicts_with = "overdue")]
    pub open: bool,

    /// Only worklist transfers with a passed timer
    #[arg(long)]
    pub overdue: bool,
}

pub async fn run(ctx: &Context, args: TransferArgs) -> anyhow::Result<()> {
    match args.command {
        TransferCommand::Propose(args) => propose(ctx, args).await,
        TransferCommand::Ack(args) => ack(ctx, args).await,
        TransferCommand::Accept(args) => accept(ctx, args).await,
        TransferCommand::Decline(args) => decline(ctx, args).await,
        TransferCommand::Withdraw(args) => withdraw(ctx, args).await,
        TransferCommand::Show(args) => show(ctx, args).await,
        TransferCommand::List(args) => list(ctx, args).await,
    }
}

async fn list_transfers(
    hub: &Hub,
    municipality: String,
    view: TransferView,
) -> anyhow::Result<Vec<Transfer>> {
    Ok(hub
        .transfers()
        .list_transfers(ListTransfersRequest {
            municipality,
            case_id: String::new(),
            view: view.into(),
        })
        .await
        .answer(hub)?
        .transfers)
}

/// The caller's transfer worklist for `followups`: one line per transfer someone of the caller's
/// municipalities has to act on; `None` when there is none (or the caller coordinates nothing).
pub async fn worklist_lines(hub: &Hub) -> Option<String> {
    let open = list_transfers(hub, String::new(), TransferView::Open)
        .await
        .ok()?;
    if open.is_empty() {
        return None;
    }
    let mut out = String::from("移管 (対応が必要):\n");
    for t in &open {
        let state = if t.state() == tsunagu_proto::v1::TransferState::Declined {
            "移管が辞退されました".to_owned()
        } else {
            label(t.state())
        };
        out.push_str(&format!(
            "  transfer {} case {} {} → {}: {}",
            short_id(&t.transfer_id),
            short_id(&t.case_id),
            t.from_municipality,
            t.to_municipality,
            state
        ));
        if !t.overdue.is_empty() {
            out.push_str(&format!(" (期限超過: {})", timers(&t.overdue)));
        }
        out.push('\n');
    }
    Some(out)
}

/// A transfer id as given: whole, or a short form looked up among the caller's transfers.
async fn resolve_transfer_id(hub: &Hub, text: &str) -> anyhow::Result<String> {
    let text = text.trim();
    if is_full_id(text) || text.is_empty() {
        return Ok(text.to_owned());
    }
    let all = list_transfers(hub, String::new(), TransferView::All).await?;
    unique_short_match(
        "transfer",
        text,
        all.iter().map(|t| t.transfer_id.as_str()),
        "tsunagu transfer list",
    )
}

/// Prints a transfer after a write: JSON, or one line for people.
fn done(ctx: &Context, what: &str, transfer: &Transfer) -> anyhow::Result<()> {
    if ctx.json() {
        return ctx.print_json(&TransferJson::from(transfer));
    }
    ctx.print(&format!(
        "{what}: transfer {} of case {} ({} → {}): {}\n",
        transfer.transfer_id,
        short_id(&transfer.case_id),
        transfer.from_municipality,
        transfer.to_municipality,
        label(transfer.state())
    ))
}

async fn propose(ctx: &Context, args: ProposeArgs) -> anyhow::Result<()> {
    let hub = ctx.connect().await?;
    let basis = args.basis.legal_basis()?;
    let case_id = resolve_case_id(&hub, &args.case_id).await?;
    let note = match read_payload(args.note_file.as_deref(), args.note_text.as_deref())? {
        Some(plaintext) => {
            let case = get_case(&hub, &case_id).await?;
            let mut sealer = ctx.sealer(&hub)?;
            let coordinators = sealer.coordinators(&args.to).await?;
            if coordinators.is_empty() {
                return Err(anyhow!(
                    "municipality {} has no coordinator registered with the hub to seal the note to",
                    args.to
                ));
            }
            let to: Vec<&str> = coordinators.iter().map(String::as_str).collect();
            Some(
                seal_for(
                    ctx,
                    &mut sealer,
                    &plaintext,
                    &to,
                    Some(&case),
                    args.write.idempotency_key.as_deref(),
                )
                .await?,
            )
        }
        None => None,
    };
    let transfer = hub
        .transfers()
        .propose_transfer(ProposeTransferRequest {
            case_id,
            to_municipality: args.to,
            basis: Some(basis),
            note,
            staff: Some(args.write.staff()),
            idempotency_key: args.write.idempotency_key(),
        })
        .await
        .answer(&hub)?
        .transfer
        .ok_or_else(|| anyhow!("the hub answered without the transfer"))?;
    done(ctx, "proposed", &transfer)
}

async fn ack(ctx: &Context, args: IdArgs) -> anyhow::Result<()> {
    let hub = ctx.connect().await?;
    let transfer_id = resolve_transfer_id(&hub, &args.transfer_id).await?;
    let transfer = hub
        .transfers()
        .acknowledge_transfer(AcknowledgeTransferRequest {
            transfer_id,
            staff: Some(args.write.staff()),
            idempotency_key: args.write.idempotency_key(),
        })
        .await
        .answer(&hub)?
        .transfer
        .ok_or_else(|| anyhow!("the hub answered without the transfer"))?;
    done(ctx, "acknowledged", &transfer)
}

async fn accept(ctx: &Context, args: AcceptArgs) -> anyhow::Result<()> {
    let hub = ctx.connect().await?;
    let transfer_id = resolve_transfer_id(&hub, &args.transfer_id).await?;
    let receiving_case_id = match &args.case {
        Some(case) => resolve_case_id(&hub, case).await?,
        None => String::new(),
    };
    let header = match read_payload(args.header_file.as_deref(), args.header_text.as_deref())? {
        Some(plaintext) => {
            let mut sealer = ctx.sealer(&hub)?;
            Some(
                seal_for(
                    ctx,
                    &mut sealer,
                    &plaintext,
                    &[args.lead.as_str()],
                    None,
                    args.write.idempotency_key.as_deref(),
                )
                .await?,
            )
        }
        None => None,
    };
    let answer = hub
        .transfers()
        .accept_transfer(AcceptTransferRequest {
            transfer_id,
            lead_agency: args.lead,
            receiving_case_id,
            header,
            staff: Some(args.write.staff()),
            idempotency_key: args.write.idempotency_key(),
        })
        .await
        .answer(&hub)?;
    let transfer = answer
        .transfer
        .ok_or_else(|| anyhow!("the hub answered without the transfer"))?;
    done(ctx, "accepted", &transfer)?;
    if !ctx.json() {
        ctx.print(&format!(
            "case in {}: {}{}\n",
            transfer.to_municipality,
            transfer.receiving_case_id,
            if transfer.receiving_case_opened {
                " (opened)"
            } else {
                " (linked)"
            }
        ))?;
    }
    Ok(())
}

async fn decline(ctx: &Context, args: DeclineArgs) -> anyhow::Result<()> {
    let hub = ctx.connect().await?;
    let transfer_id = resolve_transfer_id(&hub, &args.transfer_id).await?;
    let reason_code = parse_code(args.reason.code()).map_err(|e| anyhow!(e))?;
    let transfer = hub
        .transfers()
        .decline_transfer(DeclineTransferRequest {
            transfer_id,
            reason_code,
            reason_text: args.detail.unwrap_or_default(),
            staff: Some(args.write.staff()),
            idempotency_key: args.write.idempotency_key(),
        })
        .await
        .answer(&hub)?
        .transfer
        .ok_or_else(|| anyhow!("the hub answered without the transfer"))?;
    done(ctx, "declined", &transfer)
}

async fn withdraw(ctx: &Context, args: IdArgs) -> anyhow::Result<()> {
    let hub = ctx.connect().await?;
    let transfer_id = resolve_transfer_id(&hub, &args.transfer_id).await?;
    let transfer = hub
        .transfers()
        .withdraw_transfer(WithdrawTransferRequest {
            transfer_id,
            staff: Some(args.write.staff()),
            idempotency_key: args.write.idempotency_key(),
        })
        .await
        .answer(&hub)?
        .transfer
        .ok_or_else(|| anyhow!("the hub answered without the transfer"))?;
    done(ctx, "withdrawn", &transfer)
}

fn timers(values: &[i32]) -> String {
    let names: Vec<String> = values
        .iter()
        .filter_map(|v| TransferTimer::try_from(*v).ok())
        .map(label)
        .collect();
    if names.is_empty() {
        "-".to_owned()
    } else {
        names.join(", ")
    }
}

async fn show(ctx: &Context, args: ShowArgs) -> anyhow::Result<()> {
    let hub = ctx.connect().await?;
    let transfer_id = resolve_transfer_id(&hub, &args.transfer_id).await?;
    let transfer = hub
        .transfers()
        .get_transfer(GetTransferRequest { transfer_id })
        .await
        .answer(&hub)?
        .transfer
        .ok_or_else(|| anyhow!("the hub answered without the transfer"))?;
    let note = open_sealed(ctx, transfer.note.as_ref());
    if ctx.json() {
        let mut view = TransferJson::from(&transfer);
        view.note = note.view(args.reveal);
        return ctx.print_json(&view);
    }
    let mut list = KeyValues::new();
    list.entry("移管ID", &transfer.transfer_id)
        .entry("ケース (転出元)", &transfer.case_id)
        .entry("転出元", &transfer.from_municipality)
        .entry("転入先", &transfer.to_municipality)
        .entry("状態", label(transfer.state()))
        .entry("法的根拠", label(transfer.basis()))
        .entry("依頼機関", &transfer.proposed_by)
        .entry(
            "依頼日時",
            format_optional_japan_time(transfer.proposed_at.as_ref()),
        )
        .entry(
            "受領確認期限",
            format_optional_japan_time(transfer.deliver_by.as_ref()),
        )
        .entry(
            "回答期限",
            format_optional_japan_time(transfer.respond_by.as_ref()),
        )
        .entry(
            "受入期限",
            format_optional_japan_time(transfer.accept_by.as_ref()),
        )
        .entry("期限超過", timers(&transfer.overdue))
        .entry("主担当機関", dash(&transfer.lead_agency))
        .entry("ケース (転入先)", dash(&transfer.receiving_case_id))
        .entry("辞退理由", decline_label(&transfer.decline_reason))
        .entry("辞退メモ", dash(&transfer.decline_text))
        .entry("引継ぎ事項", note.status());
    let mut out = list.to_string();
    if args.reveal
        && let super::common::Opened::Readable(plaintext) = &note
    {
        out.push_str("引継ぎ事項:\n");
        out.push_str(&revealed_text(plaintext, "  "));
    }
    ctx.print(&out)
}

fn dash(text: &str) -> String {
    if text.is_empty() {
        "-".to_owned()
    } else {
        text.to_owned()
    }
}

async fn list(ctx: &Context, args: ListArgs) -> anyhow::Result<()> {
    let hub = ctx.connect().await?;
    let view = if args.overdue {
        TransferView::Overdue
    } else if args.open {
        TransferView::Open
    } else {
        TransferView::All
    };
    let transfers = list_transfers(&hub, args.municipality.unwrap_or_default(), view).await?;
    if ctx.json() {
        let views: Vec<TransferJson> = transfers.iter().map(TransferJson::from).collect();
        return ctx.print_json(&views);
    }
    if transfers.is_empty() {
        return ctx.print("移管はありません\n");
    }
    let mut table = Table::new([
        "移管ID",
        "ケース",
        "転出元",
        "転入先",
        "状態",
        "依頼日時",
        "回答期限",
        "期限超過",
        "要対応",
    ]);
    for t in &transfers {
        table.row([
            short_id(&t.transfer_id).to_owned(),
            short_id(&t.case_id).to_owned(),
            t.from_municipality.clone(),
            t.to_municipality.clone(),
            label(t.state()),
            format_optional_japan_time(t.proposed_at.as_ref()),
            format_optional_japan_time(t.respond_by.as_ref()),
            timers(&t.overdue),
            if t.on_worklist { "要対応" } else { "-" }.to_owned(),
        ]);
    }
    ctx.print(&table.to_string())
}

/// A transfer as `--json` prints it.
#[derive(Debug, Serialize)]
struct TransferJson {
    transfer_id: String,
    case_id: String,
    from_municipality: String,
    to_municipality: String,
    state: String,
    basis: String,
    proposed_by: String,
    proposed_at: Option<String>,
    acknowledged_at: Option<String>,
    responded_at: Option<String>,
    deliver_by: Option<String>,
    respond_by: Option<String>,
    accept_by: Option<String>,
    overdue: Vec<String>,
    escalated: Vec<String>,
    on_worklist: bool,
    lead_agency: Option<String>,
    receiving_case_id: Option<String>,
    receiving_case_opened: bool,
    decline_reason: Option<String>,
    decline_text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<super::views::SealedView>,
}

fn some(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

fn codes(values: &[i32]) -> Vec<String> {
    use tsunagu_client::render::Coded as _;
    values
        .iter()
        .filter_map(|v| TransferTimer::try_from(*v).ok())
        .map(|t| t.code().to_owned())
        .collect()
}

impl From<&Transfer> for TransferJson {
    fn from(t: &Transfer) -> Self {
        use tsunagu_client::render::{Coded as _, format_rfc3339};
        let at = |ts: Option<&prost_types::Timestamp>| ts.and_then(format_rfc3339);
        Self {
            transfer_id: t.transfer_id.clone(),
            case_id: t.case_id.clone(),
            from_municipality: t.from_municipality.clone(),
            to_municipality: t.to_municipality.clone(),
            state: t.state().code().to_owned(),
            basis: t.basis().code().to_owned(),
            proposed_by: t.proposed_by.clone(),
            proposed_at: at(t.proposed_at.as_ref()),
            acknowledged_at: at(t.acknowledged_at.as_ref()),
            responded_at: at(t.responded_at.as_ref()),
            deliver_by: at(t.deliver_by.as_ref()),
            respond_by: at(t.respond_by.as_ref()),
            accept_by: at(t.accept_by.as_ref()),
            overdue: codes(&t.overdue),
            escalated: codes(&t.escalated),
            on_worklist: t.on_worklist,
            lead_agency: some(&t.lead_agency),
            receiving_case_id: some(&t.receiving_case_id),
            receiving_case_opened: t.receiving_case_opened,
            decline_reason: some(&t.decline_reason),
            decline_text: some(&t.decline_text),
            note: None,
        }
    }
}

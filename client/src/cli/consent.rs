//! `tsunagu consent record|withdraw|list`: the consent records (同意) that let agencies share.

use std::path::PathBuf;

use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};
use tsunagu_client::render::{join_or_dash, label, purpose_label, short_id};
use tsunagu_proto::v1::{
    ConsentGiver, ConsentMethod, ConsentScope, ListConsentsRequest, RecordConsentRequest,
    WithdrawConsentRequest,
};

use super::Context;
use super::common::{
    CallExt, GiverArg, MethodArg, StaffArgs, WriteArgs, get_case, parse_agency, parse_code,
    parse_date, parse_rfc3339, read_payload, resolve_case_id, seal_for, today_in_japan,
};
use super::tables::consents_table;
use super::views::ConsentView;

pub const EXAMPLES: &str = "\
Examples:
  # The mother's written consent to share with the hospital and the ひろば, for two purposes
  tsunagu --as aoba-kodomo consent record 3f8a51c0 --given-by self --method written \\
      --recipient aoba-hospital --recipient aoba-hiroba \\
      --purpose postnatal_care --purpose parenting_support

  # A guardian's oral consent covering every nursery, until the end of the school year,
  # with the record of the conversation sealed as evidence
  tsunagu --as aoba-kodomo consent record 3f8a51c0 --given-by guardian --method oral \\
      --recipient-kind nursery --purpose nursery_admission --purpose temporary_childcare \\
      --valid-from 2026-04-01 --valid-until 2027-03-31 --evidence-file call-note.txt

  # The consents of a case, and withdrawing one (new shares relying on it are refused at once)
  tsunagu --as aoba-kodomo consent list 3f8a51c0
  tsunagu --as aoba-kodomo consent withdraw <CONSENT_ID>   # the whole id, from `consent list --json`
  tsunagu --as aoba-kodomo consent list 3f8a51c0 --json";

#[derive(Debug, Args)]
pub struct ConsentArgs {
    #[command(subcommand)]
    pub command: ConsentCommand,
}

#[derive(Debug, Subcommand)]
pub enum ConsentCommand {
    /// Record a consent given by the person (本人) or the guardian (保護者)
    #[command(after_help = EXAMPLES)]
    Record(RecordArgs),

    /// Withdraw a consent: new shares relying on it are refused; what was shared stays, marked
    #[command(after_help = EXAMPLES)]
    Withdraw(WithdrawArgs),

    /// List the consent records of a case
    #[command(after_help = EXAMPLES)]
    List(ListArgs),
}

#[derive(Debug, Args)]
pub struct RecordArgs {
    /// The case id (or its last 8 characters, as the tables show)
    #[arg(value_name = "CASE_ID")]
    pub case_id: String,

    /// Who consented: self (本人) or guardian (保護者)
    #[arg(long, value_enum)]
    pub given_by: GiverArg,

    /// How: written (書面), oral (口頭) or electronic (電子)
    #[arg(long, value_enum)]
    pub method: MethodArg,

    /// An agency that may receive (repeatable)
    #[arg(long = "recipient", value_name = "AGENCY", value_parser = parse_agency)]
    pub recipients: Vec<String>,

    /// A kind of agency that may receive (repeatable): hospital, nursery, support_hub, …
    #[arg(long = "recipient-kind", value_name = "KIND", value_parser = parse_code)]
    pub recipient_kinds: Vec<String>,

    /// A purpose covered (repeatable, at least one): postnatal_care, parenting_support, …
    #[arg(long = "purpose", value_name = "CODE", value_parser = parse_code, required = true)]
    pub purposes: Vec<String>,

    /// First day covered, YYYY-MM-DD [default: today in Japan]
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub valid_from: Option<String>,

    /// Last day covered, YYYY-MM-DD [default: no end date]
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub valid_until: Option<String>,

    /// Evidence (a scan of the signed form, a note of the conversation) from a file; `-` reads
    /// stdin. Sealed before it leaves this machine
    #[arg(long, value_name = "FILE")]
    pub evidence_file: Option<PathBuf>,

    #[command(flatten)]
    pub write: WriteArgs,
}

#[derive(Debug, Args)]
pub struct WithdrawArgs {
    /// The whole consent id, as `consent list --json` shows it
    #[arg(value_name = "CONSENT_ID")]
    pub consent_id: String,

    /// When the person withdrew it, RFC 3339 [default: now]
    #[arg(long, value_name = "TIME", value_parser = parse_rfc3339)]
    pub withdrawn_at: Option<prost_types::Timestamp>,

    #[command(flatten)]
    pub staff: StaffArgs,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// The case id (or its last 8 characters, as the tables show)
    #[arg(value_name = "CASE_ID")]
    pub case_id: String,
}

pub async fn run(ctx: &Context, args: ConsentArgs) -> anyhow::Result<()> {
    match args.command {
        ConsentCommand::Record(args) => record(ctx, args).await,
        ConsentCommand::Withdraw(args) => withdraw(ctx, args).await,
        ConsentCommand::List(args) => list(ctx, args).await,
    }
}

/// The request `consent record` sends, before the case id is resolved and evidence sealed.
pub fn record_request(args: &RecordArgs) -> anyhow::Result<RecordConsentRequest> {
    if args.recipients.is_empty() && args.recipient_kinds.is_empty() {
        bail!("name who may receive: give --recipient <agency> or --recipient-kind <kind>");
    }
    let valid_from = args.valid_from.clone().unwrap_or_else(today_in_japan);
    if let Some(until) = &args.valid_until
        && until < &valid_from
    {
        bail!("--valid-until {until} is before --valid-from {valid_from}");
    }
    Ok(RecordConsentRequest {
        case_id: args.case_id.clone(),
        given_by: ConsentGiver::from(args.given_by).into(),
        method: ConsentMethod::from(args.method).into(),
        scope: Some(ConsentScope {
            recipient_agencies: args.recipients.clone(),
            recipient_kinds: args.recipient_kinds.clone(),
            purposes: args.purposes.clone(),
        }),
        valid_from,
        valid_until: args.valid_until.clone().unwrap_or_default(),
        evidence: None,
        staff: Some(args.write.staff()),
        idempotency_key: args.write.idempotency_key(),
    })
}

async fn record(ctx: &Context, args: RecordArgs) -> anyhow::Result<()> {
    let mut request = record_request(&args)?;
    let evidence = read_payload(args.evidence_file.as_deref(), None)?;
    let hub = ctx.connect().await?;
    request.case_id = resolve_case_id(&hub, &args.case_id).await?;
    if let Some(evidence) = evidence {
        // Evidence is for the recording agency, and for the coordinator of a 要対協 case.
        let case = get_case(&hub, &request.case_id).await?;
        let mut sealer = ctx.sealer(&hub)?;
        request.evidence = Some(
            seal_for(
                ctx,
                &mut sealer,
                &evidence,
                &[],
                Some(&case),
                args.write.idempotency_key.as_deref(),
            )
            .await?,
        );
    }
    let consent = hub
        .cases()
        .record_consent(request)
        .await
        .answer(&hub)?
        .consent
        .ok_or_else(|| anyhow!("the hub answered without the consent"))?;
    if ctx.json() {
        return ctx.print_json(&ConsentView::from(&consent));
    }
    let scope = consent.scope.clone().unwrap_or_default();
    let recipients: Vec<String> = scope
        .recipient_agencies
        .iter()
        .cloned()
        .chain(scope.recipient_kinds.iter().map(|k| format!("kind:{k}")))
        .collect();
    let purposes: Vec<String> = scope.purposes.iter().map(|p| purpose_label(p)).collect();
    ctx.print(&format!(
        "recorded consent {} on case {}: {}, {}\n  recipients: {}\n  purposes:   {}\n  valid:      {} – {}\n",
        consent.consent_id,
        short_id(&consent.case_id),
        label(consent.given_by()),
        label(consent.method()),
        join_or_dash(&recipients),
        join_or_dash(&purposes),
        consent.valid_from,
        if consent.valid_until.is_empty() {
            "(no end date)"
        } else {
            &consent.valid_until
        },
    ))
}

async fn withdraw(ctx: &Context, args: WithdrawArgs) -> anyhow::Result<()> {
    let hub = ctx.connect().await?;
    let consent = hub
        .cases()
        .withdraw_consent(WithdrawConsentRequest {
            consent_id: args.consent_id.trim().to_owned(),
            staff: Some(args.staff.staff()),
            withdrawn_at: args.withdrawn_at,
        })
        .await
        .answer(&hub)?
        .consent
        .ok_or_else(|| anyhow!("the hub answered without the consent"))?;
    if ctx.json() {
        return ctx.print_json(&ConsentView::from(&consent));
    }
    ctx.print(&format!(
        "withdrew consent {} on case {}: new shares relying on it are refused; what was \
         already shared stays, marked\n",
        consent.consent_id,
        short_id(&consent.case_id)
    ))
}

async fn list(ctx: &Context, args: ListArgs) -> anyhow::Result<()> {
    let hub = ctx.connect().await?;
    let case_id = resolve_case_id(&hub, &args.case_id).await?;
    let consents = hub
        .cases()
        .list_consents(ListConsentsRequest { case_id })
        .await
        .answer(&hub)?
        .consents;
    if ctx.json() {
        let views: Vec<ConsentView> = consents.iter().map(ConsentView::from).collect();
        return ctx.print_json(&views);
    }
    if consents.is_empty() {
        eprintln!("no consent records on this case");
        return Ok(());
    }
    ctx.print(&consents_table(&consents).to_string())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn record_args(extra: &[&str]) -> Result<RecordArgs, clap::Error> {
        let mut argv = vec!["tsunagu", "consent", "record", "case-1"];
        argv.extend_from_slice(extra);
        let cli = Cli::try_parse_from(argv)?;
        match cli.command {
            Command::Consent(ConsentArgs {
                command: ConsentCommand::Record(args),
            }) => Ok(args),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn a_consent_record_carries_its_scope_and_enums() {
        let args = record_args(&[
            "--given-by",
            "self",
            "--method",
            "written",
            "--recipient",
            "aoba-hospital",
            "--recipient",
            "aoba-hiroba",
            "--recipient-kind",
            "support-hub",
            "--purpose",
            "postnatal_care",
            "--purpose",
            "parenting-support",
            "--valid-from",
            "2026-04-01",
        ])
        .unwrap();
        let request = record_request(&args).unwrap();
        assert_eq!(request.given_by(), ConsentGiver::Person);
        assert_eq!(request.method(), ConsentMethod::Written);
        let scope = request.scope.unwrap();
        assert_eq!(scope.recipient_agencies, ["aoba-hospital", "aoba-hiroba"]);
        assert_eq!(scope.recipient_kinds, ["support_hub"]);
        assert_eq!(scope.purposes, ["postnatal_care", "parenting_support"]);
        assert_eq!(request.valid_from, "2026-04-01");
        assert_eq!(request.valid_until, "");
        assert_eq!(request.idempotency_key.len(), 36);
    }

    #[test]
    fn valid_from_defaults_to_today_in_japan() {
        let args = record_args(&[
            "--given-by",
            "guardian",
            "--method",
            "oral",
            "--recipient",
            "aoba-nursery",
            "--purpose",
            "nursery_admission",
        ])
        .unwrap();
        assert_eq!(record_request(&args).unwrap().valid_from, today_in_japan());
    }

    #[test]
    fn a_consent_without_any_recipient_is_refused_before_calling_the_hub() {
        let args = record_args(&[
            "--given-by",
            "guardian",
            "--method",
            "oral",
            "--purpose",
            "nursery_admission",
        ])
        .unwrap();
        assert!(
            record_request(&args)
                .unwrap_err()
                .to_string()
                .contains("--recipient")
        );
    }

    #[test]
    fn a_consent_needs_at_least_one_purpose() {
        assert!(
            record_args(&[
                "--given-by",
                "self",
                "--method",
                "written",
                "--recipient",
                "aoba-hospital"
            ])
            .is_err()
        );
    }

    #[test]
    fn an_end_date_before_the_start_is_refused() {
        let args = record_args(&[
            "--given-by",
            "self",
            "--method",
            "electronic",
            "--recipient",
            "aoba-hospital",
            "--purpose",
            "postnatal_care",
            "--valid-from",
            "2026-04-02",
            "--valid-until",
            "2026-04-01",
        ])
        .unwrap();
        assert!(record_request(&args).is_err());
    }
}

//! `tsunagu note` and `tsunagu note-ack`: sealed notes on a case thread, acknowledged per recipient.

use std::path::PathBuf;

use anyhow::{anyhow, bail};
use clap::{ArgGroup, Args};
use tsunagu_client::render::{join_or_dash, purpose_label, short_id};
use tsunagu_proto::v1::{AcknowledgeNoteRequest, SendNoteRequest};

use super::Context;
use super::common::{
    BasisArgs, CallExt, WriteArgs, get_case, parse_agency, parse_code, read_payload,
    resolve_case_id, seal_for,
};
use super::views::NoteView;

pub const NOTE_EXAMPLES: &str = "\
Examples:
  # A note to the hospital and the ひろば on the case thread (under the consent on the case)
  tsunagu --as aoba-kodomo note 3f8a51c0 --to aoba-hospital --to aoba-hiroba \\
      --purpose postnatal_care --text '退院日が決まりました: 4月10日'

  # From a file, to a 要対協 member without consent (the case is registered with the council)
  tsunagu --as aoba-kodomo note 3f8a51c0 --to north-jisou --purpose child_protection \\
      --basis council-sharing --justification '要対協 個別ケース検討会議の準備' --file memo.txt

The note is sealed on this machine to every active age key of each recipient, of your agency
and, for a case registered with 要対協, of the coordinator; the hub never sees it.";

pub const NOTE_ACK_EXAMPLES: &str = "\
Examples:
  # Acknowledge that your agency received a note (see `tsunagu inbox --watch` or `case show`)
  tsunagu --as aoba-hospital note-ack <NOTE_ID>";

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("content").required(true).args(["file", "text"])))]
pub struct NoteArgs {
    /// The case id (or its last 8 characters, as the tables show)
    #[arg(value_name = "CASE_ID")]
    pub case_id: String,

    /// A participant to receive the note (repeatable, 1 to 20)
    #[arg(long = "to", value_name = "AGENCY", value_parser = parse_agency, required = true)]
    pub to: Vec<String>,

    /// Purpose code the note serves (checked against consent scopes), for example postnatal_care
    #[arg(long, value_name = "CODE", value_parser = parse_code)]
    pub purpose: String,

    #[command(flatten)]
    pub basis: BasisArgs,

    /// The note as text. Sealed before it leaves this machine
    #[arg(long, value_name = "TEXT")]
    pub text: Option<String>,

    /// The note from a file; `-` reads stdin. Sealed before it leaves this machine
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,

    #[command(flatten)]
    pub write: WriteArgs,
}

#[derive(Debug, Args)]
pub struct NoteAckArgs {
    /// The whole note id
    #[arg(value_name = "NOTE_ID")]
    pub note_id: String,

    #[command(flatten)]
    pub write: WriteArgs,
}

/// The request `note` sends, before the case id is resolved and the body sealed.
pub fn note_request(args: &NoteArgs) -> anyhow::Result<SendNoteRequest> {
    if args.to.len() > 20 {
        bail!(
            "a note goes to at most 20 agencies ({} given)",
            args.to.len()
        );
    }
    let mut to: Vec<String> = Vec::with_capacity(args.to.len());
    for agency in &args.to {
        if !to.contains(agency) {
            to.push(agency.clone());
        }
    }
    Ok(SendNoteRequest {
        case_id: args.case_id.clone(),
        to_agencies: to,
        purpose: args.purpose.clone(),
        basis: Some(args.basis.legal_basis()?),
        body: None,
        staff: Some(args.write.staff()),
        idempotency_key: args.write.idempotency_key(),
    })
}

pub async fn run(ctx: &Context, args: NoteArgs) -> anyhow::Result<()> {
    let mut request = note_request(&args)?;
    let body = read_payload(args.file.as_deref(), args.text.as_deref())?
        .ok_or_else(|| anyhow!("give the note with --text or --file"))?;
    let hub = ctx.connect().await?;
    request.case_id = resolve_case_id(&hub, &args.case_id).await?;
    let case = get_case(&hub, &request.case_id).await?;
    let mut sealer = ctx.sealer(&hub)?;
    let recipients: Vec<&str> = request.to_agencies.iter().map(String::as_str).collect();
    request.body = Some(
        seal_for(
            ctx,
            &mut sealer,
            &body,
            &recipients,
            Some(&case),
            args.write.idempotency_key.as_deref(),
        )
        .await?,
    );
    let note = hub
        .referrals()
        .send_note(request)
        .await
        .answer(&hub)?
        .note
        .ok_or_else(|| anyhow!("the hub answered without the note"))?;
    if ctx.json() {
        return ctx.print_json(&NoteView::from(&note));
    }
    let to: Vec<String> = note
        .recipients
        .iter()
        .map(|r| r.agency_id.clone())
        .collect();
    ctx.print(&format!(
        "sent note {} on case {} to {} ({})\n",
        note.note_id,
        short_id(&note.case_id),
        join_or_dash(&to),
        purpose_label(&args.purpose),
    ))
}

pub async fn run_ack(ctx: &Context, args: NoteAckArgs) -> anyhow::Result<()> {
    let hub = ctx.connect().await?;
    let note = hub
        .referrals()
        .acknowledge_note(AcknowledgeNoteRequest {
            note_id: args.note_id.trim().to_owned(),
            staff: Some(args.write.staff()),
            idempotency_key: args.write.idempotency_key(),
        })
        .await
        .answer(&hub)?
        .note
        .ok_or_else(|| anyhow!("the hub answered without the note"))?;
    if ctx.json() {
        return ctx.print_json(&NoteView::from(&note));
    }
    ctx.print(&format!(
        "acknowledged note {} on case {}\n",
        note.note_id,
        short_id(&note.case_id)
    ))
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use tsunagu_proto::v1::LegalBasisKind;

    use super::*;
    use crate::cli::{Cli, Command};

    fn parse(extra: &[&str]) -> Result<NoteArgs, clap::Error> {
        let mut argv = vec!["tsunagu", "note", "case-1"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv)?.command {
            Command::Note(args) => Ok(args),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn a_note_goes_to_every_named_agency_under_its_basis() {
        let args = parse(&[
            "--to",
            "aoba-hospital",
            "--to",
            "aoba-hiroba",
            "--purpose",
            "postnatal_care",
            "--text",
            "x",
        ])
        .unwrap();
        let request = note_request(&args).unwrap();
        assert_eq!(request.to_agencies, ["aoba-hospital", "aoba-hiroba"]);
        assert_eq!(request.basis.unwrap().kind(), LegalBasisKind::Consent);
    }

    #[test]
    fn a_note_needs_a_recipient_and_content() {
        assert!(parse(&["--purpose", "postnatal_care", "--text", "x"]).is_err());
        assert!(parse(&["--to", "aoba-hospital", "--purpose", "postnatal_care"]).is_err());
        assert!(
            parse(&[
                "--to",
                "aoba-hospital",
                "--purpose",
                "postnatal_care",
                "--text",
                "x",
                "--file",
                "f"
            ])
            .is_err()
        );
    }

    #[test]
    fn note_ack_is_its_own_subcommand() {
        let cli = Cli::try_parse_from(["tsunagu", "note-ack", "n-1"]).unwrap();
        assert!(matches!(cli.command, Command::NoteAck(_)));
    }
}

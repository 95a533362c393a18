//! `tsunagu reseal`: give a sealed field (a case header, a referral's or a note's body) new
//! readers, by opening it on this machine and sealing it again; or list who can open what.

use anyhow::{anyhow, bail};
use clap::{ArgGroup, Args};
use serde::Serialize;
use tsunagu_client::render::{Table, short_id};
use tsunagu_client::reseal::{self, Reseal, basis_label, field_label};
use tsunagu_proto::v1::{SealedFieldKind, SealedFieldReaders};

use super::Context;
use super::common::{WriteArgs, parse_agency, resolve_case_id};

pub const EXAMPLES: &str = "\
Examples:
  # Who can open each sealed field of a case, and who could be added (with the basis)
  tsunagu --as aoba-hoken reseal 3f8a51c0

  # The case was registered with the 要対協 after its header was sealed: let the coordinator
  # read the header (氏名・生年月日・住所)
  tsunagu --as aoba-hoken reseal 3f8a51c0 --to aoba-kodomo

  # One referral's body, or one note's body, to the new 主担当機関
  tsunagu --as aoba-hoken reseal 3f8a51c0 --referral 0193a7c2-... --to aoba-hiroba
  tsunagu --as aoba-hoken reseal 3f8a51c0 --note 0193a7c9-... --to aoba-hiroba

  # Everything on the case this agency can re-seal for the receiving coordinator of a 移管
  tsunagu --as aoba-kodomo reseal 3f8a51c0 --all --to midori-kodomo

The field is opened with your age identity and sealed again on this machine to everyone who can
read it now and to the new readers; the hub checks each new reader's basis and never sees the
content. Only an agency that can open a field can re-seal it.";

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("which").args(["referral", "note", "all"])))]
pub struct ResealArgs {
    /// The case id (or its last 8 characters, as the tables show)
    #[arg(value_name = "CASE_ID")]
    pub case_id: String,

    /// An agency to add as a reader (repeatable). Without it: list the sealed fields
    #[arg(long = "to", value_name = "AGENCY", value_parser = parse_agency)]
    pub to: Vec<String>,

    /// Re-seal this referral's body instead of the case header
    #[arg(long, value_name = "REFERRAL_ID")]
    pub referral: Option<String>,

    /// Re-seal this note's body instead of the case header
    #[arg(long, value_name = "NOTE_ID")]
    pub note: Option<String>,

    /// Re-seal every field of the case you can re-seal that the agencies may be added to
    #[arg(long)]
    pub all: bool,

    #[command(flatten)]
    pub write: WriteArgs,
}

/// One sealed field, for `--json`.
#[derive(Debug, Serialize)]
struct FieldView {
    kind: &'static str,
    id: String,
    readers: Vec<String>,
    can_open: bool,
    may_reseal: bool,
    could_add: Vec<PossibleView>,
}

#[derive(Debug, Serialize)]
struct PossibleView {
    agency_id: String,
    basis: String,
}

fn kind_code(field: &SealedFieldReaders) -> &'static str {
    match field.field.as_ref().map(|f| f.kind()) {
        Some(SealedFieldKind::CaseHeader) => "case_header",
        Some(SealedFieldKind::ReferralBody) => "referral_body",
        Some(SealedFieldKind::NoteBody) => "note_body",
        _ => "unknown",
    }
}

fn field_id(field: &SealedFieldReaders) -> &str {
    field.field.as_ref().map_or("", |f| f.id.as_str())
}

fn view(field: &SealedFieldReaders) -> FieldView {
    FieldView {
        kind: kind_code(field),
        id: field_id(field).to_owned(),
        readers: field.readers.clone(),
        can_open: field.caller_can_open,
        may_reseal: field.caller_may_reseal,
        could_add: field
            .could_add
            .iter()
            .map(|p| PossibleView {
                agency_id: p.agency_id.clone(),
                basis: p.basis.clone(),
            })
            .collect(),
    }
}

fn fields_table(fields: &[SealedFieldReaders]) -> Table {
    let mut table = Table::new(["FIELD", "ID", "READERS", "YOU", "COULD ADD"]);
    for field in fields {
        let you = match (field.caller_can_open, field.caller_may_reseal) {
            (true, true) => "開ける・再封緘できる",
            (true, false) => "開ける",
            _ => "開けない",
        };
        let could_add: Vec<String> = field
            .could_add
            .iter()
            .map(|p| format!("{} ({})", p.agency_id, basis_label(&p.basis)))
            .collect();
        table.row([
            field_label(field).to_owned(),
            short_id(field_id(field)).to_owned(),
            field.readers.join(", "),
            you.to_owned(),
            if could_add.is_empty() {
                "-".to_owned()
            } else {
                could_add.join(", ")
            },
        ]);
    }
    table
}

pub async fn run(ctx: &Context, args: ResealArgs) -> anyhow::Result<()> {
    let hub = ctx.connect().await?;
    let case_id = resolve_case_id(&hub, &args.case_id).await?;
    let fields = reseal::fields(&hub, &case_id).await?;
    if args.to.is_empty() {
        if args.referral.is_some() || args.note.is_some() || args.all {
            bail!("name the agency to add with --to AGENCY");
        }
        if ctx.json() {
            return ctx.print_json(&fields.iter().map(view).collect::<Vec<_>>());
        }
        return ctx.print(&fields_table(&fields).to_string());
    }
    let chosen: Vec<&SealedFieldReaders> = if args.all {
        fields
            .iter()
            .filter(|f| f.caller_may_reseal)
            .filter(|f| {
                args.to
                    .iter()
                    .all(|agency| f.could_add.iter().any(|p| &p.agency_id == agency))
            })
            .collect()
    } else {
        let (kind, id) = match (&args.referral, &args.note) {
            (Some(referral), _) => (SealedFieldKind::ReferralBody, referral.trim()),
            (_, Some(note)) => (SealedFieldKind::NoteBody, note.trim()),
            _ => (SealedFieldKind::CaseHeader, case_id.as_str()),
        };
        let field = fields
            .iter()
            .find(|f| {
                f.field
                    .as_ref()
                    .is_some_and(|r| r.kind() == kind && r.id == id)
            })
            .ok_or_else(|| {
                anyhow!(
                    "case {} has no such field that your agency may see: check the id with \
                     `tsunagu reseal {}`",
                    short_id(&case_id),
                    short_id(&case_id)
                )
            })?;
        vec![field]
    };
    if chosen.is_empty() {
        bail!(
            "nothing on case {} can be re-sealed by your agency for {}: see `tsunagu reseal {}`",
            short_id(&case_id),
            args.to.join(", "),
            short_id(&case_id)
        );
    }
    let identities = ctx.load_identities()?;
    let mut sealer = ctx.sealer(&hub)?;
    let mut done = Vec::new();
    for (index, field) in chosen.into_iter().enumerate() {
        // One key per field: a retry of the whole command re-seals each field once.
        let idempotency_key = match &args.write.idempotency_key {
            Some(key) if index == 0 => key.clone(),
            Some(key) => format!("{key}/{index}"),
            None => String::new(),
        };
        let result = reseal::reseal(
            &hub,
            &mut sealer,
            &identities,
            Reseal {
                field,
                add_readers: &args.to,
                staff: args.write.staff(),
                idempotency_key,
            },
        )
        .await;
        ctx.report_key_notices(&mut sealer);
        let response = result?;
        let after = response
            .field
            .ok_or_else(|| anyhow!("the hub answered without the field"))?;
        done.push(after);
    }
    if ctx.json() {
        return ctx.print_json(&done.iter().map(view).collect::<Vec<_>>());
    }
    let mut text = String::new();
    for field in &done {
        text.push_str(&format!(
            "再封緘しました: {} {} — 開ける機関: {}\n",
            field_label(field),
            short_id(field_id(field)),
            field.readers.join(", ")
        ));
    }
    ctx.print(&text)
}

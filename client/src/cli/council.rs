//! `tsunagu council register|registrations|schedule|meetings|pack|decide`: the 要対協 loop. The
//! coordinator (調整機関) registers cases and schedules meetings; every member renders the
//! meeting pack (Markdown or print-ready HTML) from what its keys open; the coordinator records
//! each case's decision back. キーパーソン and 役割分担・支援計画 are sealed on this machine to
//! every active key of the coordinator and of each council member of the municipality.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use serde::Serialize;
use tsunagu_client::council::readers;
use tsunagu_client::pack::{self, Format, Opener};
use tsunagu_client::render::{Coded, Table, label, short_id};
use tsunagu_client::{Hub, render};
use tsunagu_proto::v1::{
    Agency, CaseCategory, Decision, DecisionOutcome, GetMeetingPackRequest, ListMeetingsRequest,
    ListRegistrationsRequest, Meeting, MeetingKind, RecordDecisionRequest, RegisterCaseRequest,
    Registration, ScheduleMeetingRequest, WhoAmIRequest,
};

use super::Context;
use super::common::{
    CallExt, WriteArgs, get_case, is_full_id, open_sealed, parse_agency, parse_date,
    parse_municipality, read_payload, resolve_case_id, seal_for, unique_short_match,
};
use super::views::{SealedView, StaffView, code, text, time};

pub const EXAMPLES: &str = "\
Examples (the development agencies: aoba-kodomo coordinates 141178 (横浜市青葉区); north-jisou,
aoba-hospital and aoba-nursery sit on its 要対協; aoba-hiroba does not):

  # Register a case with the 要対協 (coordinator), with a sealed キーパーソン
  tsunagu --as aoba-kodomo council register 3f8a51c0 --category requires-support \\
      --lead aoba-kodomo --key-person-text '母方祖母（近隣に在住、協力的）' \\
      --justification '養育支援が必要（産後うつの傾向）'

  # The registrations and meetings of the council, earliest review first
  tsunagu --as aoba-nursery council registrations
  tsunagu --as aoba-kodomo council meetings --municipality 141178 --json

  # Schedule a 実務者会議: every registered case whose review is due by that day
  tsunagu --as aoba-kodomo council schedule --municipality 141178 --kind practitioners \\
      --held-on 2026-04-08
  # A 個別ケース検討会議 on given cases
  tsunagu --as aoba-kodomo council schedule --municipality 141178 --kind individual-case \\
      --held-on 2026-04-10 --case 3f8a51c0

  # The meeting pack, opened with your keys: Markdown, or HTML to print (A4, a page per case)
  tsunagu --as aoba-nursery council pack --meeting 7d0e12ab --format md -o pack.md
  tsunagu --as aoba-kodomo council pack --meeting 7d0e12ab --format html -o pack.html
  chromium --headless --no-pdf-header-footer --print-to-pdf=pack.pdf pack.html
  tsunagu --as aoba-kodomo council pack --meeting 7d0e12ab -o - | less

  # Record the decision on a case (coordinator); the plan is sealed to the council
  tsunagu --as aoba-kodomo council decide --meeting 7d0e12ab --case 3f8a51c0 \\
      --outcome continue --lead aoba-nursery --next-review-on 2026-07-08 \\
      --plan-text '役割分担: 保育園が登園を見守り、保健師が月1回家庭訪問
支援計画: 3か月後に再評価'
  tsunagu --as aoba-kodomo council decide --meeting 7d0e12ab --case 3f8a51c0 \\
      --outcome close --close-reason '支援目標達成'
  tsunagu --as aoba-kodomo council decide --meeting 7d0e12ab --case 3f8a51c0 \\
      --outcome transfer --transfer-to 131016

Ids may be given whole or by their last 8 characters, as the tables show them. A plan's lines
that start with 役割分担 or 支援計画 split it under those headings in the pack.";

#[derive(Debug, Args)]
pub struct CouncilArgs {
    #[command(subcommand)]
    pub command: CouncilCommand,
}

#[derive(Debug, Subcommand)]
pub enum CouncilCommand {
    /// Register a case with the 要対協 of its municipality (coordinator)
    #[command(after_help = EXAMPLES)]
    Register(RegisterArgs),

    /// List the council's registrations, earliest next review first (members)
    #[command(after_help = EXAMPLES)]
    Registrations(RegistrationsArgs),

    /// Schedule a meeting: 実務者会議, 個別ケース検討会議 or 代表者会議 (coordinator)
    #[command(after_help = EXAMPLES)]
    Schedule(ScheduleArgs),

    /// List the council's meetings by day (members)
    #[command(after_help = EXAMPLES)]
    Meetings(MeetingsArgs),

    /// Write a meeting's pack, opened with your keys, as Markdown or print-ready HTML (members)
    #[command(after_help = EXAMPLES)]
    Pack(PackArgs),

    /// Record the council's decision on one case of a meeting (coordinator)
    #[command(after_help = EXAMPLES)]
    Decide(DecideArgs),
}

/// The categories a council registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CouncilCategoryArg {
    /// 要保護児童: a child who needs protection
    RequiresProtection,
    /// 要支援児童: a child who needs support
    RequiresSupport,
    /// 特定妊婦: a pregnant person who needs support before birth
    SpecificExpectantMother,
}

impl From<CouncilCategoryArg> for CaseCategory {
    fn from(arg: CouncilCategoryArg) -> Self {
        match arg {
            CouncilCategoryArg::RequiresProtection => CaseCategory::RequiresProtection,
            CouncilCategoryArg::RequiresSupport => CaseCategory::RequiresSupport,
            CouncilCategoryArg::SpecificExpectantMother => CaseCategory::SpecificExpectantMother,
        }
    }
}

/// The kinds of meeting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MeetingKindArg {
    /// 実務者会議: the periodic review of every registered case due
    Practitioners,
    /// 個別ケース検討会議: the workers on the cases given with --case
    IndividualCase,
    /// 代表者会議: the yearly meeting of the member agencies' heads
    Representatives,
}

impl From<MeetingKindArg> for MeetingKind {
    fn from(arg: MeetingKindArg) -> Self {
        match arg {
            MeetingKindArg::Practitioners => MeetingKind::Practitioners,
            MeetingKindArg::IndividualCase => MeetingKind::IndividualCase,
            MeetingKindArg::Representatives => MeetingKind::Representatives,
        }
    }
}

/// What the council decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutcomeArg {
    /// 継続: the case stays registered until its next review
    Continue,
    /// 終結: the registration ends (give --close-reason)
    Close,
    /// 移管: the case moves to another municipality (give --transfer-to)
    Transfer,
}

impl From<OutcomeArg> for DecisionOutcome {
    fn from(arg: OutcomeArg) -> Self {
        match arg {
            OutcomeArg::Continue => DecisionOutcome::Continue,
            OutcomeArg::Close => DecisionOutcome::Close,
            OutcomeArg::Transfer => DecisionOutcome::Transfer,
        }
    }
}

/// The pack's output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// Japanese Markdown
    #[value(alias = "markdown")]
    Md,
    /// One self-contained HTML page, print-ready on A4 (a page per case)
    #[value(alias = "htm")]
    Html,
}

impl From<FormatArg> for Format {
    fn from(arg: FormatArg) -> Self {
        match arg {
            FormatArg::Md => Format::Markdown,
            FormatArg::Html => Format::Html,
        }
    }
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("key_person").args(["key_person_file", "key_person_text"])))]
pub struct RegisterArgs {
    /// The case id (or its last 8 characters, as the tables show)
    #[arg(value_name = "CASE_ID")]
    pub case_id: String,

    /// Council category (the case takes it too)
    #[arg(long, value_enum)]
    pub category: CouncilCategoryArg,

    /// 主担当機関: a council member of the municipality, or its coordinator
    #[arg(long, value_name = "AGENCY", value_parser = parse_agency)]
    pub lead: String,

    /// キーパーソン as text. Sealed to the council before it leaves this machine
    #[arg(long, value_name = "TEXT")]
    pub key_person_text: Option<String>,

    /// キーパーソン from a file (`-` reads stdin). Sealed to the council
    #[arg(long, value_name = "FILE")]
    pub key_person_file: Option<PathBuf>,

    /// Days between reviews (1..=366) [default: the hub's, 90]
    #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..=366))]
    pub review_interval_days: Option<u32>,

    /// The day of registration, YYYY-MM-DD, not in the future [default: today]
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub registered_on: Option<String>,

    /// The first review, YYYY-MM-DD [default: registered-on plus the interval]
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub next_review_on: Option<String>,

    /// Why the case is registered: a category-level reason of at most 200 characters, e.g.
    /// "養育支援が必要". Stored and shown to every member in the clear: never a name; details go
    /// in the sealed key person or plan
    #[arg(long, value_name = "TEXT")]
    pub justification: String,

    #[command(flatten)]
    pub write: WriteArgs,
}

#[derive(Debug, Args)]
pub struct RegistrationsArgs {
    /// Municipality code [default: the one council you sit on]
    #[arg(long, value_name = "CODE", value_parser = parse_municipality)]
    pub municipality: Option<String>,

    /// Also list closed (終結) and transferred (移管) registrations
    #[arg(long)]
    pub include_closed: bool,
}

#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// Municipality code [default: the one you coordinate]
    #[arg(long, value_name = "CODE", value_parser = parse_municipality)]
    pub municipality: Option<String>,

    /// Kind of meeting
    #[arg(long, value_enum)]
    pub kind: MeetingKindArg,

    /// The meeting day, YYYY-MM-DD
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub held_on: String,

    /// A case on the agenda (repeatable, in order). Without any: every registered case whose
    /// review is due by the meeting day (a 個別ケース検討会議 needs them given)
    #[arg(long = "case", value_name = "CASE_ID")]
    pub cases: Vec<String>,

    #[command(flatten)]
    pub write: WriteArgs,
}

#[derive(Debug, Args)]
pub struct MeetingsArgs {
    /// Municipality code [default: the one council you sit on]
    #[arg(long, value_name = "CODE", value_parser = parse_municipality)]
    pub municipality: Option<String>,
}

#[derive(Debug, Args)]
pub struct PackArgs {
    /// The meeting id (or its last 8 characters, as `council meetings` shows)
    #[arg(long, value_name = "MEETING_ID")]
    pub meeting: String,

    /// Output format [default: from the file's extension, else md]
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,

    /// Where to write the pack (created readable by you only); `-` for stdout. It holds what
    /// your keys open: names and notes
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: PathBuf,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("plan").args(["plan_file", "plan_text"])))]
pub struct DecideArgs {
    /// The meeting id (or its last 8 characters)
    #[arg(long, value_name = "MEETING_ID")]
    pub meeting: String,

    /// The case on the meeting's agenda (or its last 8 characters)
    #[arg(long = "case", value_name = "CASE_ID")]
    pub case_id: String,

    /// What the council decided
    #[arg(long, value_enum)]
    pub outcome: OutcomeArg,

    /// Why the case is closed (required for close, optional for transfer): a category-level
    /// reason of at most 200 characters, e.g. "支援終結: 養育状況が安定". Stored in the clear: never
    /// a name
    #[arg(long, value_name = "TEXT")]
    pub close_reason: Option<String>,

    /// The municipality code the case moves to (transfer)
    #[arg(long, value_name = "CODE", value_parser = parse_municipality)]
    pub transfer_to: Option<String>,

    /// 主担当機関 from now on [default: unchanged]
    #[arg(long, value_name = "AGENCY", value_parser = parse_agency)]
    pub lead: Option<String>,

    /// 役割分担 and 支援計画 as text. Sealed to the council before it leaves this machine
    #[arg(long, value_name = "TEXT")]
    pub plan_text: Option<String>,

    /// 役割分担 and 支援計画 from a file (`-` reads stdin). Sealed to the council
    #[arg(long, value_name = "FILE")]
    pub plan_file: Option<PathBuf>,

    /// For continue: the next review, YYYY-MM-DD after the meeting [default: the meeting day
    /// plus the review interval]
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub next_review_on: Option<String>,

    #[command(flatten)]
    pub write: WriteArgs,
}

pub async fn run(ctx: &Context, args: CouncilArgs) -> anyhow::Result<()> {
    match args.command {
        CouncilCommand::Register(args) => register(ctx, args).await,
        CouncilCommand::Registrations(args) => registrations(ctx, args).await,
        CouncilCommand::Schedule(args) => schedule(ctx, args).await,
        CouncilCommand::Meetings(args) => meetings(ctx, args).await,
        CouncilCommand::Pack(args) => pack_command(ctx, args).await,
        CouncilCommand::Decide(args) => decide(ctx, args).await,
    }
}

// ---- JSON shapes ----

/// A registration, as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct RegistrationView {
    pub case_id: String,
    pub municipality: String,
    pub category: Option<&'static str>,
    pub registered_on: String,
    pub lead_agency: String,
    pub key_person: Option<SealedView>,
    pub review_interval_days: u32,
    pub next_review_on: String,
    pub last_reviewed_on: Option<String>,
    pub status: Option<&'static str>,
    pub close_reason: Option<String>,
    pub transferred_to: Option<String>,
    pub ended_on: Option<String>,
    pub justification: Option<String>,
    pub registered_by: String,
    pub updated_at: Option<String>,
}

impl RegistrationView {
    fn of(ctx: &Context, r: &Registration) -> Self {
        RegistrationView {
            case_id: r.case_id.clone(),
            municipality: r.municipality.clone(),
            category: code(r.category()),
            registered_on: r.registered_on.clone(),
            lead_agency: r.lead_agency.clone(),
            key_person: open_sealed(ctx, r.key_person.as_ref()).view(false),
            review_interval_days: r.review_interval_days,
            next_review_on: r.next_review_on.clone(),
            last_reviewed_on: text(&r.last_reviewed_on),
            status: code(r.status()),
            close_reason: text(&r.close_reason),
            transferred_to: text(&r.transferred_to),
            ended_on: text(&r.ended_on),
            justification: text(&r.justification),
            registered_by: r.registered_by.clone(),
            updated_at: time(r.updated_at.as_ref()),
        }
    }
}

/// A meeting, as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct MeetingView {
    pub meeting_id: String,
    pub municipality: String,
    pub kind: Option<&'static str>,
    pub held_on: String,
    pub case_ids: Vec<String>,
    /// How many cases are on the agenda (0 when no review was due by `held_on`).
    pub case_count: usize,
    pub scheduled_at: Option<String>,
    pub scheduled_by: String,
}

impl From<&Meeting> for MeetingView {
    fn from(m: &Meeting) -> Self {
        MeetingView {
            meeting_id: m.meeting_id.clone(),
            municipality: m.municipality.clone(),
            kind: code(m.kind()),
            held_on: m.held_on.clone(),
            case_ids: m.case_ids.clone(),
            case_count: m.case_ids.len(),
            scheduled_at: time(m.scheduled_at.as_ref()),
            scheduled_by: m.scheduled_by.clone(),
        }
    }
}

/// A decision with the registration after it, as `council decide --json` prints it.
#[derive(Debug, Serialize)]
pub struct DecisionView {
    pub decision_id: String,
    pub meeting_id: String,
    pub case_id: String,
    pub outcome: Option<&'static str>,
    pub close_reason: Option<String>,
    pub transfer_to: Option<String>,
    pub lead_agency: String,
    pub plan: Option<SealedView>,
    pub next_review_on: Option<String>,
    pub held_on: String,
    pub decided_at: Option<String>,
    pub decided_by: String,
    pub staff: Option<StaffView>,
    pub registration: Option<RegistrationView>,
}

impl DecisionView {
    fn of(ctx: &Context, d: &Decision, registration: Option<&Registration>) -> Self {
        DecisionView {
            decision_id: d.decision_id.clone(),
            meeting_id: d.meeting_id.clone(),
            case_id: d.case_id.clone(),
            outcome: code(d.outcome()),
            close_reason: text(&d.close_reason),
            transfer_to: text(&d.transfer_to),
            lead_agency: d.lead_agency.clone(),
            plan: open_sealed(ctx, d.plan.as_ref()).view(false),
            next_review_on: text(&d.next_review_on),
            held_on: d.held_on.clone(),
            decided_at: time(d.decided_at.as_ref()),
            decided_by: d.decided_by.clone(),
            staff: StaffView::of(d.staff.as_ref()),
            registration: registration.map(|r| RegistrationView::of(ctx, r)),
        }
    }
}

/// What `council pack --json` prints about the file it wrote.
#[derive(Debug, Serialize)]
struct PackWritten {
    meeting_id: String,
    kind: Option<&'static str>,
    held_on: String,
    format: &'static str,
    path: String,
    cases: usize,
    /// Sealed fields this agency's keys did not open.
    unreadable: usize,
}

// ---- Tables ----

/// The registrations table.
pub fn registrations_table(ctx: &Context, registrations: &[Registration]) -> Table {
    let mut table = Table::new([
        "CASE",
        "CATEGORY",
        "REGISTERED",
        "LEAD",
        "LAST REVIEW",
        "NEXT REVIEW",
        "EVERY",
        "STATUS",
        "KEY PERSON",
    ]);
    for r in registrations {
        let mut status = label(r.status());
        if !r.close_reason.is_empty() {
            status.push_str(&format!(": {}", r.close_reason));
        }
        if !r.transferred_to.is_empty() {
            status.push_str(&format!(" → {}", r.transferred_to));
        }
        table.row([
            short_id(&r.case_id).to_owned(),
            label(r.category()),
            r.registered_on.clone(),
            r.lead_agency.clone(),
            dash(&r.last_reviewed_on),
            r.next_review_on.clone(),
            format!("{}d", r.review_interval_days),
            status,
            open_sealed(ctx, r.key_person.as_ref()).status(),
        ]);
    }
    table
}

/// The meetings table.
pub fn meetings_table(meetings: &[Meeting]) -> Table {
    let mut table = Table::new(["MEETING", "HELD ON", "KIND", "CASES", "SCHEDULED BY"]);
    for m in meetings {
        table.row([
            short_id(&m.meeting_id).to_owned(),
            m.held_on.clone(),
            label(m.kind()),
            m.case_ids.len().to_string(),
            m.scheduled_by.clone(),
        ]);
    }
    table
}

fn dash(text: &str) -> String {
    if text.is_empty() {
        "-".to_owned()
    } else {
        text.to_owned()
    }
}

// ---- Finding the council, meetings and cases ----

/// Who the hub takes the caller to be.
async fn whoami(hub: &Hub) -> anyhow::Result<Agency> {
    hub.directory()
        .who_am_i(WhoAmIRequest {})
        .await
        .answer(hub)?
        .agency
        .ok_or_else(|| anyhow!("the hub did not say who this agency is"))
}

/// The municipalities whose council the agency sits on or coordinates, each once.
fn councils_of(agency: &Agency) -> Vec<String> {
    let mut codes: Vec<String> = agency
        .coordinator_of
        .iter()
        .chain(&agency.council_memberships)
        .cloned()
        .collect();
    codes.sort();
    codes.dedup();
    codes
}

/// The municipality given, or the only one in `candidates`.
fn one_municipality(
    given: Option<String>,
    candidates: &[String],
    agency: &str,
    role: &str,
) -> anyhow::Result<String> {
    if let Some(given) = given {
        return Ok(given);
    }
    match candidates {
        [one] => Ok(one.clone()),
        [] => bail!("agency {agency} is not {role} of any 要対協: give --municipality"),
        many => bail!(
            "agency {agency} is {role} of several councils ({}): give --municipality",
            many.join(", ")
        ),
    }
}

/// Every meeting of the councils the agency sits on.
async fn my_meetings(hub: &Hub, agency: &Agency) -> anyhow::Result<Vec<Meeting>> {
    let mut meetings = Vec::new();
    for municipality in councils_of(agency) {
        meetings.extend(
            hub.council()
                .list_meetings(ListMeetingsRequest { municipality })
                .await
                .answer(hub)?
                .meetings,
        );
    }
    Ok(meetings)
}

/// The meeting a whole id or a short form names, among the meetings of the caller's councils.
async fn find_meeting(hub: &Hub, agency: &Agency, text: &str) -> anyhow::Result<Meeting> {
    let text = text.trim();
    if councils_of(agency).is_empty() {
        bail!(
            "agency {} sits on no 要対協: only a council's members see its meetings and packs",
            agency.agency_id
        );
    }
    let meetings = my_meetings(hub, agency).await?;
    let id = if is_full_id(text) {
        text.to_owned()
    } else {
        unique_short_match(
            "meeting",
            text,
            meetings.iter().map(|m| m.meeting_id.as_str()),
            "tsunagu council meetings",
        )?
    };
    meetings
        .into_iter()
        .find(|m| m.meeting_id.eq_ignore_ascii_case(&id))
        .ok_or_else(|| {
            anyhow!(
                "meeting {id} is not a meeting of a 要対協 agency {} sits on (see `tsunagu \
                 council meetings`)",
                agency.agency_id
            )
        })
}

/// A meeting id for reading its pack: a whole id as is (the hub decides who may read it), a
/// short form looked up among the caller's councils' meetings.
async fn meeting_id_for_pack(hub: &Hub, text: &str) -> anyhow::Result<String> {
    let text = text.trim();
    if is_full_id(text) {
        return Ok(text.to_owned());
    }
    let agency = whoami(hub).await?;
    Ok(find_meeting(hub, &agency, text).await?.meeting_id)
}

/// Seals a council field (キーパーソン, plan) about `case_id` to the coordinator and every council
/// member of `municipality`, and the caller's own agency.
async fn seal_for_council(
    ctx: &Context,
    hub: &Hub,
    plaintext: &[u8],
    municipality: &str,
    case_id: &str,
    retry_key: Option<&str>,
) -> anyhow::Result<tsunagu_proto::v1::Sealed> {
    let case = get_case(hub, case_id).await?;
    let council = readers(hub, municipality).await?;
    let council: Vec<&str> = council.iter().map(String::as_str).collect();
    let mut sealer = ctx.sealer(hub)?;
    seal_for(
        ctx,
        &mut sealer,
        plaintext,
        &council,
        Some(&case),
        retry_key,
    )
    .await
}

// ---- The subcommands ----

async fn register(ctx: &Context, args: RegisterArgs) -> anyhow::Result<()> {
    let key_person = read_payload(
        args.key_person_file.as_deref(),
        args.key_person_text.as_deref(),
    )?;
    let hub = ctx.connect().await?;
    let case_id = resolve_case_id(&hub, &args.case_id).await?;
    let case = get_case(&hub, &case_id).await?;
    let key_person = match key_person {
        Some(plaintext) => Some(
            seal_for_council(
                ctx,
                &hub,
                &plaintext,
                &case.municipality,
                &case_id,
                args.write.idempotency_key.as_deref(),
            )
            .await
            .context("sealing the key person (キーパーソン)")?,
        ),
        None => None,
    };
    let registration = hub
        .council()
        .register_case(RegisterCaseRequest {
            case_id,
            category: CaseCategory::from(args.category).into(),
            registered_on: args.registered_on.unwrap_or_default(),
            lead_agency: args.lead,
            key_person,
            review_interval_days: args.review_interval_days.unwrap_or(0),
            next_review_on: args.next_review_on.unwrap_or_default(),
            justification: args.justification,
            staff: Some(args.write.staff()),
            idempotency_key: args.write.idempotency_key(),
        })
        .await
        .answer(&hub)?
        .registration
        .ok_or_else(|| anyhow!("the hub answered without the registration"))?;
    if ctx.json() {
        return ctx.print_json(&RegistrationView::of(ctx, &registration));
    }
    ctx.print(&format!(
        "registered case {} with the 要対協 of {}: {}, lead {}, registered {}, next review {} \
         (every {} days){}\n",
        registration.case_id,
        registration.municipality,
        label(registration.category()),
        registration.lead_agency,
        registration.registered_on,
        registration.next_review_on,
        registration.review_interval_days,
        if registration.key_person.is_some() {
            ", key person sealed to the council"
        } else {
            ""
        }
    ))
}

async fn registrations(ctx: &Context, args: RegistrationsArgs) -> anyhow::Result<()> {
    let hub = ctx.connect().await?;
    let municipality = match args.municipality {
        Some(code) => code,
        None => {
            let me = whoami(&hub).await?;
            one_municipality(None, &councils_of(&me), &me.agency_id, "a member")?
        }
    };
    let list = hub
        .council()
        .list_registrations(ListRegistrationsRequest {
            municipality,
            include_closed: args.include_closed,
        })
        .await
        .answer(&hub)?
        .registrations;
    if ctx.json() {
        let views: Vec<RegistrationView> =
            list.iter().map(|r| RegistrationView::of(ctx, r)).collect();
        return ctx.print_json(&views);
    }
    if list.is_empty() {
        eprintln!("no registrations");
        return Ok(());
    }
    ctx.print(&registrations_table(ctx, &list).to_string())
}

async fn schedule(ctx: &Context, args: ScheduleArgs) -> anyhow::Result<()> {
    let hub = ctx.connect().await?;
    let municipality = match args.municipality {
        Some(code) => code,
        None => {
            let me = whoami(&hub).await?;
            one_municipality(None, &me.coordinator_of, &me.agency_id, "the coordinator")?
        }
    };
    let mut case_ids = Vec::with_capacity(args.cases.len());
    for case in &args.cases {
        case_ids.push(resolve_case_id(&hub, case).await?);
    }
    let meeting = hub
        .council()
        .schedule_meeting(ScheduleMeetingRequest {
            municipality,
            kind: MeetingKind::from(args.kind).into(),
            held_on: args.held_on,
            case_ids,
            staff: Some(args.write.staff()),
            idempotency_key: args.write.idempotency_key(),
        })
        .await
        .answer(&hub)?
        .meeting
        .ok_or_else(|| anyhow!("the hub answered without the meeting"))?;
    if ctx.json() {
        return ctx.print_json(&MeetingView::from(&meeting));
    }
    let mut out = format!(
        "scheduled {} {} on {} for the 要対協 of {}: {} case(s) on the agenda\n",
        meeting.kind().japanese(),
        meeting.meeting_id,
        meeting.held_on,
        meeting.municipality,
        meeting.case_ids.len()
    );
    for (i, case) in meeting.case_ids.iter().enumerate() {
        out.push_str(&format!("  {:>3}. {}\n", i + 1, case));
    }
    if meeting.case_ids.is_empty() {
        out.push_str(&format!(
            "no registration's review is due by {}: a case is due once its next review day \
             (登録日 + the review interval, 90 days unless set; see `tsunagu council \
             registrations`) has come. Name cases with --case to take them up anyway.\n",
            meeting.held_on
        ));
    }
    out.push_str(&format!(
        "pack: tsunagu council pack --meeting {} --format html -o pack.html\n",
        short_id(&meeting.meeting_id)
    ));
    ctx.print(&out)
}

async fn meetings(ctx: &Context, args: MeetingsArgs) -> anyhow::Result<()> {
    let hub = ctx.connect().await?;
    let municipality = match args.municipality {
        Some(code) => code,
        None => {
            let me = whoami(&hub).await?;
            one_municipality(None, &councils_of(&me), &me.agency_id, "a member")?
        }
    };
    let list = hub
        .council()
        .list_meetings(ListMeetingsRequest { municipality })
        .await
        .answer(&hub)?
        .meetings;
    if ctx.json() {
        let views: Vec<MeetingView> = list.iter().map(MeetingView::from).collect();
        return ctx.print_json(&views);
    }
    if list.is_empty() {
        eprintln!("no meetings");
        return Ok(());
    }
    ctx.print(&meetings_table(&list).to_string())
}

/// The format asked for, else the one the file's extension names, else Markdown.
pub fn pack_format(asked: Option<FormatArg>, output: &Path) -> Format {
    asked
        .map(Format::from)
        .or_else(|| Format::from_path(output))
        .unwrap_or(Format::Markdown)
}

/// Writes `bytes` to a new or truncated file readable and writable by its owner only: a pack
/// holds what the reader's keys opened (names, notes).
fn write_private_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    // An existing file keeps its mode through truncation: narrow it too.
    #[cfg(unix)]
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .with_context(|| format!("cannot restrict {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

async fn pack_command(ctx: &Context, args: PackArgs) -> anyhow::Result<()> {
    let format = pack_format(args.format, &args.output);
    let hub = ctx.connect().await?;
    let meeting_id = meeting_id_for_pack(&hub, &args.meeting).await?;
    let response = hub
        .council()
        .get_meeting_pack(GetMeetingPackRequest { meeting_id })
        .await
        .answer(&hub)?;
    let identities = match ctx.load_identities() {
        Ok(identities) => identities,
        Err(error) => {
            eprintln!(
                "warning: no age identity to open the pack with ({error}); every sealed field \
                 shows as {}",
                pack::UNREADABLE
            );
            Vec::new()
        }
    };
    let mut view = pack::build(&response, &Opener::new(&identities));
    if let Ok(me) = whoami(&hub).await {
        view.reader = Some(if me.display_name.is_empty() {
            me.agency_id
        } else {
            format!("{}（{}）", me.display_name, me.agency_id)
        });
    }
    let rendered = pack::render(&view, format);
    let to_stdout = args.output == Path::new("-");
    if to_stdout {
        ctx.print(&rendered)?;
    } else {
        write_private_file(&args.output, rendered.as_bytes())?;
    }
    let written = PackWritten {
        meeting_id: view.meeting_id.clone(),
        kind: code(view.kind),
        held_on: view.held_on.clone(),
        format: format.extension(),
        path: args.output.display().to_string(),
        cases: view.cases.len(),
        unreadable: view.unreadable,
    };
    if ctx.json() && !to_stdout {
        return ctx.print_json(&written);
    }
    let what = format!(
        "{} {} of {}: {} case(s), {} sealed item(s) your keys do not open",
        render::Coded::japanese(view.kind),
        view.held_on,
        view.municipality,
        written.cases,
        written.unreadable
    );
    if to_stdout {
        eprintln!("{what}");
        Ok(())
    } else {
        ctx.print(&format!("wrote {} ({what})\n", args.output.display()))
    }
}

async fn decide(ctx: &Context, args: DecideArgs) -> anyhow::Result<()> {
    let outcome = DecisionOutcome::from(args.outcome);
    match args.outcome {
        OutcomeArg::Close
            if args
                .close_reason
                .as_deref()
                .is_none_or(|r| r.trim().is_empty()) =>
        {
            bail!("--outcome close needs --close-reason: why the case is closed (終結)")
        }
        OutcomeArg::Transfer if args.transfer_to.is_none() => {
            bail!("--outcome transfer needs --transfer-to: the municipality code it moves to")
        }
        OutcomeArg::Continue if args.close_reason.is_some() || args.transfer_to.is_some() => {
            bail!("--close-reason and --transfer-to are not for --outcome continue")
        }
        OutcomeArg::Close | OutcomeArg::Transfer if args.next_review_on.is_some() => {
            bail!("--next-review-on is only for --outcome continue")
        }
        OutcomeArg::Close if args.transfer_to.is_some() => {
            bail!("--transfer-to is only for --outcome transfer")
        }
        _ => {}
    }
    let plan = read_payload(args.plan_file.as_deref(), args.plan_text.as_deref())?;
    let hub = ctx.connect().await?;
    let me = whoami(&hub).await?;
    let meeting = find_meeting(&hub, &me, &args.meeting).await?;
    let case_id = unique_short_match(
        "case on this meeting's agenda",
        args.case_id.trim(),
        meeting.case_ids.iter().map(String::as_str),
        "tsunagu council meetings --json",
    )?;
    let plan = match plan {
        Some(plaintext) => Some(
            seal_for_council(
                ctx,
                &hub,
                &plaintext,
                &meeting.municipality,
                &case_id,
                args.write.idempotency_key.as_deref(),
            )
            .await
            .context("sealing the plan (役割分担・支援計画)")?,
        ),
        None => None,
    };
    let answer = hub
        .council()
        .record_decision(RecordDecisionRequest {
            meeting_id: meeting.meeting_id.clone(),
            case_id,
            outcome: outcome.into(),
            close_reason: args.close_reason.unwrap_or_default(),
            transfer_to: args.transfer_to.unwrap_or_default(),
            lead_agency: args.lead.unwrap_or_default(),
            plan,
            next_review_on: args.next_review_on.unwrap_or_default(),
            staff: Some(args.write.staff()),
            idempotency_key: args.write.idempotency_key(),
        })
        .await
        .answer(&hub)?;
    let decision = answer
        .decision
        .ok_or_else(|| anyhow!("the hub answered without the decision"))?;
    if ctx.json() {
        return ctx.print_json(&DecisionView::of(
            ctx,
            &decision,
            answer.registration.as_ref(),
        ));
    }
    let after = match decision.outcome() {
        DecisionOutcome::Continue => format!("next review {}", decision.next_review_on),
        DecisionOutcome::Close => format!("closed: {}", decision.close_reason),
        DecisionOutcome::Transfer => format!("transferred to {}", decision.transfer_to),
        DecisionOutcome::Unspecified => "-".to_owned(),
    };
    ctx.print(&format!(
        "recorded the decision of the {} meeting on case {}: {}, lead {}, {after}{}\n",
        meeting.held_on,
        decision.case_id,
        label(decision.outcome()),
        decision.lead_agency,
        if decision.plan.is_some() {
            "; plan sealed to the council"
        } else {
            ""
        }
    ))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn parse(args: &[&str]) -> Result<CouncilCommand, clap::Error> {
        let mut full = vec!["tsunagu", "council"];
        full.extend(args);
        Cli::try_parse_from(full).map(|cli| match cli.command {
            Command::Council(CouncilArgs { command }) => command,
            _ => panic!("not a council command"),
        })
    }

    #[test]
    fn council_register_turns_its_words_into_the_contract() {
        let CouncilCommand::Register(args) = parse(&[
            "register",
            "3f8a51c0",
            "--category",
            "specific-expectant-mother",
            "--lead",
            "aoba-kodomo",
            "--key-person-text",
            "祖母",
            "--review-interval-days",
            "30",
            "--justification",
            "理由",
        ])
        .unwrap() else {
            panic!("not register");
        };
        assert_eq!(
            CaseCategory::from(args.category),
            CaseCategory::SpecificExpectantMother
        );
        assert_eq!(args.review_interval_days, Some(30));
        assert_eq!(args.key_person_text.as_deref(), Some("祖母"));
    }

    #[test]
    fn a_council_registration_cannot_be_general_and_needs_a_justification() {
        let base = ["register", "x", "--lead", "aoba-kodomo"];
        let mut general = base.to_vec();
        general.extend(["--category", "general", "--justification", "j"]);
        assert!(parse(&general).is_err());
        let mut without = base.to_vec();
        without.extend(["--category", "requires-support"]);
        assert!(parse(&without).is_err());
        let mut too_long = base.to_vec();
        too_long.extend([
            "--category",
            "requires-support",
            "--justification",
            "j",
            "--review-interval-days",
            "400",
        ]);
        assert!(parse(&too_long).is_err());
    }

    #[test]
    fn a_meeting_kind_and_its_cases_are_parsed_in_order() {
        let CouncilCommand::Schedule(args) = parse(&[
            "schedule",
            "--municipality",
            "141178",
            "--kind",
            "individual-case",
            "--held-on",
            "2026-04-10",
            "--case",
            "aaaa1111",
            "--case",
            "bbbb2222",
        ])
        .unwrap() else {
            panic!("not schedule");
        };
        assert_eq!(MeetingKind::from(args.kind), MeetingKind::IndividualCase);
        assert_eq!(args.cases, vec!["aaaa1111", "bbbb2222"]);
        assert!(
            parse(&[
                "schedule",
                "--kind",
                "practitioners",
                "--held-on",
                "2026-02-30"
            ])
            .is_err()
        );
    }

    #[test]
    fn the_pack_format_comes_from_the_flag_then_the_extension() {
        assert_eq!(
            pack_format(Some(FormatArg::Html), Path::new("x.md")),
            Format::Html
        );
        assert_eq!(pack_format(None, Path::new("pack.html")), Format::Html);
        assert_eq!(pack_format(None, Path::new("-")), Format::Markdown);
        let CouncilCommand::Pack(args) = parse(&[
            "pack",
            "--meeting",
            "7d0e12ab",
            "--format",
            "markdown",
            "-o",
            "-",
        ])
        .unwrap() else {
            panic!("not pack");
        };
        assert_eq!(args.format, Some(FormatArg::Md));
        assert!(
            parse(&["pack", "--meeting", "7d0e12ab"]).is_err(),
            "-o is required"
        );
    }

    #[test]
    fn a_plan_comes_from_a_file_or_text_not_both() {
        let base = [
            "decide",
            "--meeting",
            "m",
            "--case",
            "c",
            "--outcome",
            "continue",
        ];
        let mut both = base.to_vec();
        both.extend(["--plan-text", "t", "--plan-file", "f"]);
        assert!(parse(&both).is_err());
        let mut text = base.to_vec();
        text.extend(["--plan-text", "役割分担: …", "--lead", "aoba-nursery"]);
        let CouncilCommand::Decide(args) = parse(&text).unwrap() else {
            panic!("not decide");
        };
        assert_eq!(
            DecisionOutcome::from(args.outcome),
            DecisionOutcome::Continue
        );
        assert_eq!(args.lead.as_deref(), Some("aoba-nursery"));
    }

    #[test]
    fn the_default_municipality_is_the_only_council_or_a_question() {
        let one = vec!["141178".to_owned()];
        assert_eq!(
            one_municipality(None, &one, "aoba-kodomo", "a member").unwrap(),
            "141178"
        );
        let err = one_municipality(None, &[], "aoba-hiroba", "a member").unwrap_err();
        assert!(err.to_string().contains("--municipality"), "{err}");
        let two = vec!["131016".to_owned(), "141178".to_owned()];
        let err = one_municipality(None, &two, "x", "a member").unwrap_err();
        assert!(err.to_string().contains("131016, 141178"), "{err}");
        assert_eq!(
            one_municipality(Some("131016".into()), &one, "x", "a member").unwrap(),
            "131016"
        );
    }

    #[test]
    fn the_meetings_table_shows_short_ids_and_kinds() {
        let meeting = Meeting {
            meeting_id: "0190f3a2-7b1c-7def-8000-00009c41e7d2".into(),
            municipality: "141178".into(),
            kind: MeetingKind::Practitioners.into(),
            held_on: "2026-04-08".into(),
            case_ids: vec!["a".into(), "b".into()],
            scheduled_at: None,
            scheduled_by: "aoba-kodomo".into(),
        };
        let text = meetings_table(&[meeting]).to_string();
        assert!(
            text.contains("9c41e7d2  2026-04-08  practitioners (実務者会議)  2"),
            "{text}"
        );
    }
}

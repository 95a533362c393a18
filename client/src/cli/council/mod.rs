//! `tsunagu council register|registrations|schedule|meetings|pack|decide`: the 要対協 loop. The
//! coordinator (調整機関) registers cases and schedules meetings; every member renders the
//! meeting pack (Markdown or print-ready HTML) from what its keys open; the coordinator records
//! each case's decision back. キーパーソン and 役割分担・支援計画 are sealed on this machine to
//! every active key of the coordinator and of each council member of the municipality.
//!
//! This module holds the command line (arguments, examples, dispatch); what each subcommand
//! does is in `actions`, and the JSON shapes and tables it prints are in `views`.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use tsunagu_client::pack::Format;
use tsunagu_proto::v1::{CaseCategory, DecisionOutcome, MeetingKind};

use super::Context;
use super::common::{WriteArgs, parse_agency, parse_date, parse_municipality};

mod actions;
mod views;

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
        CouncilCommand::Register(args) => actions::register(ctx, args).await,
        CouncilCommand::Registrations(args) => actions::registrations(ctx, args).await,
        CouncilCommand::Schedule(args) => actions::schedule(ctx, args).await,
        CouncilCommand::Meetings(args) => actions::meetings(ctx, args).await,
        CouncilCommand::Pack(args) => actions::pack_command(ctx, args).await,
        CouncilCommand::Decide(args) => actions::decide(ctx, args).await,
    }
}

#[cfg(test)]
mod tests;

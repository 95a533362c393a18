//! `tsunagu outcomes`: did the families referred connect? Counts and durations of your referrals
//! (a coordinator: the municipality's) as a Japanese table, `--json` or `--csv` for Excel, and
//! `outcomes report` for the 代表者会議 (Markdown or print-ready A4 HTML, small counts suppressed).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use tsunagu_client::outcomes::report::{self, DEFAULT_SUPPRESS_BELOW, ReportInput};
use tsunagu_client::outcomes::{self, OutcomesView, parse_dimension};
use tsunagu_client::render::format_japan_time;
use tsunagu_proto::v1::{GetOutcomesRequest, GetOutcomesResponse, OutcomeDimension, WhoAmIRequest};

use super::Context;
use super::common::{CallExt, parse_date, parse_municipality, today_in_japan, write_output};

pub const EXAMPLES: &str = "\
Examples:
  # This year so far, in total
  tsunagu --as aoba-kodomo outcomes --from $(date +%Y)-01-01

  # By recipient and purpose, as a table, as JSON, and as CSV for Excel
  tsunagu --as aoba-kodomo outcomes --from $(date +%Y)-01-01 --by recipient,purpose
  tsunagu --as aoba-kodomo outcomes --from $(date +%Y)-01-01 --by month --json
  tsunagu --as aoba-kodomo outcomes --from $(date +%Y)-01-01 --by recipient-kind --csv > outcomes.csv

  # For readers outside the coordinator's office: counts of 1 to 4 shown as *
  tsunagu --as aoba-kodomo outcomes --from $(date +%Y)-01-01 --by purpose --suppress-below 5

  # The 代表者会議's annual report, print-ready A4 (counts below 5 suppressed by default)
  tsunagu --as aoba-kodomo outcomes report --year $(date +%Y) --format html --out outcomes.html
  tsunagu --as aoba-kodomo outcomes report --year $(date +%Y) --format md

Groupings (--by, comma-separated, in order): sender, recipient, recipient_kind, purpose,
urgency, legal_basis, month.";

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct OutcomesArgs {
    #[command(subcommand)]
    pub command: Option<OutcomesCommand>,

    #[command(flatten)]
    pub figures: FiguresArgs,
}

#[derive(Debug, Subcommand)]
pub enum OutcomesCommand {
    /// The 代表者会議's annual report: the figures by month and by agency kind, Markdown or A4 HTML
    Report(ReportArgs),
}

#[derive(Debug, Args)]
pub struct FiguresArgs {
    /// First sent date counted, in Japan (YYYY-MM-DD) [default: 1 January this year]
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub from: Option<String>,

    /// Last sent date counted, inclusive (YYYY-MM-DD) [default: today]
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub to: Option<String>,

    /// Group by these, comma-separated: sender, recipient, recipient_kind, purpose, urgency,
    /// legal_basis, month
    #[arg(long = "by", value_name = "GROUPS", value_delimiter = ',', value_parser = parse_dimension)]
    pub by: Vec<OutcomeDimension>,

    /// Show counts from 1 to N-1 as `*` (for readers outside the coordinator's office)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=100))]
    pub suppress_below: Option<u32>,

    /// For a coordinator: only this municipality [default: every one you coordinate, or your own
    /// referrals]
    #[arg(long, value_name = "CODE", value_parser = parse_municipality)]
    pub municipality: Option<String>,

    /// Print CSV for Excel (UTF-8 with BOM, CRLF) instead of a table
    #[arg(long, conflicts_with = "json")]
    pub csv: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ReportFormat {
    Html,
    Md,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The year reported (sent dates 1 January to 31 December, Japan time)
    #[arg(long, value_name = "YEAR", value_parser = clap::value_parser!(i32).range(2000..=2100))]
    pub year: i32,

    /// The fiscal year (年度) instead: 1 April YEAR to 31 March YEAR+1
    #[arg(long)]
    pub fiscal: bool,

    /// Output format
    #[arg(long, value_enum, default_value = "html")]
    pub format: ReportFormat,

    /// Write to this file instead of stdout
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// Suppress counts from 1 to N-1 (0: none, for internal use only)
    #[arg(long, value_name = "N", default_value_t = DEFAULT_SUPPRESS_BELOW,
          value_parser = clap::value_parser!(u32).range(0..=100))]
    pub suppress_below: u32,

    /// For a coordinator: only this municipality
    #[arg(long, value_name = "CODE", value_parser = parse_municipality)]
    pub municipality: Option<String>,
}

pub async fn run(ctx: &Context, args: OutcomesArgs) -> anyhow::Result<()> {
    match args.command {
        Some(OutcomesCommand::Report(report)) => run_report(ctx, report).await,
        None => run_figures(ctx, args.figures).await,
    }
}

async fn fetch(ctx: &Context, request: GetOutcomesRequest) -> anyhow::Result<GetOutcomesResponse> {
    let hub = ctx.connect().await?;
    Ok(hub.outcomes().get_outcomes(request).await.answer(&hub)?)
}

async fn run_figures(ctx: &Context, args: FiguresArgs) -> anyhow::Result<()> {
    let today = today_in_japan();
    let from = args
        .from
        .unwrap_or_else(|| format!("{}-01-01", &today[..4]));
    let to = args.to.unwrap_or(today);
    let answer = fetch(
        ctx,
        GetOutcomesRequest {
            from,
            to,
            group_by: args.by.iter().map(|d| *d as i32).collect(),
            suppress_below: args.suppress_below.unwrap_or(0),
            municipality: args.municipality.unwrap_or_default(),
        },
    )
    .await?;
    if ctx.json() {
        return ctx.print_json(&OutcomesView::new(&answer, &args.by));
    }
    if args.csv {
        return write_output(std::path::Path::new("-"), &outcomes::csv(&answer, &args.by));
    }
    let scope = if answer.municipalities.is_empty() {
        "あなたの機関が送付・受理した紹介".to_owned()
    } else {
        format!("市区町村 {} の紹介", answer.municipalities.join(", "))
    };
    let mut text = format!(
        "成果: {scope}（送付日 {} 〜 {}）\n\n",
        answer.from, answer.to
    );
    text.push_str(&outcomes::table(&answer, &args.by).to_string());
    if answer.suppress_below > 0 {
        text.push_str(&format!(
            "\n{} = 1〜{}件のため秘匿\n",
            outcomes::MARKER,
            answer.suppress_below - 1
        ));
    }
    text.push_str(
        "\n家族単位: 他機関へ紹介された一連の紹介を一つの経過として数え、最後の紹介でつながったものを数えます。\n",
    );
    ctx.print(&text)
}

async fn run_report(ctx: &Context, args: ReportArgs) -> anyhow::Result<()> {
    let (from, to, period) = if args.fiscal {
        (
            format!("{}-04-01", args.year),
            format!("{}-03-31", args.year + 1),
            format!(
                "{}年度（{}年4月〜{}年3月）",
                args.year,
                args.year,
                args.year + 1
            ),
        )
    } else {
        (
            format!("{}-01-01", args.year),
            format!("{}-12-31", args.year),
            format!("{}年（1月〜12月）", args.year),
        )
    };
    let hub = ctx.connect().await?;
    let me = hub
        .directory()
        .who_am_i(WhoAmIRequest {})
        .await
        .answer(&hub)?;
    let agency = me.agency.unwrap_or_default();
    let request = |dimension: OutcomeDimension| GetOutcomesRequest {
        from: from.clone(),
        to: to.clone(),
        group_by: vec![dimension as i32],
        suppress_below: args.suppress_below,
        municipality: args.municipality.clone().unwrap_or_default(),
    };
    let by_month = hub
        .outcomes()
        .get_outcomes(request(OutcomeDimension::Month))
        .await
        .answer(&hub)?;
    let by_kind = hub
        .outcomes()
        .get_outcomes(request(OutcomeDimension::RecipientKind))
        .await
        .answer(&hub)?;
    let prepared_at = by_month
        .computed_at
        .as_ref()
        .map(format_japan_time)
        .unwrap_or_default();
    let input = ReportInput {
        period,
        from,
        to,
        prepared_by: if agency.display_name.is_empty() {
            agency.agency_id
        } else {
            format!("{}（{}）", agency.display_name, agency.agency_id)
        },
        prepared_at,
        by_month,
        by_kind,
    };
    let text = match args.format {
        ReportFormat::Html => report::html(&input),
        ReportFormat::Md => report::markdown(&input),
    };
    match &args.out {
        Some(path) => {
            write_output(path, text.as_bytes())
                .with_context(|| format!("cannot write the report to {}", path.display()))?;
            eprintln!("wrote {}", path.display());
            Ok(())
        }
        None => ctx.print(&text),
    }
}

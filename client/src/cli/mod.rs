//! The `tsunagu` command line: global options, the subcommands and how errors are shown.
//!
//! Each subcommand lives in its own file with an `Args` struct (clap derive) and an
//! `async fn run(ctx: &Context, args: Args) -> anyhow::Result<()>`. To add one, write the file,
//! declare it below, add a variant to [`Command`] and a line to [`run`].

mod action;
mod agencies;
mod audit;
mod case;
mod common;
mod consent;
mod console;
mod context;
mod council;
mod demo;
mod events;
mod followups;
mod inbox;
mod keys;
mod note;
mod outcomes;
mod refer;
mod reseal;
mod retries;
mod show;
mod tables;
mod transfer;
mod views;
mod whoami;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use tsunagu_client::ClientError;
use tsunagu_client::error::{describe_status, status_hint};

pub use context::Context;

const AFTER_HELP: &str = "\
Examples:
  tsunagu --as aoba-kodomo whoami
  tsunagu --as aoba-kodomo agencies --json
  tsunagu demo                                   # the whole referral loop, narrated
  tsunagu --as aoba-kodomo case open --municipality 141178 \\
      --category specific-expectant-mother --stage pregnancy --header-text '…'
  tsunagu --as aoba-kodomo refer <CASE_ID> --to aoba-hospital --purpose postnatal_care --body-text '…'
  tsunagu --as aoba-hospital inbox
  tsunagu --as aoba-hospital ack <REFERRAL_ID> accept
  tsunagu --as aoba-kodomo followups
  tsunagu --as aoba-kodomo keys list --all        # the agencies' age keys and fingerprints

Run `tsunagu --help` for where credentials come from.";

const AFTER_LONG_HELP: &str = "\
Choosing who you are:
  --as <AGENCY>     a development agency: reads $TSUNAGU_CERTS_DEV (default ./certs-dev)
                    ca.pem, agencies/<AGENCY>.pem, agencies/<AGENCY>.key, agencies/<AGENCY>.age
                    (create them with `cargo run -p tsunagu-hub -- certs dev --dir certs-dev`)
  --profile <NAME>  a [profiles.<NAME>] table of the configuration file: --config, $TSUNAGU_CONFIG,
                    $XDG_CONFIG_HOME/tsunagu/config.toml or ~/.config/tsunagu/config.toml;
                    without --as or --profile, its default_profile is used

  The hub address is --hub, else $TSUNAGU_HUB, else the profile's `hub`, else
  https://127.0.0.1:7443 (start a development hub with `cargo run -p tsunagu-hub -- serve`).

Configuration file example:
  default_profile = \"aoba\"

  [profiles.aoba]
  hub = \"https://hub.example.jp:7443\"
  ca = \"/etc/tsunagu/ca.pem\"
  cert = \"/etc/tsunagu/aoba-kodomo.pem\"
  key = \"/etc/tsunagu/aoba-kodomo.key\"
  age_identity = \"/etc/tsunagu/aoba-kodomo.age\"
  server_name = \"hub.example.jp\"
  # known_keys = \"…\"   [default: known_keys/aoba.toml next to this file]

Age keys and sealing:
  Every sealed field is sealed on this machine to each active age key, from the hub's key
  directory, of its recipients, of your own agency and, for cases registered with 要対協, of the
  municipality's coordinator. Create and publish your key with `tsunagu keys init` (it writes the
  profile's age_identity, mode 0600), rotate it with `tsunagu keys rotate`, compare fingerprints
  out of band and pin them with `tsunagu keys verify <AGENCY> <FINGERPRINT>`.
  The keys you have seen and verified are kept per profile in a known-keys file:
  $TSUNAGU_KNOWN_KEYS, else the profile's known_keys, else known_keys/<profile>.toml next to
  the configuration file; for --as <AGENCY>, $XDG_STATE_HOME/tsunagu/known_keys/dev-<AGENCY>.toml
  (default ~/.local/state/…). You are warned when an agency's keys change; a verified key that
  is no longer active stops sealing to that agency unless you pass --accept-key-change.

Examples:
  # Who does the hub take me to be?
  tsunagu --as aoba-kodomo whoami

  # Every agency the hub knows, as a table and as JSON
  tsunagu --as aoba-kodomo agencies
  tsunagu --as aoba-kodomo agencies --json

  # Hospitals serving one municipality (全国地方公共団体コード)
  tsunagu --as aoba-kodomo agencies --municipality 141178 --kind hospital

  # A real deployment through a named profile
  tsunagu --profile aoba whoami

  # The whole referral loop against a running hub, narrated step by step
  tsunagu demo

  # A case, the family's consent, a referral, and the recipient's answers
  tsunagu --as aoba-kodomo case open --municipality 141178 \\
      --category specific-expectant-mother --stage pregnancy --header-text '氏名: …'
  tsunagu --as aoba-kodomo consent record <CASE_ID> --given-by self --method written \\
      --recipient aoba-hospital --purpose postnatal_care
  tsunagu --as aoba-kodomo refer <CASE_ID> --to aoba-hospital --purpose postnatal_care \\
      --urgency urgent --body-text '…'
  tsunagu --as aoba-hospital inbox
  tsunagu --as aoba-hospital ack <REFERRAL_ID> accept
  tsunagu --as aoba-hospital ack <REFERRAL_ID> connected
  tsunagu --as aoba-kodomo confirm <REFERRAL_ID>
  tsunagu --as aoba-kodomo followups

Every write records the acting staff member (--staff-name, --staff-role, or $TSUNAGU_STAFF_NAME,
$TSUNAGU_STAFF_ROLE) and sends an idempotency key (--idempotency-key, default a fresh UUID), so
a retry with the same key is safe. Sealed content (headers, bodies, notes, evidence) is
encrypted with age on this machine; it is only printed when you ask (--reveal, --body-out).
With --idempotency-key, what a write sealed is kept (encrypted, next to the known-keys file,
for 30 days), so running the same command again sends the same bytes and gets the first answer.

Errors are printed as `error: <what went wrong>: <message>` and exit with status 1.";

/// Talk to a Tsunagu hub as one agency: referrals, handoffs and 要対協 case threads.
#[derive(Debug, Parser)]
#[command(
    name = "tsunagu",
    version,
    about = "Talk to a Tsunagu hub as one agency: referrals, handoffs and 要対協 case threads.",
    after_help = AFTER_HELP,
    after_long_help = AFTER_LONG_HELP,
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand understands.
#[derive(Clone, Debug, Args)]
pub struct GlobalArgs {
    /// Act as this development agency, with its files from the certs-dev directory
    #[arg(
        long = "as",
        value_name = "AGENCY",
        global = true,
        conflicts_with = "profile"
    )]
    pub agency: Option<String>,

    /// Use this profile of the configuration file
    #[arg(long, value_name = "NAME", global = true)]
    pub profile: Option<String>,

    /// The configuration file [default: $TSUNAGU_CONFIG or ~/.config/tsunagu/config.toml]
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,

    /// The hub address [default: $TSUNAGU_HUB, the profile's hub or https://127.0.0.1:7443]
    #[arg(long, value_name = "URL", global = true)]
    pub hub: Option<String>,

    /// Print machine-readable JSON instead of text for people
    #[arg(long, global = true)]
    pub json: bool,

    /// Seal even when an agency's key that you verified is no longer active (its pin is dropped;
    /// verify the new key with `tsunagu keys verify`)
    #[arg(long, global = true)]
    pub accept_key_change: bool,

    /// Seconds to wait for the connection and for each answer
    #[arg(long, value_name = "SECONDS", global = true, default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show who the hub takes you to be: agency, roles, certificate
    #[command(
        after_help = "Examples:\n  tsunagu --as aoba-kodomo whoami\n  tsunagu --as aoba-kodomo whoami --json"
    )]
    Whoami(whoami::WhoamiArgs),

    /// List the registered agencies, optionally by municipality or kind
    #[command(
        after_help = "Examples:\n  tsunagu --as aoba-kodomo agencies\n  tsunagu --as aoba-kodomo agencies --municipality 141178 --kind hospital\n  tsunagu --as aoba-kodomo agencies --json"
    )]
    Agencies(agencies::AgenciesArgs),

    /// Open, show and list cases (one family, child or pregnant person)
    #[command(after_help = case::EXAMPLES)]
    Case(case::CaseArgs),

    /// Record, withdraw and list the consents (同意) that let agencies share
    #[command(after_help = consent::EXAMPLES)]
    Consent(consent::ConsentArgs),

    /// Send a referral about a case to one agency, with a sealed body
    #[command(after_help = refer::EXAMPLES)]
    Refer(refer::ReferArgs),

    /// List the referrals you received (or sent), or follow your event feed live with --watch
    #[command(after_help = inbox::EXAMPLES)]
    Inbox(inbox::InboxArgs),

    /// Show one referral: its three layers, deadlines, overdue timers and timeline
    #[command(after_help = show::EXAMPLES)]
    Show(show::ShowArgs),

    /// As the recipient: acknowledge, accept, decline, start, complete, fail, report contact
    #[command(after_help = action::ACK_EXAMPLES)]
    Ack(action::AckArgs),

    /// As the sender: cancel a referral, with a reason code
    #[command(after_help = action::CANCEL_EXAMPLES)]
    Cancel(action::CancelArgs),

    /// As the sender or coordinator: confirm the reported outcome, closing the handoff
    #[command(after_help = action::CONFIRM_EXAMPLES)]
    Confirm(action::ConfirmArgs),

    /// As the sender or coordinator: after a confirmed "did not connect", close the family's need
    /// with a reason instead of referring again (理由を記録して終結)
    #[command(after_help = action::CLOSE_EXAMPLES)]
    Close(action::CloseArgs),

    /// Send a sealed note on a case thread to one or more participants
    #[command(after_help = note::NOTE_EXAMPLES)]
    Note(note::NoteArgs),

    /// Acknowledge receipt of a note
    #[command(after_help = note::NOTE_ACK_EXAMPLES)]
    NoteAck(note::NoteAckArgs),

    /// Give a sealed field new readers (再封緘): a coordinator or 主担当機関 added later, a 移管 —
    /// or list who can open each sealed field of a case
    #[command(after_help = reseal::EXAMPLES)]
    Reseal(reseal::ResealArgs),

    /// Your worklist: overdue and due-soon handoffs (a coordinator: the municipality's)
    #[command(after_help = followups::EXAMPLES)]
    Followups(followups::FollowupsArgs),

    /// Outcomes: did the families connect? Counts and durations by group; `outcomes report`
    #[command(after_help = outcomes::EXAMPLES)]
    Outcomes(outcomes::OutcomesArgs),

    /// Your event feed by cursor; `events ack <CURSOR>` records what you processed
    #[command(after_help = events::EXAMPLES)]
    Events(events::EventsArgs),

    /// Who read or changed what: the audit records of your calls and your cases; `audit head`
    #[command(after_help = audit::EXAMPLES)]
    Audit(audit::AuditArgs),

    /// Your agency's age keys (init, rotate, publish, retire) and other agencies' (list, verify)
    #[command(after_help = keys::EXAMPLES)]
    Keys(keys::KeysArgs),

    /// 要対協: register cases, schedule meetings, write meeting packs (md/html), record decisions
    #[command(after_help = council::EXAMPLES)]
    Council(council::CouncilArgs),

    /// 移管: transfer a case to the municipality a family moves to (propose, ack, accept, decline)
    #[command(after_help = transfer::EXAMPLES)]
    Transfer(transfer::TransferArgs),

    /// Serve the web console for this agency's staff on 127.0.0.1 and print its one-time URL
    #[command(after_help = console::EXAMPLES)]
    Console(console::ConsoleArgs),

    /// Walk the whole referral loop against a running hub as the development agencies, narrated
    #[command(after_help = demo::EXAMPLES)]
    Demo(demo::DemoArgs),
}

/// Runs one parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let ctx = Context::new(cli.global);
    match cli.command {
        Command::Whoami(args) => whoami::run(&ctx, args).await,
        Command::Console(args) => console::run(&ctx, args).await,
        Command::Agencies(args) => agencies::run(&ctx, args).await,
        Command::Case(args) => case::run(&ctx, args).await,
        Command::Consent(args) => consent::run(&ctx, args).await,
        Command::Refer(args) => refer::run(&ctx, args).await,
        Command::Inbox(args) => inbox::run(&ctx, args).await,
        Command::Show(args) => show::run(&ctx, args).await,
        Command::Ack(args) => action::run_ack(&ctx, args).await,
        Command::Cancel(args) => action::run_cancel(&ctx, args).await,
        Command::Confirm(args) => action::run_confirm(&ctx, args).await,
        Command::Close(args) => action::run_close(&ctx, args).await,
        Command::Note(args) => note::run(&ctx, args).await,
        Command::NoteAck(args) => note::run_ack(&ctx, args).await,
        Command::Reseal(args) => reseal::run(&ctx, args).await,
        Command::Followups(args) => followups::run(&ctx, args).await,
        Command::Events(args) => events::run(&ctx, args).await,
        Command::Outcomes(args) => outcomes::run(&ctx, args).await,
        Command::Audit(args) => audit::run(&ctx, args).await,
        Command::Keys(args) => keys::run(&ctx, args).await,
        Command::Council(args) => council::run(&ctx, args).await,
        Command::Transfer(args) => transfer::run(&ctx, args).await,
        Command::Demo(args) => demo::run(&ctx, args).await,
    }
}

/// Prints an error as `error: <what>: <message>`, and a hint when there is one, to stderr.
pub fn report_error(error: &anyhow::Error) {
    let mut hint = None;
    for cause in error.chain() {
        if let Some(client) = cause.downcast_ref::<ClientError>() {
            hint = client.hint();
            break;
        }
        if let Some(status) = cause.downcast_ref::<tonic::Status>() {
            hint = status_hint(status);
            break;
        }
    }
    let text = match error.downcast_ref::<tonic::Status>() {
        Some(status) => describe_status(status),
        None => format!("{error:#}"),
    };
    eprintln!("error: {text}");
    if let Some(hint) = hint {
        eprintln!("hint: {hint}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_may_follow_the_subcommand() {
        let cli =
            Cli::try_parse_from(["tsunagu", "agencies", "--as", "aoba-kodomo", "--json"]).unwrap();
        assert_eq!(cli.global.agency.as_deref(), Some("aoba-kodomo"));
        assert!(cli.global.json);
    }

    #[test]
    fn as_and_profile_cannot_be_given_together() {
        assert!(
            Cli::try_parse_from(["tsunagu", "--as", "a-b", "--profile", "p", "whoami"]).is_err()
        );
    }
}

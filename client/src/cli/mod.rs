//! The `tsunagu` command line: global options, the subcommands and how errors are shown.
//!
//! Each subcommand lives in its own file with an `Args` struct (clap derive) and an
//! `async fn run(ctx: &Context, args: Args) -> anyhow::Result<()>`. To add one, write the file,
//! declare it below, add a variant to [`Command`] and a line to [`run`].

mod agencies;
mod context;
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
  tsunagu --as aoba-kodomo agencies
  tsunagu --as aoba-kodomo agencies --json

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
}

/// Runs one parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let ctx = Context::new(cli.global);
    match cli.command {
        Command::Whoami(args) => whoami::run(&ctx, args).await,
        Command::Agencies(args) => agencies::run(&ctx, args).await,
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

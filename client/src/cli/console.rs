//! `tsunagu console`: serves the local web console for this agency's staff, and prints the
//! one-time URL that signs a browser in.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use tsunagu_client::console::{Console, ConsoleSettings, ConsoleTls, DEFAULT_LISTEN};

use super::Context;
use super::common::StaffArgs;

pub const EXAMPLES: &str = "\
Examples:
  # The development hub's health centre (coordinator of 141178); open the printed URL
  tsunagu --as aoba-kodomo console

  # Another port, and a real deployment's profile
  tsunagu --profile aoba console --listen 127.0.0.1:7490 --staff-name '青葉 花子' --staff-role 保健師

  # Serve other machines of the office network: only with TLS, and only when you mean it
  tsunagu --profile aoba console --listen 0.0.0.0:7480 --allow-remote \\
      --tls-cert console.pem --tls-key console.key --host-name console.aoba.example.jp

The URL carries a one-time token: opening it sets a session cookie (HttpOnly, SameSite=Strict)
in that browser. Sealed fields are opened in this process's memory only; nothing opened is
written to disk. Stop the console with Ctrl+C.";

#[derive(Debug, Args)]
pub struct ConsoleArgs {
    /// The address to serve the console on (loopback unless --allow-remote)
    #[arg(long, value_name = "ADDRESS", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// Allow a non-loopback --listen address (requires --tls-cert and --tls-key)
    #[arg(long, requires_all = ["tls_cert", "tls_key"])]
    pub allow_remote: bool,

    /// PEM certificate (chain) to serve the console over https
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// A host name browsers use to reach the console (repeatable), besides 127.0.0.1 and localhost
    #[arg(long = "host-name", value_name = "NAME")]
    pub host_names: Vec<String>,

    #[command(flatten)]
    pub staff: StaffArgs,
}

pub async fn run(ctx: &Context, args: ConsoleArgs) -> anyhow::Result<()> {
    let credentials = ctx.credentials()?;
    let connect = credentials.connect_options(Duration::from_secs(ctx.timeout()))?;
    let identities = ctx.load_identities().unwrap_or_else(|error| {
        eprintln!(
            "warning: no age identity could be read ({error}); sealed fields will show as \
             〔この機関では開封できません〕"
        );
        Vec::new()
    });
    let console = Console::build(ConsoleSettings {
        listen: args.listen,
        allow_remote: args.allow_remote,
        tls: args
            .tls_cert
            .zip(args.tls_key)
            .map(|(cert, key)| ConsoleTls { cert, key }),
        connect,
        identities,
        known_keys: Some(credentials.known_keys.clone()),
        staff: args.staff.staff(),
        host_names: args.host_names,
    })
    .await
    .context("the console could not start")?;
    eprintln!(
        "つなぐ コンソール: {} に接続します。ブラウザで次のURLを開いてください（一度だけ使えます）:",
        connect_label(&credentials.hub)
    );
    // The URL alone on stdout, so that a script (or a test) can read it.
    println!("{}", console.login_url());
    eprintln!("止めるときは Ctrl+C を押してください。");
    console
        .run_until_stopped(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("the console stopped with an error")?;
    Ok(())
}

fn connect_label(hub: &str) -> &str {
    hub.trim_end_matches('/')
}

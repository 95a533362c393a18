//! What every subcommand shares: the chosen credentials, the hub connection and the output mode.

use std::io::{ErrorKind, Write};
use std::sync::OnceLock;
use std::time::Duration;

use age::x25519::Identity;
use serde::Serialize;
use tsunagu_client::audit_head::HeadWatch;
use tsunagu_client::profile::{Credentials, Environment, Selection};
use tsunagu_client::seal::load_identities;
use tsunagu_client::sealing::Sealer;
use tsunagu_client::trust::{KeyNotice, KnownKeys};
use tsunagu_client::{ClientError, Hub};

use super::GlobalArgs;

/// The global options and environment of one invocation.
pub struct Context {
    global: GlobalArgs,
    env: Environment,
    /// The caller's age identities (the current one first), read once on first use; empty when
    /// there are none or they cannot be read.
    identities: OnceLock<Vec<Identity>>,
}

impl Context {
    pub fn new(global: GlobalArgs) -> Self {
        Context {
            global,
            env: Environment::from_process(),
            identities: OnceLock::new(),
        }
    }

    /// The same invocation acting as a development agency of the certs-dev directory (used by
    /// `demo`, which plays several agencies). The hub address, timeout and output mode stay.
    pub fn as_dev_agency(&self, agency: &str) -> Context {
        let mut global = self.global.clone();
        global.agency = Some(agency.to_owned());
        global.profile = None;
        global.config = None;
        Context {
            global,
            env: self.env.clone(),
            identities: OnceLock::new(),
        }
    }

    /// The caller's age identities, the current one first (from the profile's `age_identity`,
    /// or `certs-dev/agencies/<id>.age` for `--as`), or why there are none.
    pub fn load_identities(&self) -> Result<Vec<Identity>, ClientError> {
        let credentials = self.credentials()?;
        load_identities(credentials.age_identity_file()?)
    }

    /// The caller's age identities, read once; empty when there are none or they cannot be read.
    pub fn identities(&self) -> &[Identity] {
        self.identities
            .get_or_init(|| self.load_identities().unwrap_or_default())
    }

    /// A sealer for this invocation: recipients from the hub's key directory, checked against
    /// the profile's known-keys file (`--accept-key-change` lets a changed verified key pass).
    pub fn sealer(&self, hub: &Hub) -> Result<Sealer, ClientError> {
        let known = KnownKeys::load(&self.credentials()?.known_keys)?;
        Ok(Sealer::new(hub).with_known_keys(known, self.global.accept_key_change))
    }

    /// Tells the user (on stderr) what the sealer noticed about other agencies' keys.
    pub fn report_key_notices(&self, sealer: &mut Sealer) {
        for notice in sealer.take_notices() {
            match notice {
                KeyNotice::FirstSeen { .. } => eprintln!("note: {notice}"),
                KeyNotice::Changed { .. } | KeyNotice::ChangeAccepted { .. } => {
                    eprintln!("warning: {notice}");
                }
            }
        }
    }

    /// Seconds to wait for the connection and for each answer.
    pub fn timeout(&self) -> u64 {
        self.global.timeout
    }

    /// Whether the user asked for machine output.
    pub fn json(&self) -> bool {
        self.global.json
    }

    /// The hub address and credential files chosen by --as / --profile / the environment.
    pub fn credentials(&self) -> Result<Credentials, ClientError> {
        let selection = Selection {
            agency: self.global.agency.clone(),
            profile: self.global.profile.clone(),
            config: self.global.config.clone(),
            hub: self.global.hub.clone(),
        };
        Credentials::resolve(&selection, &self.env)
    }

    /// Reads the credentials, connects to the hub and checks that its signed audit head extends
    /// the newest one this profile saw (`tsunagu_client::audit_head`): a hub whose audit log was
    /// rolled back is refused before anything else is asked of it.
    pub async fn connect(&self) -> Result<Hub, ClientError> {
        let credentials = self.credentials()?;
        let options = credentials.connect_options(Duration::from_secs(self.global.timeout))?;
        let hub = Hub::connect(&options).await?;
        HeadWatch::load(&HeadWatch::path_for(&credentials.known_keys))?
            .check(&hub)
            .await?;
        Ok(hub)
    }

    /// Prints text for people to stdout. A closed pipe (`| head`) is not an error.
    pub fn print(&self, text: &str) -> anyhow::Result<()> {
        let mut stdout = std::io::stdout().lock();
        match stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
        {
            Err(e) if e.kind() != ErrorKind::BrokenPipe => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Prints one JSON document to stdout, followed by a newline.
    pub fn print_json<T: Serialize>(&self, value: &T) -> anyhow::Result<()> {
        let mut text = serde_json::to_string_pretty(value)?;
        text.push('\n');
        self.print(&text)
    }
}

//! What every subcommand shares: the chosen credentials, the hub connection and the output mode.

use std::io::{ErrorKind, Write};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use age::x25519::Identity;
use serde::Serialize;
use tsunagu_client::profile::{Credentials, Environment, Selection};
use tsunagu_client::seal::load_identity;
use tsunagu_client::{ClientError, Hub};

use super::GlobalArgs;

/// The global options and environment of one invocation.
pub struct Context {
    global: GlobalArgs,
    env: Environment,
    /// The caller's age identity, read once on first use (`None`: there is none).
    identity: OnceLock<Option<Identity>>,
}

impl Context {
    pub fn new(global: GlobalArgs) -> Self {
        Context {
            global,
            env: Environment::from_process(),
            identity: OnceLock::new(),
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
            identity: OnceLock::new(),
        }
    }

    /// The certs-dev directory: `$TSUNAGU_CERTS_DEV` or `./certs-dev`.
    pub fn certs_dev_dir(&self) -> PathBuf {
        self.env.certs_dev_dir()
    }

    /// The caller's age identity (from the profile's `age_identity`, or
    /// `certs-dev/agencies/<id>.age` for `--as`), or why there is none.
    pub fn load_identity(&self) -> Result<Identity, ClientError> {
        let credentials = self.credentials()?;
        load_identity(credentials.age_identity_file()?)
    }

    /// The caller's age identity, read once; `None` when there is none or it cannot be read.
    pub fn identity(&self) -> Option<&Identity> {
        self.identity
            .get_or_init(|| self.load_identity().ok())
            .as_ref()
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

    /// Reads the credentials and connects to the hub.
    pub async fn connect(&self) -> Result<Hub, ClientError> {
        let credentials = self.credentials()?;
        let options = credentials.connect_options(Duration::from_secs(self.global.timeout))?;
        Hub::connect(&options).await
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

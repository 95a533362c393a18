//! How a client finds its hub and credentials: development agencies (`--as`) or named profiles.
//!
//! Two ways, never both at once:
//!
//! - `--as <agency-id>` takes the development files from the certs-dev directory
//!   (`$TSUNAGU_CERTS_DEV`, or `./certs-dev`): `ca.pem`, `agencies/<id>.pem`, `agencies/<id>.key`
//!   and the age identity `agencies/<id>.age`.
//! - `--profile <name>` (or the file's `default_profile`) takes a `[profiles.<name>]` table from
//!   the configuration file (`--config`, `$TSUNAGU_CONFIG`, `$XDG_CONFIG_HOME/tsunagu/config.toml`
//!   or `~/.config/tsunagu/config.toml`):
//!
//! ```toml
//! default_profile = "aoba"
//!
//! [profiles.aoba]
//! hub = "https://hub.example.jp:7443"
//! ca = "/etc/tsunagu/ca.pem"
//! cert = "/etc/tsunagu/aoba-kodomo.pem"
//! key = "/etc/tsunagu/aoba-kodomo.key"
//! age_identity = "/etc/tsunagu/aoba-kodomo.age"
//! server_name = "hub.example.jp"
//! ```
//!
//! Relative paths in the file are taken from the file's own directory; `~/` means the home
//! directory.
//!
//! Each profile keeps the age keys of other agencies it has seen and verified (see
//! [`crate::trust`]) in a known-keys file: `$TSUNAGU_KNOWN_KEYS` when set; else the profile's
//! `known_keys = "..."`; else `known_keys/<profile>.toml` next to the configuration file (for
//! example `~/.config/tsunagu/known_keys/aoba.toml`). For `--as <agency-id>` it is
//! `$XDG_STATE_HOME/tsunagu/known_keys/dev-<agency-id>.toml` (by default under
//! `~/.local/state`), or `./data/known_keys/dev-<agency-id>.toml` when there is no home
//! directory. The hub address comes from `--hub`, then `$TSUNAGU_HUB`, then the profile, then
//! `https://127.0.0.1:7443`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::ClientError;
use crate::hub::{ConnectOptions, DEFAULT_HUB, DEFAULT_SERVER_NAME, read_pem};

/// The certs-dev directory used when `$TSUNAGU_CERTS_DEV` is not set.
pub const DEFAULT_CERTS_DEV: &str = "certs-dev";

/// What the user chose on the command line. Every field is optional.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// `--as <agency-id>`: a development agency from the certs-dev directory.
    pub agency: Option<String>,
    /// `--profile <name>`: a profile from the configuration file.
    pub profile: Option<String>,
    /// `--config <file>`: the configuration file.
    pub config: Option<PathBuf>,
    /// `--hub <url>`: the hub address, overriding everything else.
    pub hub: Option<String>,
}

/// The environment variables that take part in the choice, read once so tests can supply their own.
#[derive(Clone, Debug, Default)]
pub struct Environment {
    /// `$TSUNAGU_CERTS_DEV`
    pub certs_dev: Option<PathBuf>,
    /// `$TSUNAGU_HUB`
    pub hub: Option<String>,
    /// `$TSUNAGU_CONFIG`
    pub config: Option<PathBuf>,
    /// `$XDG_CONFIG_HOME`
    pub xdg_config_home: Option<PathBuf>,
    /// `$HOME`
    pub home: Option<PathBuf>,
    /// `$XDG_STATE_HOME`
    pub xdg_state_home: Option<PathBuf>,
    /// `$TSUNAGU_KNOWN_KEYS`: the known-keys file, whatever the profile.
    pub known_keys: Option<PathBuf>,
}

impl Environment {
    /// Reads the variables from this process; empty values count as unset.
    pub fn from_process() -> Self {
        fn var(name: &str) -> Option<String> {
            std::env::var(name).ok().filter(|v| !v.trim().is_empty())
        }
        Environment {
            certs_dev: var("TSUNAGU_CERTS_DEV").map(PathBuf::from),
            hub: var("TSUNAGU_HUB"),
            config: var("TSUNAGU_CONFIG").map(PathBuf::from),
            xdg_config_home: var("XDG_CONFIG_HOME").map(PathBuf::from),
            home: var("HOME").map(PathBuf::from),
            xdg_state_home: var("XDG_STATE_HOME").map(PathBuf::from),
            known_keys: var("TSUNAGU_KNOWN_KEYS").map(PathBuf::from),
        }
    }

    /// The certs-dev directory: `$TSUNAGU_CERTS_DEV` or `./certs-dev`.
    pub fn certs_dev_dir(&self) -> PathBuf {
        self.certs_dev
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CERTS_DEV))
    }

    /// The default configuration file, when a home or XDG directory is known.
    pub fn default_config_path(&self) -> Option<PathBuf> {
        if let Some(xdg) = &self.xdg_config_home {
            return Some(xdg.join("tsunagu").join("config.toml"));
        }
        self.home
            .as_ref()
            .map(|home| home.join(".config").join("tsunagu").join("config.toml"))
    }
}

/// Where a set of credentials came from, for messages and `whoami`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialSource {
    /// `--as <agency-id>` with the development files.
    DevAgency {
        agency_id: String,
        certs_dev: PathBuf,
    },
    /// A profile of a configuration file.
    Profile { name: String, config: PathBuf },
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialSource::DevAgency {
                agency_id,
                certs_dev,
            } => write!(
                f,
                "development agency {agency_id} ({})",
                certs_dev.display()
            ),
            CredentialSource::Profile { name, config } => {
                write!(f, "profile {name} ({})", config.display())
            }
        }
    }
}

/// The hub address and the files to present to it, before anything is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub source: CredentialSource,
    /// The hub address.
    pub hub: String,
    /// The hub's CA certificate.
    pub ca: PathBuf,
    /// The agency's client certificate.
    pub cert: Option<PathBuf>,
    /// The agency's private key.
    pub key: Option<PathBuf>,
    /// The agency's age identity, for opening sealed payloads.
    pub age_identity: Option<PathBuf>,
    /// The TLS name the hub's certificate must carry.
    pub server_name: String,
    /// Other agencies' age keys as this profile saw and verified them.
    pub known_keys: PathBuf,
}

impl Credentials {
    /// Chooses the credentials from the command line and the environment.
    pub fn resolve(selection: &Selection, env: &Environment) -> Result<Self, ClientError> {
        if let (Some(agency), Some(profile)) = (&selection.agency, &selection.profile) {
            return Err(ClientError::ConflictingSelection(format!(
                "choose either --as {agency} (development certificates) or --profile {profile}, not both"
            )));
        }
        if let Some(agency) = &selection.agency {
            return Self::dev_agency(agency, selection, env);
        }

        let (config_path, explicit) = match selection.config.clone().or_else(|| env.config.clone())
        {
            Some(path) => (Some(path), true),
            None => (env.default_config_path(), false),
        };
        let config = match &config_path {
            Some(path) if explicit || path.exists() || selection.profile.is_some() => {
                Some(ConfigFile::load(path)?)
            }
            _ => None,
        };

        let profile_name = selection
            .profile
            .clone()
            .or_else(|| config.as_ref().and_then(|c| c.default_profile.clone()));
        match (config, config_path, profile_name) {
            (Some(config), Some(path), Some(name)) => {
                Self::from_profile(&config, &path, &name, selection, env)
            }
            (_, path, _) => Err(ClientError::NoAgencyChosen {
                certs_dev: env.certs_dev_dir().display().to_string(),
                config: path
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "~/.config/tsunagu/config.toml".to_owned()),
            }),
        }
    }

    fn dev_agency(
        agency: &str,
        selection: &Selection,
        env: &Environment,
    ) -> Result<Self, ClientError> {
        if !is_agency_id(agency) {
            return Err(ClientError::InvalidAgencyId(agency.to_owned()));
        }
        let certs_dev = env.certs_dev_dir();
        let agencies = certs_dev.join("agencies");
        Ok(Credentials {
            source: CredentialSource::DevAgency {
                agency_id: agency.to_owned(),
                certs_dev: certs_dev.clone(),
            },
            hub: selection
                .hub
                .clone()
                .or_else(|| env.hub.clone())
                .unwrap_or_else(|| DEFAULT_HUB.to_owned()),
            ca: certs_dev.join("ca.pem"),
            cert: Some(agencies.join(format!("{agency}.pem"))),
            key: Some(agencies.join(format!("{agency}.key"))),
            age_identity: Some(agencies.join(format!("{agency}.age"))),
            server_name: DEFAULT_SERVER_NAME.to_owned(),
            known_keys: env.known_keys.clone().unwrap_or_else(|| {
                let file = format!("dev-{agency}.toml");
                match (&env.xdg_state_home, &env.home) {
                    (Some(state), _) => state.join("tsunagu").join("known_keys").join(file),
                    (None, Some(home)) => home.join(".local/state/tsunagu/known_keys").join(file),
                    (None, None) => PathBuf::from("data/known_keys").join(file),
                }
            }),
        })
    }

    fn from_profile(
        config: &ConfigFile,
        path: &Path,
        name: &str,
        selection: &Selection,
        env: &Environment,
    ) -> Result<Self, ClientError> {
        let Some(profile) = config.profiles.get(name) else {
            return Err(ClientError::UnknownProfile {
                name: name.to_owned(),
                path: path.to_owned(),
                available: config.profiles.keys().cloned().collect(),
            });
        };
        if profile.cert.is_some() != profile.key.is_some() {
            return Err(ClientError::InvalidConfig {
                path: path.to_owned(),
                reason: format!("profile `{name}` must give both `cert` and `key`, or neither"),
            });
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let place = |p: &PathBuf| resolve_path(p, base, env.home.as_deref());
        let hub = selection
            .hub
            .clone()
            .or_else(|| env.hub.clone())
            .or_else(|| profile.hub.clone())
            .unwrap_or_else(|| DEFAULT_HUB.to_owned());
        let server_name = profile
            .server_name
            .clone()
            .unwrap_or_else(|| server_name_for(&hub));
        Ok(Credentials {
            source: CredentialSource::Profile {
                name: name.to_owned(),
                config: path.to_owned(),
            },
            hub,
            ca: place(&profile.ca),
            cert: profile.cert.as_ref().map(place),
            key: profile.key.as_ref().map(place),
            age_identity: profile.age_identity.as_ref().map(place),
            server_name,
            known_keys: env
                .known_keys
                .clone()
                .unwrap_or_else(|| match &profile.known_keys {
                    Some(path) => place(path),
                    None => base.join("known_keys").join(format!("{name}.toml")),
                }),
        })
    }

    /// The agency id these credentials are for, when it is known without asking the hub.
    pub fn agency_id(&self) -> Option<&str> {
        match &self.source {
            CredentialSource::DevAgency { agency_id, .. } => Some(agency_id),
            CredentialSource::Profile { .. } => None,
        }
    }

    /// Reads the files and returns the options to connect with.
    pub fn connect_options(&self, timeout: Duration) -> Result<ConnectOptions, ClientError> {
        let ca_pem = read_pem("CA certificate", &self.ca, &self.missing_hint("ca"))?;
        let cert_pem = self
            .cert
            .as_deref()
            .map(|path| read_pem("certificate", path, &self.missing_hint("cert")))
            .transpose()?;
        let key_pem = self
            .key
            .as_deref()
            .map(|path| read_pem("private key", path, &self.missing_hint("key")))
            .transpose()?;
        Ok(ConnectOptions {
            endpoint: self.hub.clone(),
            ca_pem,
            cert_pem,
            key_pem,
            server_name: self.server_name.clone(),
            timeout,
        })
    }

    /// Where the age identity file is (or is to be created by `tsunagu keys init`).
    pub fn age_identity_path(&self) -> Result<&Path, ClientError> {
        self.age_identity.as_deref().ok_or_else(|| {
            ClientError::InvalidCredentials(format!(
                "{} names no age identity: add `age_identity = \"...\"` to the profile",
                self.source
            ))
        })
    }

    /// The age identity file, checked to exist, for opening sealed payloads.
    pub fn age_identity_file(&self) -> Result<&Path, ClientError> {
        let Some(path) = self.age_identity.as_deref() else {
            return Err(ClientError::InvalidCredentials(format!(
                "{} names no age identity: add `age_identity = \"...\"` to the profile",
                self.source
            )));
        };
        if !path.exists() {
            return Err(ClientError::MissingFile {
                what: "age identity",
                path: path.to_owned(),
                hint: self.missing_hint("age_identity"),
            });
        }
        Ok(path)
    }

    fn missing_hint(&self, field: &str) -> String {
        match &self.source {
            CredentialSource::DevAgency { certs_dev, .. } => {
                let known = dev_agencies(certs_dev);
                let dir = certs_dev.display();
                if field == "ca" || known.is_empty() {
                    format!(
                        "run `cargo run -p tsunagu-hub -- certs dev --dir {dir}` to create the \
                         development certificates, or set TSUNAGU_CERTS_DEV to the directory \
                         that holds them"
                    )
                } else {
                    format!(
                        "run `cargo run -p tsunagu-hub -- certs dev --dir {dir}` or pick an \
                         agency with --as (known here: {})",
                        known.join(", ")
                    )
                }
            }
            CredentialSource::Profile { name, config } => format!(
                "fix `{field}` in [profiles.{name}] of {}, or use --as <agency-id> for development certificates",
                config.display()
            ),
        }
    }
}

/// The development agencies that have a certificate under `<certs_dev>/agencies`, sorted.
pub fn dev_agencies(certs_dev: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(certs_dev.join("agencies")) else {
        return Vec::new();
    };
    let mut ids: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let path = entry.path();
            if path.extension().is_some_and(|ext| ext == "pem") {
                path.file_stem()
                    .and_then(|stem| stem.to_str())
                    .filter(|stem| is_agency_id(stem))
                    .map(str::to_owned)
            } else {
                None
            }
        })
        .collect();
    ids.sort();
    ids
}

/// Whether `id` is a valid agency id: 2..=63 lower-case ASCII letters, digits and '-'.
pub fn is_agency_id(id: &str) -> bool {
    (2..=63).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The configuration file: named profiles and the one to use by default.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The profile used when neither `--as` nor `--profile` is given.
    pub default_profile: Option<String>,
    #[serde(default)]
    pub profiles: BTreeMap<String, ProfileConfig>,
}

/// One `[profiles.<name>]` table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileConfig {
    pub hub: Option<String>,
    pub ca: PathBuf,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub age_identity: Option<PathBuf>,
    pub server_name: Option<String>,
    /// The known-keys file [default: `known_keys/<profile>.toml` next to this file].
    pub known_keys: Option<PathBuf>,
}

impl ConfigFile {
    /// Reads and parses a configuration file.
    pub fn load(path: &Path) -> Result<Self, ClientError> {
        let text = std::fs::read_to_string(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                ClientError::MissingFile {
                    what: "configuration",
                    path: path.to_owned(),
                    hint: "create it with a [profiles.<name>] table (hub, ca, cert, key), \
                           or use --as <agency-id> for development certificates"
                        .to_owned(),
                }
            } else {
                ClientError::ReadFile {
                    what: "configuration",
                    path: path.to_owned(),
                    source,
                }
            }
        })?;
        Self::parse(&text, path)
    }

    /// Parses the text of a configuration file; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ClientError> {
        let config: ConfigFile = toml::from_str(text).map_err(|e| ClientError::InvalidConfig {
            path: path.to_owned(),
            reason: e.to_string().trim_end().to_owned(),
        })?;
        if let Some(name) = &config.default_profile
            && !config.profiles.contains_key(name)
        {
            return Err(ClientError::UnknownProfile {
                name: name.clone(),
                path: path.to_owned(),
                available: config.profiles.keys().cloned().collect(),
            });
        }
        Ok(config)
    }
}

/// Expands `~/` and makes a relative path relative to `base`.
fn resolve_path(path: &Path, base: &Path, home: Option<&Path>) -> PathBuf {
    if let (Ok(rest), Some(home)) = (path.strip_prefix("~"), home) {
        return home.join(rest);
    }
    if path.is_absolute() {
        path.to_owned()
    } else {
        base.join(path)
    }
}

/// The TLS name to expect from a hub address: its host name, or "localhost" for an IP address.
pub fn server_name_for(hub: &str) -> String {
    let after_scheme = hub.split_once("://").map_or(hub, |(_, rest)| rest);
    let authority = after_scheme.split('/').next().unwrap_or_default();
    let host = if let Some(bracketed) = authority.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    if host.is_empty() || host.parse::<IpAddr>().is_ok() {
        DEFAULT_SERVER_NAME.to_owned()
    } else {
        host.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_in(dir: &Path) -> Environment {
        Environment {
            certs_dev: Some(dir.join("certs-dev")),
            home: Some(dir.join("home")),
            ..Environment::default()
        }
    }

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn as_agency_picks_the_development_files() {
        let env = Environment {
            certs_dev: Some(PathBuf::from("/srv/certs")),
            ..Environment::default()
        };
        let selection = Selection {
            agency: Some("aoba-kodomo".into()),
            ..Selection::default()
        };
        let creds = Credentials::resolve(&selection, &env).unwrap();
        assert_eq!(creds.hub, DEFAULT_HUB);
        assert_eq!(creds.ca, PathBuf::from("/srv/certs/ca.pem"));
        assert_eq!(
            creds.cert,
            Some(PathBuf::from("/srv/certs/agencies/aoba-kodomo.pem"))
        );
        assert_eq!(
            creds.key,
            Some(PathBuf::from("/srv/certs/agencies/aoba-kodomo.key"))
        );
        assert_eq!(
            creds.age_identity,
            Some(PathBuf::from("/srv/certs/agencies/aoba-kodomo.age"))
        );
        assert_eq!(creds.server_name, "localhost");
        assert_eq!(creds.agency_id(), Some("aoba-kodomo"));
    }

    #[test]
    fn known_keys_live_in_the_state_directory_for_dev_agencies_and_next_to_the_profile_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let env = env_in(dir.path());
        let dev = Selection {
            agency: Some("aoba-kodomo".into()),
            ..Selection::default()
        };
        assert_eq!(
            Credentials::resolve(&dev, &env).unwrap().known_keys,
            dir.path()
                .join("home/.local/state/tsunagu/known_keys/dev-aoba-kodomo.toml")
        );
        let config = dir.path().join("conf/tsunagu.toml");
        write(
            &config,
            "[profiles.a]\nca = \"a.pem\"\n[profiles.b]\nca = \"b.pem\"\nknown_keys = \"b-keys.toml\"\n",
        );
        let mut profile = Selection {
            profile: Some("a".into()),
            config: Some(config),
            ..Selection::default()
        };
        assert_eq!(
            Credentials::resolve(&profile, &env).unwrap().known_keys,
            dir.path().join("conf/known_keys/a.toml")
        );
        profile.profile = Some("b".into());
        assert_eq!(
            Credentials::resolve(&profile, &env).unwrap().known_keys,
            dir.path().join("conf/b-keys.toml")
        );
        let forced = Environment {
            known_keys: Some(PathBuf::from("/tmp/k.toml")),
            ..env
        };
        assert_eq!(
            Credentials::resolve(&profile, &forced).unwrap().known_keys,
            PathBuf::from("/tmp/k.toml")
        );
    }

    #[test]
    fn certs_dev_defaults_to_the_working_directory() {
        let selection = Selection {
            agency: Some("aoba-kodomo".into()),
            ..Selection::default()
        };
        let creds = Credentials::resolve(&selection, &Environment::default()).unwrap();
        assert_eq!(creds.ca, PathBuf::from("certs-dev/ca.pem"));
    }

    #[test]
    fn hub_flag_beats_environment_beats_default() {
        let mut selection = Selection {
            agency: Some("aoba-kodomo".into()),
            ..Selection::default()
        };
        let env = Environment {
            hub: Some("https://env:1".into()),
            ..Environment::default()
        };
        assert_eq!(
            Credentials::resolve(&selection, &env).unwrap().hub,
            "https://env:1"
        );
        selection.hub = Some("https://flag:2".into());
        assert_eq!(
            Credentials::resolve(&selection, &env).unwrap().hub,
            "https://flag:2"
        );
    }

    #[test]
    fn an_agency_id_with_a_path_in_it_is_refused() {
        let selection = Selection {
            agency: Some("../secrets".into()),
            ..Selection::default()
        };
        assert!(matches!(
            Credentials::resolve(&selection, &Environment::default()),
            Err(ClientError::InvalidAgencyId(_))
        ));
    }

    #[test]
    fn as_and_profile_together_are_refused() {
        let selection = Selection {
            agency: Some("aoba-kodomo".into()),
            profile: Some("prod".into()),
            ..Selection::default()
        };
        assert!(matches!(
            Credentials::resolve(&selection, &Environment::default()),
            Err(ClientError::ConflictingSelection(_))
        ));
    }

    #[test]
    fn nothing_chosen_says_how_to_choose() {
        let dir = tempfile::tempdir().unwrap();
        let err = Credentials::resolve(&Selection::default(), &env_in(dir.path())).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("--as <agency-id>"), "{text}");
        assert!(text.contains("--profile <name>"), "{text}");
    }

    #[test]
    fn a_missing_agency_certificate_says_what_to_run() {
        let dir = tempfile::tempdir().unwrap();
        let env = env_in(dir.path());
        write(
            &dir.path().join("certs-dev/ca.pem"),
            "-----BEGIN CERTIFICATE-----\n",
        );
        write(
            &dir.path().join("certs-dev/agencies/midori-hoken.pem"),
            "-----BEGIN CERTIFICATE-----\n",
        );
        let selection = Selection {
            agency: Some("x-agency".into()),
            ..Selection::default()
        };
        let creds = Credentials::resolve(&selection, &env).unwrap();
        let text = creds
            .connect_options(Duration::from_secs(1))
            .unwrap_err()
            .to_string();
        assert!(text.starts_with("certificate file "), "{text}");
        assert!(text.contains("agencies/x-agency.pem not found"), "{text}");
        assert!(text.contains("tsunagu-hub -- certs dev --dir"), "{text}");
        assert!(text.contains("known here: midori-hoken"), "{text}");
    }

    #[test]
    fn the_default_profile_is_read_from_the_xdg_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut env = env_in(dir.path());
        env.xdg_config_home = Some(dir.path().join("xdg"));
        write(
            &dir.path().join("xdg/tsunagu/config.toml"),
            r#"
                default_profile = "aoba"
                [profiles.aoba]
                hub = "https://hub.example.jp:7443"
                ca = "ca.pem"
                cert = "/etc/tsunagu/aoba.pem"
                key = "~/keys/aoba.key"
            "#,
        );
        let creds = Credentials::resolve(&Selection::default(), &env).unwrap();
        assert_eq!(creds.hub, "https://hub.example.jp:7443");
        assert_eq!(creds.ca, dir.path().join("xdg/tsunagu/ca.pem"));
        assert_eq!(creds.cert, Some(PathBuf::from("/etc/tsunagu/aoba.pem")));
        assert_eq!(creds.key, Some(dir.path().join("home/keys/aoba.key")));
        assert_eq!(creds.server_name, "hub.example.jp");
        assert_eq!(creds.age_identity, None);
        assert!(
            matches!(creds.source, CredentialSource::Profile { ref name, .. } if name == "aoba")
        );
    }

    #[test]
    fn profile_flag_picks_a_named_profile_and_hub_flag_overrides_it() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("tsunagu.toml");
        write(
            &config,
            r#"
                default_profile = "a"
                [profiles.a]
                ca = "a.pem"
                [profiles.b]
                hub = "https://b.example.jp"
                ca = "b.pem"
                server_name = "hub.internal"
            "#,
        );
        let selection = Selection {
            profile: Some("b".into()),
            config: Some(config),
            hub: Some("https://override.example.jp".into()),
            ..Selection::default()
        };
        let creds = Credentials::resolve(&selection, &env_in(dir.path())).unwrap();
        assert_eq!(creds.ca, dir.path().join("b.pem"));
        assert_eq!(creds.hub, "https://override.example.jp");
        assert_eq!(creds.server_name, "hub.internal");
    }

    #[test]
    fn an_unknown_profile_lists_the_ones_there_are() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("c.toml");
        write(
            &config,
            "[profiles.a]\nca = \"a.pem\"\n[profiles.b]\nca = \"b.pem\"\n",
        );
        let selection = Selection {
            profile: Some("prod".into()),
            config: Some(config),
            ..Selection::default()
        };
        let text = Credentials::resolve(&selection, &env_in(dir.path()))
            .unwrap_err()
            .to_string();
        assert!(text.contains("profile `prod` is not defined"), "{text}");
        assert!(text.contains("available: a, b"), "{text}");
    }

    #[test]
    fn an_explicit_config_file_that_is_missing_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let selection = Selection {
            config: Some(dir.path().join("absent.toml")),
            ..Selection::default()
        };
        assert!(matches!(
            Credentials::resolve(&selection, &env_in(dir.path())),
            Err(ClientError::MissingFile {
                what: "configuration",
                ..
            })
        ));
    }

    #[test]
    fn a_misspelt_profile_key_is_reported() {
        let err = ConfigFile::parse(
            "[profiles.a]\nca = \"x\"\ncertificate = \"y\"\n",
            Path::new("c.toml"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("certificate"), "{err}");
    }

    #[test]
    fn a_certificate_without_a_key_in_a_profile_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("c.toml");
        write(&config, "[profiles.a]\nca = \"a.pem\"\ncert = \"a.crt\"\n");
        let selection = Selection {
            profile: Some("a".into()),
            config: Some(config),
            ..Selection::default()
        };
        assert!(matches!(
            Credentials::resolve(&selection, &env_in(dir.path())),
            Err(ClientError::InvalidConfig { .. })
        ));
    }

    #[test]
    fn server_name_follows_the_hub_host_unless_it_is_an_address() {
        assert_eq!(
            server_name_for("https://hub.example.jp:7443"),
            "hub.example.jp"
        );
        assert_eq!(server_name_for("https://127.0.0.1:7443"), "localhost");
        assert_eq!(server_name_for("https://[::1]:7443/"), "localhost");
        assert_eq!(server_name_for("hub.example.jp"), "hub.example.jp");
    }
}

//! Hub configuration: a TOML file plus `TSUNAGU_*` environment overrides, with defaults that run
//! the development hub with no file at all.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::domain::referral::DeadlinePolicy;

/// The port the hub listens on by default (documented in the README).
pub const DEFAULT_PORT: u16 = 7443;

/// Everything the hub needs to start.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on; port 0 picks a free port (tests).
    pub listen: SocketAddr,
    /// `sqlite://path` (created if missing) or `postgres://...`.
    pub database_url: String,
    /// The SPIFFE trust domain of agency identities: `spiffe://<trust_domain>/agency/<id>`.
    pub trust_domain: String,
    pub tls: TlsSettings,
    pub limits: Limits,
    pub deadlines: DeadlinePolicy,
    pub council: CouncilSettings,
    /// Register the development agencies of certs-dev when the directory is empty.
    pub register_dev_agencies: bool,
    /// How often the timer task looks for passed deadlines.
    #[serde(with = "seconds")]
    pub timer_interval: Duration,
    /// Log format: "pretty" for people, "json" for log collectors.
    pub log_format: String,
    /// The Prometheus endpoint: `[metrics]` in the config file.
    pub metrics: MetricsSettings,
    /// OpenTelemetry traces over OTLP: `[traces]` in the config file, off by default.
    pub traces: TracesSettings,
    /// How often the hub looks at the expiry of its certificate, the CA and the agencies'
    /// certificates (warnings 30, 14, 7 and 1 days ahead).
    #[serde(with = "seconds")]
    pub certificate_check_interval: Duration,
    /// The hub's audit signing key (Ed25519, PKCS#8 PEM), made with mode 0600 on first start
    /// when missing [default: `audit-signing.key` next to the SQLite database, else
    /// `data/audit-signing.key`]. Hub instances sharing one PostgreSQL database must share it.
    pub audit_signing_key: Option<PathBuf>,
}

/// The Prometheus scrape endpoint, on a listener of its own (plain HTTP, no client
/// certificate), so that it is never reachable where the agencies' port is.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// Serve `GET /metrics` at all.
    pub enabled: bool,
    /// Where: loopback by default; put a scraper on the same machine or a reverse proxy in
    /// front rather than opening it to the network.
    pub listen: SocketAddr,
}

/// OpenTelemetry traces: one span per call (method, gRPC code, agency; never a payload or an
/// id of a case), exported over OTLP/gRPC to a collector the operator runs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TracesSettings {
    /// The collector's OTLP/gRPC endpoint, e.g. `http://127.0.0.1:4317`; none means no traces.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the spans, to tell several hubs apart in one collector.
    pub service_name: String,
}

impl Default for TracesSettings {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            service_name: "tsunagu-hub".to_owned(),
        }
    }
}

impl TracesSettings {
    /// Checks the endpoint is an http(s) URL with a host, so a typo fails at start-up and in
    /// `check-config` rather than as spans that silently never arrive.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let Some(endpoint) = &self.otlp_endpoint else {
            return Ok(());
        };
        let parsed: Result<http::Uri, _> = endpoint.parse();
        let ok = parsed.as_ref().is_ok_and(|uri| {
            matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some()
        });
        if ok {
            Ok(())
        } else {
            Err(SettingsError::Invalid {
                key: "traces.otlp_endpoint",
                reason: format!(
                    "{endpoint:?} is not an OTLP/gRPC endpoint: give a URL such as \
                     http://127.0.0.1:4317"
                ),
            })
        }
    }
}

/// The port of the metrics endpoint by default (documented in the README).
pub const DEFAULT_METRICS_PORT: u16 = 9464;

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], DEFAULT_METRICS_PORT)),
        }
    }
}

/// TLS material, all PEM files.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// The CA that issues agency certificates.
    pub client_ca: PathBuf,
    /// The hub's certificate chain and key.
    pub certificate: PathBuf,
    pub private_key: PathBuf,
    /// Certificate revocation lists of the client CA. Re-read on SIGHUP and when they change.
    pub crls: Vec<PathBuf>,
    /// A TLS handshake that takes longer is dropped.
    #[serde(with = "seconds")]
    pub handshake_timeout: Duration,
    /// How often the CRL files are checked for changes.
    #[serde(with = "seconds")]
    pub reload_interval: Duration,
}

/// Size limits on everything that comes in.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest sealed field (body, note, header, evidence), in bytes.
    pub max_sealed_bytes: usize,
    /// Largest gRPC message, in bytes.
    pub max_message_bytes: usize,
    /// Concurrent requests per connection.
    pub max_concurrent_streams: u32,
    /// Memory for feed entries kept to serve `ListEvents` and subscriptions again without the
    /// database, in bytes; 0 keeps none.
    pub feed_cache_bytes: usize,
}

/// The 要対協 (council) settings: `[council]` in the config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CouncilSettings {
    /// Days between reviews of a registered case when the coordinator gives no interval. Three
    /// months is the usual 進行管理 rhythm of a 実務者会議.
    pub review_interval_days: u32,
    /// Display names of municipalities by code (e.g. "141178" = "横浜市青葉区"), printed on
    /// meeting packs; a municipality without one shows its code.
    pub municipality_names: BTreeMap<String, String>,
}

impl Default for CouncilSettings {
    fn default() -> Self {
        Self {
            review_interval_days: 90,
            municipality_names: BTreeMap::new(),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)),
            database_url: "sqlite://data/tsunagu.db".to_owned(),
            trust_domain: crate::dev_pki::DEV_TRUST_DOMAIN.to_owned(),
            tls: TlsSettings::default(),
            limits: Limits::default(),
            deadlines: DeadlinePolicy::default(),
            council: CouncilSettings::default(),
            register_dev_agencies: true,
            timer_interval: Duration::from_secs(30),
            log_format: "pretty".to_owned(),
            metrics: MetricsSettings::default(),
            traces: TracesSettings::default(),
            certificate_check_interval: Duration::from_secs(60 * 60),
            audit_signing_key: None,
        }
    }
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self::in_directory(Path::new("certs-dev"))
    }
}

impl TlsSettings {
    /// The layout `tsunagu-hub certs dev` writes: ca.pem, hub.pem, hub.key, crl.pem.
    pub fn in_directory(dir: &Path) -> Self {
        Self {
            client_ca: dir.join("ca.pem"),
            certificate: dir.join("hub.pem"),
            private_key: dir.join("hub.key"),
            crls: vec![dir.join("crl.pem")],
            handshake_timeout: Duration::from_secs(10),
            reload_interval: Duration::from_secs(2),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_sealed_bytes: 1024 * 1024,
            max_message_bytes: 4 * 1024 * 1024,
            max_concurrent_streams: 256,
            feed_cache_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path} is not valid")]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("environment variable {name} has an invalid value: {reason}")]
    Env { name: &'static str, reason: String },
    #[error("setting {key} is invalid: {reason}")]
    Invalid { key: &'static str, reason: String },
}

impl Settings {
    /// Loads `file` when given (it must exist), then applies environment overrides.
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        let mut settings = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                toml::from_str(&text).map_err(|source| SettingsError::Parse {
                    path: path.to_owned(),
                    source,
                })?
            }
            None => Settings::default(),
        };
        settings.apply_env(|name| std::env::var(name).ok())?;
        settings.check()?;
        Ok(settings)
    }

    /// Refuses values that parse but make no sense, so the hub does not start with them.
    pub fn check(&self) -> Result<(), SettingsError> {
        self.deadlines
            .validate()
            .map_err(|error| SettingsError::Invalid {
                key: error.field,
                reason: error.reason,
            })?;
        let days = self.council.review_interval_days;
        let max = crate::domain::council::MAX_REVIEW_INTERVAL_DAYS;
        if !(1..=max).contains(&days) {
            return Err(SettingsError::Invalid {
                key: "council.review_interval_days",
                reason: format!("{days} is not 1..={max} days"),
            });
        }
        self.traces.validate()
    }

    /// Applies `TSUNAGU_*` overrides; `lookup` is the environment (injectable for tests).
    pub fn apply_env(
        &mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<(), SettingsError> {
        if let Some(value) = lookup("TSUNAGU_LISTEN") {
            self.listen = value.parse().map_err(|_| SettingsError::Env {
                name: "TSUNAGU_LISTEN",
                reason: "expected an address such as 127.0.0.1:7443".to_owned(),
            })?;
        }
        if let Some(value) = lookup("TSUNAGU_DATABASE_URL") {
            self.database_url = value;
        }
        if let Some(value) = lookup("TSUNAGU_TRUST_DOMAIN") {
            self.trust_domain = value;
        }
        if let Some(value) = lookup("TSUNAGU_TLS_DIR") {
            let reload = self.tls.reload_interval;
            let timeout = self.tls.handshake_timeout;
            self.tls = TlsSettings::in_directory(Path::new(&value));
            self.tls.reload_interval = reload;
            self.tls.handshake_timeout = timeout;
        }
        if let Some(value) = lookup("TSUNAGU_REGISTER_DEV_AGENCIES") {
            self.register_dev_agencies = match value.as_str() {
                "1" | "true" | "yes" => true,
                "0" | "false" | "no" => false,
                _ => {
                    return Err(SettingsError::Env {
                        name: "TSUNAGU_REGISTER_DEV_AGENCIES",
                        reason: "expected true or false".to_owned(),
                    });
                }
            };
        }
        if let Some(value) = lookup("TSUNAGU_COUNCIL_REVIEW_INTERVAL_DAYS") {
            self.council.review_interval_days = value.parse().map_err(|_| SettingsError::Env {
                name: "TSUNAGU_COUNCIL_REVIEW_INTERVAL_DAYS",
                reason: "expected a number of days such as 90".to_owned(),
            })?;
        }
        if let Some(value) = lookup("TSUNAGU_METRICS_LISTEN") {
            if value == "off" {
                self.metrics.enabled = false;
            } else {
                self.metrics.listen = value.parse().map_err(|_| SettingsError::Env {
                    name: "TSUNAGU_METRICS_LISTEN",
                    reason: "expected an address such as 127.0.0.1:9464, or off".to_owned(),
                })?;
                self.metrics.enabled = true;
            }
        }
        if let Some(value) = lookup("TSUNAGU_OTLP_ENDPOINT") {
            self.traces.otlp_endpoint = (!value.is_empty() && value != "off").then_some(value);
        }
        if let Some(value) = lookup("TSUNAGU_LOG_FORMAT") {
            self.log_format = value;
        }
        if let Some(value) = lookup("TSUNAGU_AUDIT_SIGNING_KEY") {
            self.audit_signing_key = Some(PathBuf::from(value));
        }
        Ok(())
    }
}

impl Settings {
    /// Where the audit signing key is: as configured, else next to the SQLite database file, else
    /// `data/audit-signing.key`.
    pub fn audit_signing_key_path(&self) -> PathBuf {
        if let Some(path) = &self.audit_signing_key {
            return path.clone();
        }
        let file = self
            .database_url
            .strip_prefix("sqlite://")
            .or_else(|| self.database_url.strip_prefix("sqlite:"))
            .map(|rest| rest.split('?').next().unwrap_or_default())
            .filter(|path| !path.is_empty() && !path.starts_with(':'));
        match file.and_then(|file| Path::new(file).parent()) {
            Some(dir) => dir.join("audit-signing.key"),
            None => PathBuf::from("data/audit-signing.key"),
        }
    }
}

/// Durations in config files are whole seconds.
mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_listen_on_loopback_with_the_documented_port() {
        let settings = Settings::default();
        assert_eq!(settings.listen.to_string(), "127.0.0.1:7443");
        assert!(settings.database_url.starts_with("sqlite://"));
    }

    #[test]
    fn environment_overrides_the_file() {
        let mut settings: Settings =
            toml::from_str("listen = \"127.0.0.1:9000\"\ndatabase_url = \"sqlite://a.db\"")
                .unwrap();
        settings
            .apply_env(|name| (name == "TSUNAGU_DATABASE_URL").then(|| "sqlite://b.db".to_owned()))
            .unwrap();
        assert_eq!(settings.listen.port(), 9000);
        assert_eq!(settings.database_url, "sqlite://b.db");
    }

    #[test]
    fn a_deadline_section_in_hours_as_before_still_loads() {
        let settings: Settings = toml::from_str(
            "[deadlines]\ncoordinator_after_hours = 12\n[deadlines.urgent]\n\
             deliver_within_hours = 2\nrespond_within_hours = 8\n\
             connect_within_hours = 48\nconfirm_within_hours = 96\n",
        )
        .unwrap();
        settings.check().unwrap();
        assert_eq!(
            settings.deadlines.urgent.respond,
            crate::domain::deadlines::Period::Hours(8)
        );
        assert_eq!(settings.deadlines.coordinator_after_hours, 12);
    }

    #[test]
    fn an_emergency_in_business_days_stops_the_hub_naming_the_key() {
        let settings: Settings = toml::from_str(
            "[deadlines.emergency]\ndeliver_within_hours = 1\n\
             respond_within_business_days = 1\nconnect_within_hours = 24\n\
             confirm_within_hours = 48\n",
        )
        .unwrap();
        let err = settings.check().unwrap_err().to_string();
        assert!(
            err.contains("deadlines.emergency.respond_within_business_days"),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_config_key_is_refused() {
        assert!(toml::from_str::<Settings>("lisen = \"127.0.0.1:1\"").is_err());
    }

    #[test]
    fn the_council_reviews_every_ninety_days_unless_configured_otherwise() {
        assert_eq!(Settings::default().council.review_interval_days, 90);
        let settings: Settings = toml::from_str(
            "[council]\nreview_interval_days = 60\nmunicipality_names = { 141178 = \"横浜市青葉区\" }",
        )
        .unwrap();
        assert_eq!(settings.council.review_interval_days, 60);
        assert_eq!(
            settings
                .council
                .municipality_names
                .get("141178")
                .map(String::as_str),
            Some("横浜市青葉区")
        );
        assert!(toml::from_str::<Settings>("[council]\nreview_every = 60").is_err());
    }

    #[test]
    fn a_review_interval_of_zero_days_is_refused() {
        let mut settings = Settings::default();
        settings.council.review_interval_days = 0;
        let error = settings.check().unwrap_err();
        assert!(error.to_string().contains("council.review_interval_days"));
    }

    #[test]
    fn metrics_are_served_on_loopback_unless_configured_otherwise() {
        let settings = Settings::default();
        assert!(settings.metrics.enabled);
        assert!(settings.metrics.listen.ip().is_loopback());
        let settings: Settings = toml::from_str("[metrics]\nlisten = \"0.0.0.0:9100\"").unwrap();
        assert_eq!(settings.metrics.listen.port(), 9100);
        let mut settings = Settings::default();
        settings
            .apply_env(|name| (name == "TSUNAGU_METRICS_LISTEN").then(|| "off".to_owned()))
            .unwrap();
        assert!(!settings.metrics.enabled);
    }

    #[test]
    fn the_audit_signing_key_lives_next_to_the_sqlite_database_unless_configured() {
        let mut settings = Settings {
            database_url: "sqlite:///var/lib/tsunagu/hub.db?mode=rwc".to_owned(),
            ..Settings::default()
        };
        assert_eq!(
            settings.audit_signing_key_path(),
            Path::new("/var/lib/tsunagu/audit-signing.key")
        );
        settings.database_url = "postgres://hub@db/tsunagu".to_owned();
        assert_eq!(
            settings.audit_signing_key_path(),
            Path::new("data/audit-signing.key")
        );
        settings
            .apply_env(|name| (name == "TSUNAGU_AUDIT_SIGNING_KEY").then(|| "/k.pem".to_owned()))
            .unwrap();
        assert_eq!(settings.audit_signing_key_path(), Path::new("/k.pem"));
    }

    #[test]
    fn a_bad_listen_override_names_the_variable() {
        let mut settings = Settings::default();
        let error = settings
            .apply_env(|name| (name == "TSUNAGU_LISTEN").then(|| "nowhere".to_owned()))
            .unwrap_err();
        assert!(error.to_string().contains("TSUNAGU_LISTEN"));
    }

    #[test]
    fn traces_are_off_by_default_and_a_malformed_endpoint_is_refused_by_name() {
        let settings = Settings::default();
        assert_eq!(settings.traces.otlp_endpoint, None);
        settings.check().unwrap();
        let settings: Settings =
            toml::from_str("[traces]\notlp_endpoint = \"http://127.0.0.1:4317\"").unwrap();
        settings.check().unwrap();
        for bad in ["127.0.0.1:4317", "ftp://collector", "http://", "not a url"] {
            let mut settings = Settings::default();
            settings.traces.otlp_endpoint = Some(bad.to_owned());
            let error = settings.check().unwrap_err();
            assert!(
                error.to_string().contains("traces.otlp_endpoint"),
                "{bad}: {error}"
            );
        }
        let mut settings = Settings::default();
        settings
            .apply_env(|name| (name == "TSUNAGU_OTLP_ENDPOINT").then(|| "http://c:4317".to_owned()))
            .unwrap();
        assert_eq!(
            settings.traces.otlp_endpoint.as_deref(),
            Some("http://c:4317")
        );
    }
}

//! The end-to-end test harness: builds a PKI with rcgen, starts a real hub on 127.0.0.1:0 with a
//! fresh SQLite file, and connects real clients over mutual TLS.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tempfile::TempDir;
use tokio::sync::oneshot;
use tsunagu_client::{ConnectOptions, Hub};
use tsunagu_hub::casework::audit::AuditMode;
use tsunagu_hub::domain::{
    Agency, AgencyId, AgencyKind, AgencyStatus, Clock, ManualClock, Municipality,
};
use tsunagu_hub::pki::{CertificateAuthority, IssuedCertificate, Validity};
use tsunagu_hub::settings::TlsSettings;
use tsunagu_hub::store::{Locking, Store, StoreError};
use tsunagu_hub::{Application, Settings};

pub const TRUST_DOMAIN: &str = "tsunagu.test";
/// 横浜市青葉区
pub const MUNICIPALITY: &str = "141178";
/// 千代田区: a second municipality, for agencies that have nothing to do with the first.
pub const OTHER_MUNICIPALITY: &str = "131016";

/// The agencies every test hub registers: (id, kind, name, municipality, council member, coordinator).
pub const AGENCIES: &[(&str, &str, &str, &str, bool, bool)] = &[
    (
        "kodomo",
        "health_centre",
        "青葉区こども家庭センター",
        MUNICIPALITY,
        true,
        true,
    ),
    (
        "jisou",
        "child_guidance_centre",
        "北部児童相談所",
        MUNICIPALITY,
        true,
        false,
    ),
    (
        "hospital",
        "hospital",
        "青葉総合病院",
        MUNICIPALITY,
        true,
        false,
    ),
    (
        "nursery",
        "nursery",
        "あおば保育園",
        MUNICIPALITY,
        true,
        false,
    ),
    (
        "hiroba",
        "support_hub",
        "子育て支援拠点ひろば",
        MUNICIPALITY,
        false,
        false,
    ),
    (
        "chiyoda",
        "health_centre",
        "千代田区こども家庭センター",
        OTHER_MUNICIPALITY,
        true,
        true,
    ),
];

/// A PKI made for one test: the agency CA, an unrelated CA, and the hub's certificate.
pub struct TestPki {
    pub ca: CertificateAuthority,
    pub other_ca: CertificateAuthority,
    pub hub: IssuedCertificate,
    pub dir: PathBuf,
    crl_number: std::sync::atomic::AtomicU64,
}

/// How long test certificates live. The hub checks a client certificate's expiry against its own
/// clock, and tests move that clock forward by weeks to pass timers; a month-long certificate
/// then expired mid-test, depending on how long the test had taken so far.
const TEST_CERTIFICATE_DAYS: i64 = 400;

impl TestPki {
    pub fn generate(dir: &Path) -> TestPki {
        let ca = CertificateAuthority::generate(
            "Tsunagu Test CA",
            time::Duration::days(TEST_CERTIFICATE_DAYS),
        )
        .unwrap();
        let other_ca = CertificateAuthority::generate(
            "Unrelated CA",
            time::Duration::days(TEST_CERTIFICATE_DAYS),
        )
        .unwrap();
        let hub = ca
            .issue_server(
                &["localhost"],
                &["127.0.0.1".parse().unwrap()],
                Validity::days_from_now(TEST_CERTIFICATE_DAYS),
            )
            .unwrap();
        std::fs::write(dir.join("ca.pem"), ca.cert_pem()).unwrap();
        std::fs::write(dir.join("hub.pem"), &hub.cert_pem).unwrap();
        std::fs::write(dir.join("hub.key"), &hub.key_pem).unwrap();
        let pki = TestPki {
            ca,
            other_ca,
            hub,
            dir: dir.to_owned(),
            crl_number: std::sync::atomic::AtomicU64::new(1),
        };
        pki.publish_crl(&[]);
        pki
    }

    /// A valid certificate for an agency id.
    pub fn agency_certificate(&self, agency_id: &str) -> IssuedCertificate {
        self.ca
            .issue_agency(
                TRUST_DOMAIN,
                agency_id,
                Validity::days_from_now(TEST_CERTIFICATE_DAYS),
            )
            .unwrap()
    }

    /// Writes a new CRL revoking `serials` where the hub reads it.
    pub fn publish_crl(&self, serials: &[Vec<u8>]) {
        let number = self
            .crl_number
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let crl = self
            .ca
            .crl(serials, number, time::Duration::days(30))
            .unwrap();
        // Write then rename, so the hub never reads half a file.
        let temporary = self.dir.join("crl.pem.new");
        std::fs::write(&temporary, crl).unwrap();
        std::fs::rename(&temporary, self.dir.join("crl.pem")).unwrap();
    }

    pub fn tls_settings(&self) -> TlsSettings {
        let mut tls = TlsSettings::in_directory(&self.dir);
        tls.reload_interval = Duration::from_millis(100);
        tls.handshake_timeout = Duration::from_secs(5);
        tls
    }

    /// Writes `hub.toml` in the PKI's directory for the real `tsunagu-hub` binary: listening on
    /// `port`, a SQLite database under `data/`, no development agencies, this PKI's TLS files.
    /// `settings` are extra top-level keys, then `[sections]`, in TOML. Returns the file's path.
    pub fn write_hub_config(&self, port: u16, settings: &str) -> PathBuf {
        let dir = self.dir.display();
        let config = format!(
            "listen = \"127.0.0.1:{port}\"\n\
             database_url = \"sqlite://{dir}/data/hub.db\"\n\
             trust_domain = \"{TRUST_DOMAIN}\"\n\
             register_dev_agencies = false\n\
             {settings}\n\
             [tls]\nclient_ca = \"{dir}/ca.pem\"\ncertificate = \"{dir}/hub.pem\"\n\
             private_key = \"{dir}/hub.key\"\ncrls = [\"{dir}/crl.pem\"]\n"
        );
        let path = self.dir.join("hub.toml");
        std::fs::write(&path, config).unwrap();
        path
    }

    /// Connection options presenting `certificate` (or none).
    pub fn connect_options(
        &self,
        addr: SocketAddr,
        certificate: Option<&IssuedCertificate>,
    ) -> ConnectOptions {
        let mut options = ConnectOptions::new(
            format!("https://{addr}"),
            self.ca.cert_pem().as_bytes().to_vec(),
        );
        options.cert_pem = certificate.map(|c| c.cert_pem.as_bytes().to_vec());
        options.key_pem = certificate.map(|c| c.key_pem.as_bytes().to_vec());
        options.timeout = Duration::from_secs(10);
        options
    }
}

/// The domain agency for one row of `AGENCIES`.
pub fn test_agency(row: &(&str, &str, &str, &str, bool, bool)) -> Agency {
    let (id, kind, name, municipality, council, coordinator) = *row;
    let municipality = Municipality::parse(municipality).unwrap();
    Agency {
        id: AgencyId::parse(id).unwrap(),
        kind: AgencyKind::parse(kind).unwrap(),
        display_name: name.to_owned(),
        municipalities: vec![municipality.clone()],
        council_memberships: if council {
            vec![municipality.clone()]
        } else {
            vec![]
        },
        coordinator_of: if coordinator {
            vec![municipality]
        } else {
            vec![]
        },
        status: AgencyStatus::Active,
    }
}

/// A second hub instance started by `TestHub::another_instance`.
pub struct Instance {
    pub addr: SocketAddr,
    _shutdown: oneshot::Sender<()>,
    _server: tokio::task::JoinHandle<()>,
}

/// A hub running in this process on a free port, with its own PKI, database and clock.
pub struct TestHub {
    pub addr: SocketAddr,
    /// The Prometheus endpoint (each test hub has its own, on a free port).
    pub metrics_addr: Option<SocketAddr>,
    pub pki: TestPki,
    pub store: Arc<dyn Store>,
    pub clock: Arc<ManualClock>,
    pub database: TestDatabase,
    pub settings: Settings,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    _dir: TempDir,
}

impl TestHub {
    /// Starts a hub with the standard test agencies registered.
    pub async fn start() -> TestHub {
        Self::start_with(|_| {}).await
    }

    /// Starts a hub after `configure` adjusted its settings.
    pub async fn start_with(configure: impl FnOnce(&mut Settings)) -> TestHub {
        Self::start_audited(configure, AuditMode::On).await
    }

    /// As `start_with`, choosing whether the hub audits calls: only the audit benchmark turns
    /// auditing off, to measure what it costs.
    pub async fn start_audited(configure: impl FnOnce(&mut Settings), audit: AuditMode) -> TestHub {
        Self::start_on(postgres_url().as_deref(), configure, audit).await
    }

    /// As `start_audited`, on the PostgreSQL server `server` (a fresh database of its own), or
    /// on a fresh SQLite file when `None`, whatever the environment says.
    pub async fn start_on(
        server: Option<&str>,
        configure: impl FnOnce(&mut Settings),
        audit: AuditMode,
    ) -> TestHub {
        init_tracing();
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::generate(dir.path());
        let database = TestDatabase::create_on(server, dir.path()).await;
        let mut settings = Settings {
            listen: "127.0.0.1:0".parse().unwrap(),
            database_url: database.url.clone(),
            trust_domain: TRUST_DOMAIN.to_owned(),
            tls: pki.tls_settings(),
            register_dev_agencies: false,
            timer_interval: Duration::from_millis(100),
            metrics: tsunagu_hub::settings::MetricsSettings {
                enabled: true,
                listen: "127.0.0.1:0".parse().unwrap(),
            },
            // In the test's own directory, whichever database it runs on.
            audit_signing_key: Some(dir.path().join("audit-signing.key")),
            ..Settings::default()
        };
        configure(&mut settings);
        let clock = ManualClock::new();
        let application =
            Application::build_with(settings.clone(), clock.clone() as Arc<dyn Clock>, audit)
                .await
                .unwrap();
        let store = application.store();
        let agencies = AGENCIES.iter().map(test_agency).collect();
        insert_agencies(&*store, agencies, clock.now()).await;
        let addr = application.local_addr();
        let metrics_addr = application.metrics_addr();
        let (shutdown, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            application
                .run_until(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        TestHub {
            addr,
            metrics_addr,
            pki,
            store,
            clock,
            database,
            settings,
            shutdown: Some(shutdown),
            server: Some(server),
            _dir: dir,
        }
    }

    /// Another hub instance on the same database, PKI and settings (scale-out), listening on a
    /// port of its own. It stops when dropped.
    pub async fn another_instance(&self) -> Instance {
        let mut settings = self.settings.clone();
        settings.listen = "127.0.0.1:0".parse().unwrap();
        let application =
            Application::build_with_clock(settings, self.clock.clone() as Arc<dyn Clock>)
                .await
                .unwrap();
        let addr = application.local_addr();
        let (shutdown, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let _ = application
                .run_until(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Instance {
            addr,
            _shutdown: shutdown,
            _server: server,
        }
    }

    /// A client of another instance, connected as a registered test agency.
    pub async fn client_of(&self, instance: &Instance, agency_id: &str) -> Hub {
        let certificate = self.pki.agency_certificate(agency_id);
        Hub::connect(&self.pki.connect_options(instance.addr, Some(&certificate)))
            .await
            .unwrap()
    }

    /// A client connected as a registered test agency.
    pub async fn client(&self, agency_id: &str) -> Hub {
        let certificate = self.pki.agency_certificate(agency_id);
        self.connect(Some(&certificate)).await.unwrap()
    }

    /// Connects presenting `certificate`; errors come back as text for assertions.
    pub async fn connect(&self, certificate: Option<&IssuedCertificate>) -> Result<Hub, String> {
        Hub::connect(&self.pki.connect_options(self.addr, certificate))
            .await
            .map_err(|error| format!("{error:#}"))
    }

    /// Sets an agency's status directly in the database, as `tsunagu-hub agency suspend` does.
    pub async fn set_status(&self, agency_id: &str, status: AgencyStatus) {
        let (id, now) = (AgencyId::parse(agency_id).unwrap(), self.clock.now());
        let set = self
            .store
            .write(Locking::Exclusive, move |tx| {
                Box::pin(async move { tx.set_agency_status(&id, status, now).await })
            })
            .await
            .unwrap();
        assert!(set, "no agency {agency_id}");
    }

    /// Stops the hub and waits until it has drained.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
        }
        self.store.close().await;
        self.database.drop_database().await;
    }
}

impl Drop for TestHub {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// Logs of the hub under test go to the test output (shown for failing tests only).
pub fn init_tracing() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}

/// The path of a workspace binary, built once per test run so that tests drive the real thing.
///
/// Every binary comes from one `cargo build --workspace --all-targets`: that resolves the
/// dependencies' features exactly as `cargo test --workspace` (the README's test command) does,
/// so the build reuses what the test build compiled and only links the binaries. Building each
/// package on its own (`-p`) would resolve other features and compile the whole dependency
/// graph again, once per package, inside the test run.
pub fn workspace_binary(package: &str, name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let mut command = std::process::Command::new(cargo);
        // `cargo test` gives the test process its package's variables (CARGO_MANIFEST_DIR, ...).
        // Passed on, they make build scripts that watch them (ring's) run again, and everything
        // above ring rebuild, on every switch between this build and a plain `cargo build`.
        for (variable, _) in std::env::vars_os() {
            let variable = variable.to_string_lossy();
            if [
                "CARGO_MANIFEST_",
                "CARGO_PKG_",
                "CARGO_CRATE_",
                "CARGO_BIN_",
                "CARGO_PRIMARY_",
            ]
            .iter()
            .any(|prefix| variable.starts_with(prefix))
                || variable == "CARGO_TARGET_TMPDIR"
            {
                command.env_remove(&*variable);
            }
        }
        let status = command
            .current_dir(&root)
            .args(["build", "--quiet", "--workspace", "--all-targets"])
            .status()
            .unwrap();
        assert!(status.success(), "building the workspace's binaries failed");
    });
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let binary = target.join("debug").join(name);
    assert!(binary.exists(), "package {package} built no binary {name}");
    binary
}

pub mod browser;
pub mod fixtures;
pub mod http;
pub mod pg_pair;
pub mod proxy;

/// The PostgreSQL server the suite runs against when `TSUNAGU_TEST_POSTGRES_URL` is set
/// (`.ci/run` sets it); each test then gets a database of its own.
pub fn postgres_url() -> Option<String> {
    std::env::var("TSUNAGU_TEST_POSTGRES_URL")
        .ok()
        .filter(|url| !url.is_empty())
}

/// For tests that only make sense on PostgreSQL: the server URL, or `None` to skip — except
/// where `TSUNAGU_REQUIRE_POSTGRES=1` (CI), where a missing server fails the test.
pub fn postgres_or_skip(test: &str) -> Option<String> {
    let url = postgres_url();
    if url.is_none() {
        assert!(
            std::env::var("TSUNAGU_REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "{test} needs PostgreSQL: set TSUNAGU_TEST_POSTGRES_URL"
        );
        eprintln!("{test}: skipped, TSUNAGU_TEST_POSTGRES_URL is not set");
    }
    url
}

/// A database for one test: a SQLite file in the test's directory, or a fresh PostgreSQL
/// database (created here, dropped by `drop_database`) when the suite runs on PostgreSQL.
pub struct TestDatabase {
    pub url: String,
    postgres: Option<(String, String)>,
}

impl TestDatabase {
    pub async fn create(dir: &Path) -> TestDatabase {
        Self::create_on(postgres_url().as_deref(), dir).await
    }

    /// A database on `server` (PostgreSQL), or a SQLite file in `dir` when `server` is `None`.
    pub async fn create_on(server: Option<&str>, dir: &Path) -> TestDatabase {
        let Some(server) = server.map(str::to_owned) else {
            return TestDatabase {
                url: format!("sqlite://{}", dir.join("hub.db").display()),
                postgres: None,
            };
        };
        let name = format!("tsunagu_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = connect_postgres(&server).await;
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
            .unwrap();
        TestDatabase {
            url: database_url(&server, &name),
            postgres: Some((server, name)),
        }
    }

    /// Drops a PostgreSQL test database (a SQLite file goes with its directory).
    pub async fn drop_database(&mut self) {
        if let Some((server, name)) = self.postgres.take() {
            use sqlx::Connection as _;
            // A server the test took down (the failover test kills its primary) has nothing
            // left to drop.
            let Ok(mut admin) = sqlx::PgConnection::connect(&server).await else {
                return;
            };
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .execute(&mut admin)
                .await;
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if self.postgres.is_some() {
            // A test that panicked before stopping its hub still cleans up after itself.
            let mut database = TestDatabase {
                url: self.url.clone(),
                postgres: self.postgres.take(),
            };
            let _ = std::thread::spawn(move || {
                if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    runtime.block_on(database.drop_database());
                }
            })
            .join();
        }
    }
}

async fn connect_postgres(url: &str) -> sqlx::PgConnection {
    use sqlx::Connection as _;
    sqlx::PgConnection::connect(url)
        .await
        .unwrap_or_else(|error| panic!("cannot reach PostgreSQL at {url}: {error}"))
}

/// `server` with its database name replaced by `name`.
fn database_url(server: &str, name: &str) -> String {
    let (base, query) = match server.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (server, String::new()),
    };
    let authority_end = base
        .find("://")
        .map(|scheme| scheme + 3)
        .and_then(|start| base[start..].find('/').map(|slash| start + slash))
        .unwrap_or(base.len());
    format!("{}/{name}{query}", &base[..authority_end])
}

/// Runs the real `tsunagu` CLI in `dir` against the hub on `port`, with its own state directory
/// (`dir/state`) and none of the caller's configuration.
pub fn tsunagu(dir: &Path, port: u16, args: &[&str]) -> std::process::Output {
    std::process::Command::new(workspace_binary("tsunagu-client", "tsunagu"))
        .current_dir(dir)
        .env_remove("TSUNAGU_CONFIG")
        .env_remove("TSUNAGU_CERTS_DEV")
        .env_remove("TSUNAGU_KNOWN_KEYS")
        .env("XDG_STATE_HOME", dir.join("state"))
        .args(["--hub", &format!("https://127.0.0.1:{port}")])
        .args(args)
        .output()
        .unwrap()
}

/// Registers `agencies` directly in the store, as `tsunagu-hub agency add` does, in one write.
pub async fn insert_agencies(
    store: &dyn Store,
    agencies: Vec<Agency>,
    at: tsunagu_hub::domain::Timestamp,
) {
    store
        .write(Locking::Exclusive, move |tx| {
            Box::pin(async move {
                for agency in &agencies {
                    tx.insert_agency(agency, at).await?;
                }
                Ok::<_, StoreError>(())
            })
        })
        .await
        .unwrap();
}

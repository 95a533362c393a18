//! A PostgreSQL primary and its synchronous standby, as two clusters made with Debian's
//! `pg_createcluster` on free ports for one test, and dropped when it ends: the failover test
//! kills the primary and promotes the standby, so every run needs a fresh pair.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// The standby's name for the primary's `synchronous_standby_names`.
const STANDBY_NAME: &str = "tsunagu_standby";

/// Two clusters: `primary_port` streams to `standby_port`, synchronously.
pub struct StandbyPair {
    pub version: String,
    pub primary: String,
    pub standby: String,
    pub primary_port: u16,
    pub standby_port: u16,
}

/// Whether this machine can make a pair (Debian's PostgreSQL tools, and root to run them),
/// and if not, why.
pub fn unavailable_because() -> Option<String> {
    if Command::new("pg_createcluster")
        .arg("--help")
        .output()
        .is_err()
    {
        return Some("pg_createcluster is not installed (postgresql-common)".to_owned());
    }
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("making PostgreSQL clusters needs root".to_owned());
    }
    None
}

fn run(program: &str, args: &[&str]) {
    let output = Command::new(program).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The newest PostgreSQL installed (its number under /usr/lib/postgresql).
fn installed_version() -> String {
    let mut versions: Vec<u32> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries under /usr/lib/postgresql")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    versions.sort_unstable();
    versions.last().expect("a PostgreSQL version").to_string()
}

impl StandbyPair {
    /// Makes and starts the pair, and waits until the standby streams synchronously.
    pub async fn start() -> StandbyPair {
        let version = installed_version();
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let pair = StandbyPair {
            primary: format!("tsunagu_p_{}", &tag[..8]),
            standby: format!("tsunagu_s_{}", &tag[..8]),
            primary_port: free_port(),
            standby_port: free_port(),
            version,
        };
        let v = pair.version.as_str();
        let primary_port = pair.primary_port.to_string();
        let standby_port = pair.standby_port.to_string();
        run("pg_createcluster", &[v, &pair.primary, "-p", &primary_port]);
        pair.configure(
            &pair.primary,
            &format!(
                "listen_addresses = '127.0.0.1'\nwal_level = replica\nmax_wal_senders = 4\n\
                 synchronous_standby_names = '{STANDBY_NAME}'\nsynchronous_commit = on\n"
            ),
        );
        pair.trust_local_connections(&pair.primary);
        run("pg_ctlcluster", &[v, &pair.primary, "start"]);

        // The standby: a cluster whose data directory is replaced by a base backup of the
        // primary, told to follow it under the name the primary waits for.
        run("pg_createcluster", &[v, &pair.standby, "-p", &standby_port]);
        pair.configure(&pair.standby, "listen_addresses = '127.0.0.1'\n");
        pair.trust_local_connections(&pair.standby);
        // Emptied, not removed: its parent belongs to root, the directory to postgres.
        let data = pair.data_directory(&pair.standby);
        for entry in std::fs::read_dir(&data).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                std::fs::remove_dir_all(path).unwrap();
            } else {
                std::fs::remove_file(path).unwrap();
            }
        }
        run(
            "runuser",
            &[
                "-u",
                "postgres",
                "--",
                "pg_basebackup",
                "-h",
                "127.0.0.1",
                "-p",
                &primary_port,
                "-U",
                "postgres",
                "-D",
                data.to_str().unwrap(),
                "-X",
                "stream",
                "-R",
            ],
        );
        let mut auto = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.auto.conf"))
            .unwrap();
        std::io::Write::write_all(
            &mut auto,
            format!(
                "\nprimary_conninfo = 'host=127.0.0.1 port={primary_port} user=postgres \
                 application_name={STANDBY_NAME}'\n"
            )
            .as_bytes(),
        )
        .unwrap();
        run("pg_ctlcluster", &[v, &pair.standby, "start"]);
        pair.wait_until_synchronous().await;
        pair
    }

    /// Settings of the test's own, in the cluster's conf.d (Debian's postgresql.conf reads it).
    fn configure(&self, cluster: &str, settings: &str) {
        let dir = format!("/etc/postgresql/{}/{cluster}/conf.d", self.version);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(format!("{dir}/tsunagu-test.conf"), settings).unwrap();
    }

    fn trust_local_connections(&self, cluster: &str) {
        let hba = format!("/etc/postgresql/{}/{cluster}/pg_hba.conf", self.version);
        std::fs::write(
            hba,
            "local all all trust\nhost all all 127.0.0.1/32 trust\n\
             local replication all trust\nhost replication all 127.0.0.1/32 trust\n",
        )
        .unwrap();
    }

    fn data_directory(&self, cluster: &str) -> PathBuf {
        PathBuf::from(format!("/var/lib/postgresql/{}/{cluster}", self.version))
    }

    /// `postgres://postgres@127.0.0.1:<primary>/postgres`
    pub fn primary_url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres",
            self.primary_port
        )
    }

    /// `postgres://postgres@127.0.0.1:<standby>/postgres`
    pub fn standby_url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres",
            self.standby_port
        )
    }

    async fn wait_until_synchronous(&self) {
        use sqlx::Connection as _;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(mut primary) = sqlx::PgConnection::connect(&self.primary_url()).await {
                let state: Option<String> = sqlx::query_scalar(
                    "SELECT sync_state FROM pg_stat_replication WHERE application_name = $1",
                )
                .bind(STANDBY_NAME)
                .fetch_optional(&mut primary)
                .await
                .unwrap_or(None);
                if state.as_deref() == Some("sync") {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the standby did not stream synchronously within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Kills the primary's postmaster with SIGKILL, as a crash or a lost machine would.
    pub fn kill_primary(&self) {
        let pid_file = self.data_directory(&self.primary).join("postmaster.pid");
        let pid = std::fs::read_to_string(pid_file).unwrap();
        let pid = pid.lines().next().unwrap().trim().to_owned();
        run("kill", &["-KILL", &pid]);
    }

    /// Promotes the standby to primary, and waits until it accepts writes.
    pub async fn promote_standby(&self) {
        use sqlx::Connection as _;
        run("pg_ctlcluster", &[&self.version, &self.standby, "promote"]);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(mut standby) = sqlx::PgConnection::connect(&self.standby_url()).await {
                let in_recovery: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
                    .fetch_one(&mut standby)
                    .await
                    .unwrap_or(true);
                if !in_recovery {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the standby was not promoted within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for StandbyPair {
    fn drop(&mut self) {
        for cluster in [&self.standby, &self.primary] {
            let _ = Command::new("pg_dropcluster")
                .args(["--stop", &self.version, cluster])
                .output();
            // pg_dropcluster leaves a configuration directory holding files of ours.
            let _ = std::fs::remove_dir_all(format!("/etc/postgresql/{}/{cluster}", self.version));
            let _ = std::fs::remove_dir_all(self.data_directory(cluster));
            let _ = std::fs::remove_file(format!(
                "/var/log/postgresql/postgresql-{}-{cluster}.log",
                self.version
            ));
        }
    }
}

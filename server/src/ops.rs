//! The operator's maintenance work: checking a config file before a restart, backing up and
//! restoring the embedded SQLite database while checking the audit chain of the result, and
//! exporting everything the audit log says about one case (a disclosure request).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::sync::Arc;

use sqlx::ConnectOptions as _;
use sqlx::sqlite::SqliteConnectOptions;

use crate::casework::audit::{ChainReport, VerifyError, verify_chain};
use crate::certificates::{pem_file_certificate, warning_window};
use crate::domain::audit::AuditRecord;
use crate::domain::{CaseId, NoteId, ReferralId, Timestamp};
use crate::settings::Settings;
use crate::store::{self, Store, StoreError};

/// What `check-config` found: problems (the hub would not start, or would lock agencies out)
/// and notes (worth knowing, not wrong).
#[derive(Debug, Default)]
pub struct ConfigReport {
    pub problems: Vec<String>,
    pub notes: Vec<String>,
    pub settings: Option<Settings>,
}

/// Checks `file` (or the defaults) with the environment's overrides: that it parses, that its
/// addresses are addresses, and that every certificate, key and CRL it names exists and loads.
pub fn check_config(
    file: Option<&Path>,
    lookup: impl Fn(&str) -> Option<String>,
    now: Timestamp,
) -> ConfigReport {
    let mut report = ConfigReport::default();
    let mut settings = match file {
        None => Settings::default(),
        Some(path) => match parse_file(path, &mut report.problems) {
            Some(settings) => settings,
            None => return report,
        },
    };
    if let Err(error) = settings.apply_env(lookup) {
        report.problems.push(error.to_string());
        return report;
    }
    if let Err(error) = settings.check() {
        report.problems.push(error.to_string());
    }
    let tls = &settings.tls;
    let mut files = vec![
        ("tls.client_ca", &tls.client_ca),
        ("tls.certificate", &tls.certificate),
        ("tls.private_key", &tls.private_key),
    ];
    files.extend(tls.crls.iter().map(|crl| ("tls.crls", crl)));
    let mut missing = false;
    for (key, path) in files {
        if !path.is_file() {
            missing = true;
            report.problems.push(format!(
                "{key}: the file {} does not exist (or is not a file)",
                path.display()
            ));
        }
    }
    if !missing {
        if let Err(error) = crate::tls::TlsState::load(tls) {
            report
                .problems
                .push(crate::error::cause_chain(&error).to_string());
        }
        for (key, path) in [
            ("tls.certificate", &tls.certificate),
            ("tls.client_ca", &tls.client_ca),
        ] {
            match pem_file_certificate(path) {
                Ok((_, not_after)) => {
                    let days = (not_after - now.millis() / 1000).div_euclid(86_400);
                    if days < 0 {
                        report.problems.push(format!(
                            "{key}: the certificate in {} has expired",
                            path.display()
                        ));
                    } else if warning_window(days).is_some() {
                        report.notes.push(format!(
                            "{key}: the certificate in {} expires in {days} days: renew it",
                            path.display()
                        ));
                    }
                }
                Err(error) => report.problems.push(format!("{key}: {error}")),
            }
        }
    }
    let url = &settings.database_url;
    if !(url.starts_with("sqlite:")
        || url.starts_with("postgres:")
        || url.starts_with("postgresql:"))
    {
        report.problems.push(format!(
            "database_url: {url:?} is neither sqlite://PATH nor postgres://..."
        ));
    }
    if settings.metrics.enabled && !settings.metrics.listen.ip().is_loopback() {
        report.notes.push(format!(
            "metrics.listen: {} is not loopback: make sure only your scraper can reach it",
            settings.metrics.listen
        ));
    }
    report.settings = Some(settings);
    report
}

/// Reads and parses the config file, naming the key of an address that is not one (serde's own
/// message names the line only).
fn parse_file(path: &Path, problems: &mut Vec<String>) -> Option<Settings> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => {
            problems.push(format!(
                "cannot read config file {}: {error}",
                path.display()
            ));
            return None;
        }
    };
    let table: toml::Table = match text.parse() {
        Ok(table) => table,
        Err(error) => {
            problems.push(format!(
                "config file {} is not TOML: {error}",
                path.display()
            ));
            return None;
        }
    };
    let addresses = [
        ("listen", table.get("listen")),
        (
            "metrics.listen",
            table
                .get("metrics")
                .and_then(|metrics| metrics.get("listen")),
        ),
    ];
    let mut bad = false;
    for (key, value) in addresses {
        let Some(value) = value else { continue };
        let valid = value
            .as_str()
            .is_some_and(|text| text.parse::<SocketAddr>().is_ok());
        if !valid {
            bad = true;
            problems.push(format!(
                "{key} = {value} is not a listen address: write IP:PORT, such as \
                 \"127.0.0.1:7443\" or \"0.0.0.0:7443\""
            ));
        }
    }
    if bad {
        return None;
    }
    match toml::from_str::<Settings>(&text) {
        Ok(settings) => Some(settings),
        Err(error) => {
            problems.push(format!(
                "config file {} is not valid: {error}",
                path.display()
            ));
            None
        }
    }
}

/// Why a backup or restore failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(
        "{0} is not an embedded SQLite database: back PostgreSQL up with pg_dump or \
         pg_basebackup (see the README)"
    )]
    NotSqlite(String),
    #[error("{0} exists already: choose a new file name, a backup never overwrites")]
    TargetExists(PathBuf),
    #[error(
        "the data directory {0} is not empty: restore only into an empty one (move the old one \
         aside first, for example `mv {0} {0}.old`)"
    )]
    DirectoryNotEmpty(PathBuf),
    #[error("{0} does not exist")]
    SourceMissing(PathBuf),
    #[error("file system error on {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("database error")]
    Store(#[from] StoreError),
    #[error("cannot check the audit chain")]
    Verify(#[from] VerifyError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The database file of a `sqlite://` URL.
pub fn sqlite_path(database_url: &str) -> Result<PathBuf, BackupError> {
    if !database_url.starts_with("sqlite:") {
        return Err(BackupError::NotSqlite(database_url.to_owned()));
    }
    Ok(SqliteConnectOptions::from_str(database_url)?
        .get_filename()
        .to_owned())
}

/// Copies the live database at `database_url` into `to` with `VACUUM INTO`: a consistent
/// snapshot (every write committed before it began, none after) taken while the hub serves, on a
/// connection of its own, so that writers are not stopped. Then checks the copy's audit chain.
pub async fn backup(database_url: &str, to: &Path) -> Result<ChainReport, BackupError> {
    let source = sqlite_path(database_url)?;
    if !source.is_file() {
        return Err(BackupError::SourceMissing(source));
    }
    if to.exists() {
        return Err(BackupError::TargetExists(to.to_owned()));
    }
    let mut connection = SqliteConnectOptions::new()
        .filename(&source)
        .create_if_missing(false)
        .busy_timeout(std::time::Duration::from_secs(30))
        .connect()
        .await?;
    let target = to.to_str().ok_or_else(|| BackupError::Io {
        path: to.to_owned(),
        source: std::io::Error::other("the path is not UTF-8"),
    })?;
    sqlx::query("VACUUM INTO $1")
        .bind(target)
        .execute(&mut connection)
        .await?;
    drop(connection);
    // VACUUM INTO does not sync its output: do it, so a backup that was reported is on disk.
    std::fs::File::open(to)
        .and_then(|file| file.sync_all())
        .map_err(io(to))?;
    verify_file(to).await
}

/// Copies the backup `from` into the database file of `database_url`, whose directory must be
/// empty or absent, then opens it as the hub would (applying newer migrations) and checks its
/// audit chain.
pub async fn restore(database_url: &str, from: &Path) -> Result<ChainReport, BackupError> {
    let target = sqlite_path(database_url)?;
    if !from.is_file() {
        return Err(BackupError::SourceMissing(from.to_owned()));
    }
    let directory = match target.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    if directory.exists() {
        let mut entries = std::fs::read_dir(&directory).map_err(io(&directory))?;
        if entries.next().is_some() {
            return Err(BackupError::DirectoryNotEmpty(directory));
        }
    } else {
        std::fs::create_dir_all(&directory).map_err(io(&directory))?;
    }
    // Copy under another name, sync, then rename: a crash never leaves half a database under
    // the name the hub opens.
    let partial = directory.join(".restoring");
    std::fs::copy(from, &partial).map_err(io(&partial))?;
    std::fs::File::open(&partial)
        .and_then(|file| file.sync_all())
        .map_err(io(&partial))?;
    std::fs::rename(&partial, &target).map_err(io(&target))?;
    let store = store::connect(database_url).await?;
    let report = verify(&store).await;
    store.close().await;
    report
}

/// Opens a database file (migrating it) and checks its audit chain.
async fn verify_file(path: &Path) -> Result<ChainReport, BackupError> {
    let store = store::connect(&format!("sqlite://{}", path.display())).await?;
    let report = verify(&store).await;
    store.close().await;
    report
}

async fn verify(store: &Arc<dyn Store>) -> Result<ChainReport, BackupError> {
    let mut tx = store.read().await?;
    Ok(verify_chain(&mut *tx, 1, None).await?)
}

/// One record of a case's disclosure.
#[derive(Debug, Clone)]
pub struct DisclosedRecord {
    pub record: AuditRecord,
    /// The acting agency reported abuse about the case (通告): its identity is protected
    /// (児童虐待防止法7条) and is left out unless the operator asks for it.
    pub reporter_protected: bool,
}

/// Every audit record about `case`: those naming it, and those naming one of its referrals or
/// notes only (refusals before the case was known). Nothing about any other case.
pub async fn case_disclosure(
    store: &dyn Store,
    case: &CaseId,
) -> Result<Option<Vec<DisclosedRecord>>, StoreError> {
    let mut tx = store.read().await?;
    // The chain first, before anything else takes the read's snapshot: on PostgreSQL that
    // chains the records still pending, so the snapshot holds every record written before.
    tx.audit_head().await?;
    if tx.case(case).await?.is_none() {
        return Ok(None);
    }
    let referrals = tx.case_referrals(case).await?;
    let referral_ids: std::collections::HashSet<ReferralId> =
        referrals.iter().map(|r| r.id.clone()).collect();
    let reporters: std::collections::HashSet<String> = referrals
        .iter()
        .filter(|r| r.hide_sender)
        .map(|r| r.from_agency.to_string())
        .collect();
    let mut disclosed = Vec::new();
    let mut after = 0;
    loop {
        let page = tx.audit_range(after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.sequence;
        for record in page {
            let entry = &record.entry;
            let about = match entry.case_id.as_deref() {
                Some(id) => id == case.as_str(),
                None => match (&entry.referral_id, &entry.note_id) {
                    (Some(id), _) => {
                        ReferralId::parse(id).is_some_and(|id| referral_ids.contains(&id))
                    }
                    (None, Some(id)) => match NoteId::parse(id) {
                        Some(id) => tx.note(&id).await?.is_some_and(|n| &n.case_id == case),
                        None => false,
                    },
                    (None, None) => false,
                },
            };
            if about {
                let reporter_protected = reporters.contains(&entry.agency_id);
                disclosed.push(DisclosedRecord {
                    record,
                    reporter_protected,
                });
            }
        }
    }
    Ok(Some(disclosed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_malformed_listen_address_is_named_with_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "hub.toml", "listen = \"localhost-7443\"\n");
        let report = check_config(Some(&file), |_| None, Timestamp::from_millis(0));
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        assert!(report.problems[0].contains("listen"));
        assert!(report.problems[0].contains("localhost-7443"));
    }

    #[test]
    fn a_missing_certificate_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            dir.path(),
            "hub.toml",
            "[tls]\nclient_ca = \"/nowhere/ca.pem\"\ncertificate = \"/nowhere/hub.pem\"\n\
             private_key = \"/nowhere/hub.key\"\ncrls = []\n",
        );
        let report = check_config(Some(&file), |_| None, Timestamp::from_millis(0));
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.contains("tls.certificate") && p.contains("/nowhere/hub.pem")),
            "{:?}",
            report.problems
        );
    }

    #[test]
    fn backups_of_postgresql_point_to_pg_dump() {
        let error = sqlite_path("postgres://localhost/tsunagu").unwrap_err();
        assert!(error.to_string().contains("pg_dump"));
    }
}

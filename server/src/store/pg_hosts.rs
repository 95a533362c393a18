//! Several PostgreSQL hosts in one URL, as libpq takes them
//! (`postgres://user@primary:5432,standby:5432/tsunagu?target_session_attrs=read-write`), and
//! the choice among them: the hub writes, so it always wants the host that accepts writes. sqlx
//! connects to one host only, so the hub parses the list itself and moves its pool to another
//! host when the one it uses stops answering or becomes read-only (a standby promoted elsewhere).

use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgConnection};

use super::StoreError;

/// How long a probe of one host may take before the next is tried.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The hosts of a database URL, in the order given, and which one the pool uses.
#[derive(Debug)]
pub struct Hosts {
    candidates: Vec<PgConnectOptions>,
    current: AtomicUsize,
}

impl Hosts {
    /// Parses `url`: one host, or several separated by commas. `target_session_attrs` may be
    /// `read-write` (or `primary`), which is what the hub does anyway; other values are refused.
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        let candidates = split_hosts(url)?
            .iter()
            .map(|single| {
                PgConnectOptions::from_str(single)
                    .map(|options| options.application_name("tsunagu-hub"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            candidates,
            current: AtomicUsize::new(0),
        })
    }

    /// Whether there is another host to move to.
    pub fn several(&self) -> bool {
        self.candidates.len() > 1
    }

    /// The options of the host in use.
    pub fn current(&self) -> PgConnectOptions {
        self.candidates[self.current.load(Ordering::Relaxed)].clone()
    }

    /// Finds a host that accepts writes, trying the one in use last, and makes it the one in
    /// use. `None` while there is none (the primary is down and no standby is promoted yet).
    pub async fn find_primary(&self) -> Option<PgConnectOptions> {
        let count = self.candidates.len();
        let start = self.current.load(Ordering::Relaxed);
        for step in 1..=count {
            let index = (start + step) % count;
            let options = &self.candidates[index];
            match tokio::time::timeout(PROBE_TIMEOUT, accepts_writes(options)).await {
                Ok(Ok(true)) => {
                    if index != start {
                        tracing::warn!(
                            host = options.get_host(),
                            port = options.get_port(),
                            "PostgreSQL: moving to the host that accepts writes now"
                        );
                    }
                    self.current.store(index, Ordering::Relaxed);
                    return Some(options.clone());
                }
                Ok(Ok(false)) => tracing::debug!(
                    host = options.get_host(),
                    port = options.get_port(),
                    "PostgreSQL: host is read-only (a standby)"
                ),
                Ok(Err(error)) => tracing::debug!(
                    host = options.get_host(),
                    port = options.get_port(),
                    %error,
                    "PostgreSQL: host does not answer"
                ),
                Err(_) => tracing::debug!(
                    host = options.get_host(),
                    port = options.get_port(),
                    "PostgreSQL: host did not answer in time"
                ),
            }
        }
        None
    }
}

/// Whether the server at `options` accepts writes: a primary, not a standby in recovery.
async fn accepts_writes(options: &PgConnectOptions) -> Result<bool, sqlx::Error> {
    let mut connection = PgConnection::connect_with(options).await?;
    let writable = is_writable(&mut connection).await;
    let _ = connection.close().await;
    writable
}

/// Whether this connection's server accepts writes.
pub async fn is_writable(connection: &mut PgConnection) -> Result<bool, sqlx::Error> {
    let in_recovery: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(connection)
        .await?;
    Ok(!in_recovery)
}

/// One URL per host of a URL whose authority lists several (`user@h1:p1,h2:p2`), with
/// `target_session_attrs` checked and removed (sqlx does not know it).
fn split_hosts(url: &str) -> Result<Vec<String>, StoreError> {
    let bad = |reason: &str| StoreError::BadUrl(format!("{}: {reason}", redact(url)));
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad("no scheme (postgres://...)"))?;
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (userinfo, host_list) = match authority.rfind('@') {
        Some(at) => (&authority[..=at], &authority[at + 1..]),
        None => ("", authority),
    };
    let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        match pair.split_once('=') {
            Some(("target_session_attrs", "read-write" | "primary")) => {}
            Some(("target_session_attrs", other)) => {
                return Err(bad(&format!(
                    "target_session_attrs={other}: the hub writes, so only read-write (or \
                     primary) makes sense"
                )));
            }
            _ => kept.push(pair),
        }
    }
    let query = if kept.is_empty() {
        String::new()
    } else {
        format!("?{}", kept.join("&"))
    };
    let hosts: Vec<&str> = host_list.split(',').collect();
    if hosts.iter().any(|host| host.is_empty()) {
        return Err(bad("an empty host in the host list"));
    }
    Ok(hosts
        .iter()
        .map(|host| format!("{scheme}://{userinfo}{host}{path}{query}"))
        .collect())
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_host_gives_one_url_unchanged() {
        assert_eq!(
            split_hosts("postgres://postgres@127.0.0.1:5432/test").unwrap(),
            vec!["postgres://postgres@127.0.0.1:5432/test"]
        );
    }

    #[test]
    fn several_hosts_give_one_url_each_without_target_session_attrs() {
        assert_eq!(
            split_hosts(
                "postgres://hub:pw@db1:5432,db2:5433/tsunagu?target_session_attrs=read-write&sslmode=require"
            )
            .unwrap(),
            vec![
                "postgres://hub:pw@db1:5432/tsunagu?sslmode=require",
                "postgres://hub:pw@db2:5433/tsunagu?sslmode=require",
            ]
        );
        assert_eq!(
            split_hosts("postgresql://a,b").unwrap(),
            vec!["postgresql://a", "postgresql://b"]
        );
    }

    #[test]
    fn a_read_only_session_or_an_empty_host_is_refused_without_the_password() {
        let error = split_hosts("postgres://hub:secret@a,b/db?target_session_attrs=read-only")
            .unwrap_err()
            .to_string();
        assert!(error.contains("target_session_attrs=read-only"), "{error}");
        assert!(!error.contains("secret"), "{error}");
        let error = split_hosts("postgres://hub@a,,b/db")
            .unwrap_err()
            .to_string();
        assert!(error.contains("empty host"), "{error}");
    }

    #[test]
    fn every_host_of_the_list_parses_into_options() {
        let hosts = Hosts::parse("postgres://hub@db1:5432,db2:6543/tsunagu").unwrap();
        assert!(hosts.several());
        assert_eq!(hosts.candidates[1].get_port(), 6543);
        assert_eq!(hosts.current().get_host(), "db1");
    }
}

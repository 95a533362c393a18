//! What every console request shares: the hub connection, this machine's age identities, the
//! trust store, the sessions, the forms already submitted and the live feed.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use age::x25519::Identity;
use tokio::sync::broadcast;
use tsunagu_proto::v1::{Agency, ListAgenciesRequest, WhoAmIRequest, WhoAmIResponse};

use super::guard::Origins;
use super::live::LiveEvent;
use super::session::Sessions;
use crate::audit_head::HeadWatch;
use crate::pack::Opener;
use crate::sealing::Sealer;
use crate::trust::KnownKeys;
use crate::{ClientError, Hub};

/// How long the directory of agencies is kept before it is read again.
const DIRECTORY_TTL: Duration = Duration::from_secs(60);
/// How often the hub's signed audit head is checked against the one remembered.
const AUDIT_HEAD_INTERVAL: Duration = Duration::from_secs(60);
/// How many submitted forms are remembered (each a double-click or a reload apart).
const MAX_SUBMISSIONS: usize = 4096;

/// Shared state of the console; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    hub: Hub,
    identities: Vec<Identity>,
    known_keys: Option<PathBuf>,
    origins: Origins,
    sessions: Sessions,
    submissions: Submissions,
    live: broadcast::Sender<LiveEvent>,
    tls: bool,
    directory: tokio::sync::Mutex<Option<(Instant, Vec<Agency>)>>,
    /// The newest signed audit head seen, and when it was last checked.
    audit_head: tokio::sync::Mutex<(Option<Instant>, HeadWatch)>,
}

/// What [`AppState::new`] needs.
pub struct StateParts {
    pub hub: Hub,
    pub identities: Vec<Identity>,
    pub known_keys: Option<PathBuf>,
    pub origins: Origins,
    pub sessions: Sessions,
    pub tls: bool,
}

impl AppState {
    pub fn new(parts: StateParts) -> Self {
        let (live, _) = broadcast::channel(256);
        // As the CLI's, next to the known-keys file; unreadable, it starts afresh in memory
        // (and the first check says why the file could not be used).
        let watch = parts
            .known_keys
            .as_deref()
            .map(|path| HeadWatch::load(&HeadWatch::path_for(path)))
            .transpose()
            .ok()
            .flatten()
            .unwrap_or_default();
        AppState(Arc::new(Inner {
            hub: parts.hub,
            identities: parts.identities,
            known_keys: parts.known_keys,
            origins: parts.origins,
            sessions: parts.sessions,
            submissions: Submissions::default(),
            live,
            tls: parts.tls,
            directory: tokio::sync::Mutex::new(None),
            audit_head: tokio::sync::Mutex::new((None, watch)),
        }))
    }

    pub fn hub(&self) -> &Hub {
        &self.0.hub
    }

    /// This machine's age identities, to open a field before re-sealing it (in memory only).
    pub fn identities(&self) -> &[age::x25519::Identity] {
        &self.0.identities
    }

    /// Opens sealed fields with this machine's identities, in memory only.
    pub fn opener(&self) -> Opener<'_> {
        Opener::new(&self.0.identities)
    }

    /// A sealer whose keys are checked against the profile's known-keys file, as the CLI's.
    pub fn sealer(&self) -> Result<Sealer, ClientError> {
        let sealer = Sealer::new(&self.0.hub);
        Ok(match &self.0.known_keys {
            Some(path) => sealer.with_known_keys(KnownKeys::load(path)?, false),
            None => sealer,
        })
    }

    pub fn origins(&self) -> &Origins {
        &self.0.origins
    }

    pub fn sessions(&self) -> &Sessions {
        &self.0.sessions
    }

    pub fn submissions(&self) -> &Submissions {
        &self.0.submissions
    }

    pub fn tls(&self) -> bool {
        self.0.tls
    }

    pub fn live(&self) -> &broadcast::Sender<LiveEvent> {
        &self.0.live
    }

    /// Who the hub takes this console to be, and its certificate's expiry. Every page asks
    /// first, so this is also where the hub's signed audit head is checked (at most once a
    /// minute): a hub whose audit log was rolled back gets no further than this.
    pub async fn who_am_i(&self) -> Result<WhoAmIResponse, ClientError> {
        let who = self
            .0
            .hub
            .directory()
            .who_am_i(WhoAmIRequest {})
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| self.0.hub.call_error(status))?;
        self.check_audit_head().await?;
        Ok(who)
    }

    /// Checks the hub's signed audit head against the newest one seen, when the last check is
    /// older than a minute. A refusal is not remembered as a check: it repeats on every page.
    async fn check_audit_head(&self) -> Result<(), ClientError> {
        let mut guard = self.0.audit_head.lock().await;
        let (checked_at, watch) = &mut *guard;
        if checked_at.is_some_and(|at| at.elapsed() < AUDIT_HEAD_INTERVAL) {
            return Ok(());
        }
        watch.check(&self.0.hub).await?;
        *checked_at = Some(Instant::now());
        Ok(())
    }

    /// Every registered agency, read at most once a minute.
    pub async fn agencies(&self) -> Result<Vec<Agency>, ClientError> {
        let mut directory = self.0.directory.lock().await;
        if let Some((read_at, agencies)) = directory.as_ref()
            && read_at.elapsed() < DIRECTORY_TTL
        {
            return Ok(agencies.clone());
        }
        let agencies = self
            .0
            .hub
            .directory()
            .list_agencies(ListAgenciesRequest::default())
            .await
            .map_err(|status| self.0.hub.call_error(status))?
            .into_inner()
            .agencies;
        *directory = Some((Instant::now(), agencies.clone()));
        Ok(agencies)
    }
}

/// What a submitted form led to: the page to go to next.
pub type Outcome = String;

/// The forms already submitted, by the idempotency key fixed when the form was rendered: a
/// second submission (a double click, a reload, going back and sending again) waits for the
/// first and gets its answer, without sealing or sending anything again. A submission that
/// failed is forgotten, so that correcting the form and sending again is possible.
#[derive(Default)]
pub struct Submissions {
    entries: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Outcome>>>>>,
}

impl Submissions {
    /// Runs `submit` once per key; later calls with the key get the first call's outcome.
    pub async fn once<F, E>(&self, key: &str, submit: F) -> Result<Outcome, E>
    where
        F: Future<Output = Result<Outcome, E>>,
    {
        let slot = {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            if entries.len() >= MAX_SUBMISSIONS && !entries.contains_key(key) {
                entries.retain(|_, slot| Arc::strong_count(slot) > 1);
            }
            entries.entry(key.to_owned()).or_default().clone()
        };
        let mut outcome = slot.lock().await;
        if let Some(done) = outcome.as_ref() {
            return Ok(done.clone());
        }
        let done = submit.await?;
        *outcome = Some(done.clone());
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_form_submitted_twice_runs_once_and_answers_the_same() {
        let submissions = Submissions::default();
        let runs = AtomicUsize::new(0);
        let submit = || async {
            runs.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok::<_, String>("/referrals/1".to_owned())
        };
        let (a, b) = tokio::join!(
            submissions.once("key", submit()),
            submissions.once("key", submit())
        );
        assert_eq!(a.unwrap(), "/referrals/1");
        assert_eq!(b.unwrap(), "/referrals/1");
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failed_submission_may_be_sent_again() {
        let submissions = Submissions::default();
        let first = submissions
            .once("key", async { Err::<Outcome, _>("refused") })
            .await;
        assert_eq!(first, Err("refused"));
        let second = submissions
            .once("key", async { Ok::<_, &str>("/done".to_owned()) })
            .await;
        assert_eq!(second.unwrap(), "/done");
    }
}

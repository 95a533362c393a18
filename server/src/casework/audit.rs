//! Auditing: the record every call that reads or writes case data leaves in the hash chain (its
//! outcome too when refused), who may list which records, and checking the whole chain.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use tonic::Code;

use super::hidden_reporters;
use crate::domain::audit::{AuditEntry, AuditRecord, ChainBreak, ChainHead, ChainVerifier};
use crate::domain::basis::LegalBasisKind;
use crate::domain::consent::Consent;
use crate::domain::records::{Case, Note, Referral};
use crate::domain::{
    Agency, AgencyId, CaseId, ConsentId, Municipality, NoteId, ReferralId, Staff, Timestamp,
};
use crate::error::Error;
use crate::store::audit::AuditFilter;
use crate::store::{Locking, Store, StoreError, Transaction};

/// Whether calls are audited. Always `On` in a running hub: no setting or variable turns it off.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AuditMode {
    #[default]
    On,
    /// Only for the benchmark that measures what auditing costs (`tsunagu-audit-bench`).
    Off,
}

/// The hub's auditing: whether it is on, and the records of reads waiting to be appended.
#[derive(Debug, Clone, Default)]
pub struct Auditor {
    mode: AuditMode,
    reads: Arc<ReadRecords>,
}

/// The records of reads waiting to be appended. Reads arrive many at a time and each needs its
/// record durable before it is answered; one write each made every read a full write (a job on
/// SQLite's writer, a commit on PostgreSQL). Instead, whichever waiting read takes `appender`
/// next appends everything pending in one write, and answers the others.
#[derive(Debug, Default)]
struct ReadRecords {
    pending: Mutex<Vec<PendingRead>>,
    appender: tokio::sync::Mutex<()>,
}

/// A read's record, and where to tell the read that it is durable (or why not).
#[derive(Debug)]
struct PendingRead {
    entry: AuditEntry,
    done: tokio::sync::oneshot::Sender<Result<(), Arc<StoreError>>>,
}

impl Auditor {
    pub fn new(mode: AuditMode) -> Self {
        Self {
            mode,
            reads: Arc::default(),
        }
    }

    /// Appends the record of a read and returns once it is durable, sharing the write with the
    /// other reads recorded meanwhile; nothing when auditing is off.
    pub async fn record_read(
        &self,
        store: &Arc<dyn Store>,
        call: &AuditCall,
        target: &AuditTarget,
        at: Timestamp,
    ) -> Result<(), Error> {
        self.record_outside(store, entry(call, target, crate::domain::audit::OK, at))
            .await
    }

    /// Appends a record that belongs to no other write (a read, a refusal by the identity
    /// layer) and returns once it is durable, batched with the others recorded meanwhile.
    pub async fn record_outside(
        &self,
        store: &Arc<dyn Store>,
        entry: AuditEntry,
    ) -> Result<(), Error> {
        if self.mode == AuditMode::Off {
            return Ok(());
        }
        let (done, mut outcome) = tokio::sync::oneshot::channel();
        self.reads
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(PendingRead { entry, done });
        let appender = self.reads.appender.lock().await;
        let outcome = match outcome.try_recv() {
            // The previous appender took this record already.
            Ok(outcome) => outcome,
            Err(_) => {
                let batch = std::mem::take(
                    &mut *self
                        .reads
                        .pending
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner),
                );
                if !batch.is_empty() {
                    // In a task of its own, so that a caller going away does not abandon the
                    // batch half-way: the others are waiting for it.
                    let auditor = self.clone();
                    let store = Arc::clone(store);
                    let _ = tokio::spawn(async move { auditor.append_reads(&store, batch).await })
                        .await;
                }
                drop(appender);
                outcome.await.map_err(|_| {
                    Error::internal(StoreError::corrupt(
                        "audit_records",
                        "a batch of read records was abandoned",
                    ))
                })?
            }
        };
        outcome.map_err(|failure| Error::from(StoreError::Batch(failure)))
    }

    /// Appends `batch` in one write and tells each read the outcome.
    async fn append_reads(&self, store: &Arc<dyn Store>, batch: Vec<PendingRead>) {
        let entries: Vec<AuditEntry> = batch.iter().map(|read| read.entry.clone()).collect();
        // Only audit records: nothing read-then-written but the chain, which the store guards,
        // so the write need not wait for other writes.
        let appended = store
            .write(Locking::Narrow, move |tx| {
                Box::pin(async move {
                    for entry in &entries {
                        tx.append_audit(entry).await?;
                    }
                    Ok::<_, StoreError>(())
                })
            })
            .await;
        let outcome = appended.map_err(|error| {
            tracing::error!(
                error = %crate::error::cause_chain(&error),
                records = batch.len(),
                "cannot append the audit records of reads"
            );
            Arc::new(error)
        });
        for read in batch {
            let _ = read.done.send(outcome.clone());
        }
    }

    /// Appends `entry` as it is, in `tx` (a write transaction); nothing when auditing is off.
    pub async fn record_entry(
        &self,
        tx: &mut dyn Transaction,
        entry: &AuditEntry,
    ) -> Result<(), Error> {
        if self.mode == AuditMode::On {
            tx.append_audit(entry).await?;
        }
        Ok(())
    }

    pub fn mode(&self) -> AuditMode {
        self.mode
    }

    /// Appends the record of a call to the chain, in `tx` (a write transaction); nothing when
    /// auditing is off.
    pub async fn record(
        &self,
        tx: &mut dyn Transaction,
        call: &AuditCall,
        target: &AuditTarget,
        outcome: &str,
        at: Timestamp,
    ) -> Result<Option<AuditRecord>, Error> {
        if self.mode == AuditMode::Off {
            return Ok(None);
        }
        Ok(tx.append_audit(&entry(call, target, outcome, at)).await?)
    }
}

/// The case data a call was about. On a refusal, only what the request itself named and what
/// parsed: never anything the refused call would have created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditTarget {
    pub municipality: Option<Municipality>,
    pub case_id: Option<CaseId>,
    pub referral_id: Option<ReferralId>,
    pub note_id: Option<NoteId>,
    pub consent_id: Option<ConsentId>,
    pub basis: Option<LegalBasisKind>,
}

impl AuditTarget {
    pub fn case(case: &Case) -> Self {
        Self {
            municipality: Some(case.municipality.clone()),
            case_id: Some(case.id.clone()),
            ..Self::default()
        }
    }

    pub fn referral(referral: &Referral) -> Self {
        Self {
            municipality: Some(referral.municipality.clone()),
            case_id: Some(referral.case_id.clone()),
            referral_id: Some(referral.id.clone()),
            basis: Some(referral.basis),
            ..Self::default()
        }
    }

    pub fn note(note: &Note) -> Self {
        Self {
            case_id: Some(note.case_id.clone()),
            note_id: Some(note.id.clone()),
            basis: Some(note.basis),
            ..Self::default()
        }
    }

    pub fn consent(consent: &Consent) -> Self {
        Self {
            case_id: Some(consent.case_id.clone()),
            consent_id: Some(consent.id.clone()),
            ..Self::default()
        }
    }
}

/// Who made an audited call, and which call it is.
#[derive(Debug, Clone)]
pub struct AuditCall {
    pub agency: AgencyId,
    /// The staff member the request named, when it named a well-formed one.
    pub staff: Option<Staff>,
    /// The RPC, for example "ReferralService/SendReferral".
    pub action: &'static str,
}

/// The gRPC code name a refusal is recorded with, for example "PERMISSION_DENIED".
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The record of one call with `outcome` (`domain::audit::OK` or a code name).
pub fn entry(call: &AuditCall, target: &AuditTarget, outcome: &str, at: Timestamp) -> AuditEntry {
    let text = |id: Option<&str>| id.map(str::to_owned);
    AuditEntry {
        at,
        agency_id: call.agency.to_string(),
        staff_name: call.staff.as_ref().map(|s| s.name.clone()),
        staff_role: call.staff.as_ref().map(|s| s.role.clone()),
        action: call.action.to_owned(),
        municipality: text(target.municipality.as_ref().map(Municipality::as_str)),
        case_id: text(target.case_id.as_ref().map(CaseId::as_str)),
        referral_id: text(target.referral_id.as_ref().map(ReferralId::as_str)),
        note_id: text(target.note_id.as_ref().map(NoteId::as_str)),
        consent_id: text(target.consent_id.as_ref().map(ConsentId::as_str)),
        basis: target.basis.map(|kind| kind.code().to_owned()),
        outcome: outcome.to_owned(),
    }
}

/// Which records to list.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub case_id: Option<CaseId>,
    pub municipality: Option<Municipality>,
    pub from: Option<Timestamp>,
    pub until: Option<Timestamp>,
    pub after_sequence: u64,
    pub limit: u32,
}

/// A record as one reader may see it.
#[derive(Debug, Clone)]
pub struct ListedRecord {
    /// With the agency, staff and hash blanked when `hidden`.
    pub record: AuditRecord,
    /// The acting agency is withheld from this reader: the reporter of an abuse notification on
    /// the case. Its hash goes too, since with the fields around it the hash would give the
    /// reporter away to anyone who tries each agency id.
    pub hidden: bool,
}

/// The records of the reader's own calls, of calls about the cases, referrals and notes it takes
/// part in and, for a coordinator, about its municipalities; the reporters of abuse notifications
/// hidden exactly as on the case itself (`hidden_reporters`).
pub async fn list(
    tx: &mut dyn Transaction,
    reader: &Agency,
    query: &AuditQuery,
) -> Result<Vec<ListedRecord>, Error> {
    let records = tx
        .audit_records(&AuditFilter {
            reader: &reader.id,
            coordinated: &reader.coordinator_of,
            case: query.case_id.as_ref(),
            municipality: query.municipality.as_ref(),
            from: query.from,
            until: query.until,
            after_sequence: query.after_sequence,
            limit: query.limit,
        })
        .await?;
    let mut hidden_on: HashMap<CaseId, HashSet<AgencyId>> = HashMap::new();
    let mut listed = Vec::with_capacity(records.len());
    for mut record in records {
        let hidden = match about_case(tx, &record.entry).await? {
            Some(case_id) => {
                if !hidden_on.contains_key(&case_id) {
                    let referrals = tx.case_referrals(&case_id).await?;
                    hidden_on.insert(case_id.clone(), hidden_reporters(&referrals, &reader.id));
                }
                hidden_on.get(&case_id).is_some_and(|hidden| {
                    hidden.iter().any(|a| a.as_str() == record.entry.agency_id)
                })
            }
            None => false,
        };
        if hidden {
            record.entry.agency_id.clear();
            record.entry.staff_name = None;
            record.entry.staff_role = None;
            record.hash.clear();
        }
        listed.push(ListedRecord { record, hidden });
    }
    Ok(listed)
}

/// The case a record is about: its own case id, else that of the referral or note it names.
async fn about_case(tx: &mut dyn Transaction, entry: &AuditEntry) -> Result<Option<CaseId>, Error> {
    if let Some(case_id) = entry.case_id.as_deref().and_then(CaseId::parse) {
        return Ok(Some(case_id));
    }
    if let Some(id) = entry.referral_id.as_deref().and_then(ReferralId::parse) {
        return Ok(tx.referral(&id).await?.map(|r| r.case_id));
    }
    if let Some(id) = entry.note_id.as_deref().and_then(NoteId::parse) {
        return Ok(tx.note(&id).await?.map(|n| n.case_id));
    }
    Ok(None)
}

/// How many records verification reads at a time.
const VERIFY_PAGE: u32 = 1000;

/// What checking the chain found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    /// The first record checked.
    pub from: u64,
    /// How many records passed.
    pub checked: u64,
    /// The last record that passed (the anchor when none did).
    pub head: ChainHead,
    /// The first broken record, if any.
    pub broken: Option<ChainBreak>,
}

/// Why the chain could not be checked at all.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("the audit log ends at record {last}: there is nothing to check from record {from}")]
    PastTheEnd { from: u64, last: u64 },
    #[error(
        "the published head (record {published}) comes before record {anchor}, where checking \
         starts from: check from record {published} or earlier"
    )]
    PublishedBeforeStart { published: u64, anchor: u64 },
    #[error("cannot read the audit log")]
    Store(#[from] StoreError),
}

/// Replays the chain from record `from` (1 for the whole log) to its end, in one snapshot.
/// Checking from a later record trusts the stored hash of the record before it. With
/// `published`, a head kept from earlier, it also finds a history rewritten up to that head or
/// cut off after it.
pub async fn verify_chain(
    tx: &mut dyn Transaction,
    from: u64,
    published: Option<ChainHead>,
) -> Result<ChainReport, VerifyError> {
    let from = from.max(1);
    let broken_at = |anchor: ChainHead, broken: ChainBreak| ChainReport {
        from,
        checked: 0,
        head: anchor,
        broken: Some(broken),
    };
    let anchor = if from == 1 {
        ChainHead::GENESIS
    } else {
        let before = from - 1;
        match tx.audit_record(before).await? {
            Some(record) => match ChainHead::of(&record) {
                Some(anchor) => anchor,
                None => {
                    return Ok(broken_at(
                        ChainHead::GENESIS,
                        ChainBreak::Altered { sequence: before },
                    ));
                }
            },
            None => {
                let last = tx.audit_head().await?.sequence;
                if last < before {
                    return Err(VerifyError::PastTheEnd { from, last });
                }
                let found = tx
                    .audit_range(before, 1)
                    .await?
                    .first()
                    .map_or(before + 1, |r| r.sequence);
                return Ok(broken_at(
                    ChainHead::GENESIS,
                    ChainBreak::Missing {
                        sequence: before,
                        found,
                    },
                ));
            }
        }
    };
    let mut verifier = ChainVerifier::new(anchor);
    if let Some(published) = published {
        if published.sequence < anchor.sequence {
            return Err(VerifyError::PublishedBeforeStart {
                published: published.sequence,
                anchor: anchor.sequence,
            });
        }
        if published.sequence == anchor.sequence && published != anchor {
            return Ok(broken_at(
                anchor,
                ChainBreak::Rewritten {
                    sequence: anchor.sequence,
                },
            ));
        }
        verifier = verifier.expecting(published);
    }
    let mut after = anchor.sequence;
    loop {
        let page = tx.audit_range(after, VERIFY_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.sequence;
        for record in &page {
            if let Err(broken) = verifier.check(record) {
                return Ok(ChainReport {
                    from,
                    checked: verifier.checked(),
                    head: verifier.head(),
                    broken: Some(broken),
                });
            }
        }
    }
    let broken = verifier.finish().err();
    Ok(ChainReport {
        from,
        checked: verifier.checked(),
        head: verifier.head(),
        broken,
    })
}

/// The head of the chain and the earlier record `since` that it extends, ready to be signed:
/// the hub's answer to a client that saw record `since` as the head earlier.
///
/// The client remembers the newest signed head it saw, and asks with its sequence number. The
/// hub replays the chain from that record to its end (the records in between never leave the
/// hub: a client may not see them all) and vouches for the stored hash of the record, which the
/// client compares with the hash it remembers. A log cut short before that record, or restored
/// from an older copy and grown again, gives a lower head or another hash there. When `since`
/// is 0 or past the end, `since` comes back as the genesis head: there is nothing to vouch for,
/// and the client sees a head lower than the one it remembers.
pub async fn head_since(
    tx: &mut dyn Transaction,
    since: u64,
) -> Result<(ChainHead, ChainHead), Error> {
    let head = tx.audit_head().await?;
    if since == 0 || since > head.sequence {
        return Ok((head, ChainHead::GENESIS));
    }
    if since == head.sequence {
        return Ok((head, head));
    }
    let unvouched = |reason: String| {
        tracing::error!(since, reason = %reason, "the audit chain cannot be vouched for");
        Error::FailedPrecondition(format!(
            "the hub's audit log is broken after record {since} ({reason}), so the hub does not              sign its head: tell the hub operator, who checks it with `tsunagu-hub audit verify`              (監査ログが壊れています。ハブの運用者に連絡してください)"
        ))
    };
    let anchor = match tx.audit_record(since).await? {
        Some(record) => ChainHead::of(&record),
        None => None,
    };
    let Some(anchor) = anchor else {
        return Err(unvouched(format!("record {since} is missing or altered")));
    };
    let report = match verify_chain(tx, since + 1, None).await {
        Ok(report) => report,
        Err(VerifyError::Store(error)) => return Err(error.into()),
        Err(other) => return Err(unvouched(other.to_string())),
    };
    if let Some(broken) = report.broken {
        return Err(unvouched(broken.to_string()));
    }
    Ok((report.head, anchor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn concurrent_reads_are_each_recorded_once_in_one_unbroken_chain() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("audit.db").display());
        let store = crate::store::connect(&url).await.unwrap();
        let auditor = Auditor::new(AuditMode::On);
        let reads = (0..64_i64).map(|n| {
            let (auditor, store) = (auditor.clone(), Arc::clone(&store));
            tokio::spawn(async move {
                let call = AuditCall {
                    agency: AgencyId::parse(&format!("reader-{n}")).unwrap(),
                    staff: None,
                    action: "EventService/ListEvents",
                };
                auditor
                    .record_read(&store, &call, &AuditTarget::default(), Timestamp(n))
                    .await
            })
        });
        for read in futures::future::join_all(reads).await {
            read.unwrap().expect("every read is recorded");
        }
        let mut tx = store.read().await.unwrap();
        let records = tx.audit_range(0, 1000).await.unwrap();
        let mut agencies: Vec<_> = records.iter().map(|r| r.entry.agency_id.clone()).collect();
        agencies.sort();
        agencies.dedup();
        assert_eq!(records.len(), 64, "one record per read");
        assert_eq!(agencies.len(), 64, "no read recorded twice");
        let report = verify_chain(&mut *tx, 1, None).await.unwrap();
        assert!(report.broken.is_none(), "{report:?}");
        assert_eq!(report.checked, 64);
    }

    #[tokio::test]
    async fn reads_are_not_recorded_when_auditing_is_off() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("audit.db").display());
        let store = crate::store::connect(&url).await.unwrap();
        let call = AuditCall {
            agency: AgencyId::parse("reader").unwrap(),
            staff: None,
            action: "EventService/ListEvents",
        };
        Auditor::new(AuditMode::Off)
            .record_read(&store, &call, &AuditTarget::default(), Timestamp(1))
            .await
            .unwrap();
        let mut tx = store.read().await.unwrap();
        assert!(tx.audit_range(0, 10).await.unwrap().is_empty());
    }
}

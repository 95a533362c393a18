//! AuditService (listing the audit records a caller may see, and the chain's head), and the
//! small wrapper every handler that touches case data goes through to leave its audit record.
//!
//! A handler starts an [`Audit`] with what the request names, runs its body, and ends with
//! [`Audit::finish`]. A write appends its record with [`Audit::write`] inside its own transaction,
//! just before the commit, so the record and the write commit or vanish together. A read appends
//! its record with [`Audit::read`] once it has its answer, before answering. A refusal (any error
//! after the caller is known) is recorded by `finish` in a transaction of its own: the refused
//! call's transaction rolled back, and the record carries only what the request named.

use tonic::{Request, Response, Status};
use tsunagu_proto::v1 as pb;
use tsunagu_proto::v1::audit_service_server::AuditService;

use super::{Hub, convert};
use crate::casework::audit::{
    self, AuditCall, AuditMode, AuditQuery, AuditTarget, Auditor, ListedRecord, code_name,
};
use crate::domain::audit::OK;
use crate::domain::basis::LegalBasisKind;
use crate::domain::{
    Agency, AgencyId, CaseId, ConsentId, Municipality, NoteId, ReferralId, Staff, Timestamp,
};
use crate::error::{Error, cause_chain};
use crate::identity::caller;
use crate::store::{Locking, Transaction};

/// One audited call in progress: who calls, which call, and what the request named.
#[derive(Debug, Clone)]
pub struct Audit {
    call: AuditCall,
    named: AuditTarget,
    auditor: Auditor,
}

impl Hub {
    /// Starts auditing a call of `caller` to `action` ("Service/Method").
    pub fn audit(&self, caller: &Agency, action: &'static str) -> Audit {
        Audit {
            call: AuditCall {
                agency: caller.id.clone(),
                staff: None,
                action,
            },
            named: AuditTarget::default(),
            auditor: self.audit.clone(),
        }
    }
}

impl Audit {
    /// The staff member the request names, when well formed.
    pub fn staff(mut self, staff: Option<&pb::Staff>) -> Self {
        self.call.staff = staff.and_then(|staff| convert::staff(Some(staff)).ok());
        self
    }

    /// The case the request names, when it parses.
    pub fn case(mut self, id: &str) -> Self {
        self.named.case_id = CaseId::parse(id);
        self
    }

    pub fn referral(mut self, id: &str) -> Self {
        self.named.referral_id = ReferralId::parse(id);
        self
    }

    pub fn note(mut self, id: &str) -> Self {
        self.named.note_id = NoteId::parse(id);
        self
    }

    pub fn consent(mut self, id: &str) -> Self {
        self.named.consent_id = ConsentId::parse(id);
        self
    }

    pub fn municipality(mut self, code: &str) -> Self {
        self.named.municipality = Municipality::parse(code);
        self
    }

    /// The kind of legal basis the request claims, when it is a known one.
    pub fn basis(mut self, basis: Option<&pb::LegalBasis>) -> Self {
        self.named.basis = basis.and_then(|basis| basis_kind(basis.kind));
        self
    }

    /// The calling agency.
    pub fn agency(&self) -> &AgencyId {
        &self.call.agency
    }

    /// What the request named, as far as it parsed.
    pub fn named(&self) -> &AuditTarget {
        &self.named
    }

    /// Appends the call's record (outcome ok) to the chain in the call's own write transaction;
    /// call it just before the commit.
    pub async fn write(
        &self,
        tx: &mut dyn Transaction,
        target: &AuditTarget,
        at: Timestamp,
    ) -> Result<(), Error> {
        self.auditor.record(tx, &self.call, target, OK, at).await?;
        Ok(())
    }

    /// Appends the record of a read (outcome ok) once the answer is ready and before it is sent,
    /// in a write transaction shared with the other reads of the moment: a read that cannot be
    /// audited is not answered.
    pub async fn read(&self, hub: &Hub, target: &AuditTarget) -> Result<(), Error> {
        self.auditor
            .record_read(&hub.store, &self.call, target, hub.clock.now())
            .await
    }

    /// Answers the call. A refusal is first recorded with its code, in a transaction of its own,
    /// with only what the request named. When the database itself is unreachable nothing can be
    /// recorded (and nothing was read or written): that is logged instead.
    pub async fn finish<T>(
        self,
        hub: &Hub,
        result: Result<T, Error>,
    ) -> Result<Response<T>, Status> {
        match result {
            Ok(answer) => Ok(Response::new(answer)),
            Err(error) => {
                self.refused(hub, &error).await;
                Err(error.into())
            }
        }
    }

    async fn refused(&self, hub: &Hub, error: &Error) {
        if self.auditor.mode() == AuditMode::Off {
            return;
        }
        let outcome = code_name(error.code());
        if matches!(error, Error::Unavailable(_)) {
            tracing::warn!(
                action = self.call.action,
                agency = %self.call.agency,
                outcome,
                "refused call not audited: the database is unavailable"
            );
            return;
        }
        let recorded = async {
            // Only the audit record: the store guards the chain at commit.
            let (auditor, call, named) =
                (self.auditor.clone(), self.call.clone(), self.named.clone());
            let now = hub.clock.now();
            hub.store
                .write(Locking::Narrow, move |tx| {
                    Box::pin(async move {
                        auditor.record(tx, &call, &named, outcome, now).await?;
                        Ok::<_, Error>(())
                    })
                })
                .await
        }
        .await;
        if let Err(failure) = recorded {
            tracing::error!(
                action = self.call.action,
                agency = %self.call.agency,
                outcome,
                error = %cause_chain(&failure),
                "cannot audit a refused call"
            );
        }
    }
}

/// A legal basis kind from its proto number; `None` for unset or unknown.
fn basis_kind(kind: i32) -> Option<LegalBasisKind> {
    match pb::LegalBasisKind::try_from(kind).ok()? {
        pb::LegalBasisKind::Consent => Some(LegalBasisKind::Consent),
        pb::LegalBasisKind::CouncilSharing => Some(LegalBasisKind::CouncilSharing),
        pb::LegalBasisKind::AbuseNotification => Some(LegalBasisKind::AbuseNotification),
        pb::LegalBasisKind::VitalInterest => Some(LegalBasisKind::VitalInterest),
        pb::LegalBasisKind::Unspecified => None,
    }
}

fn record_out(listed: &ListedRecord) -> pb::AuditRecord {
    let record = &listed.record;
    let entry = &record.entry;
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    pb::AuditRecord {
        sequence: record.sequence,
        at: Some(convert::timestamp(entry.at)),
        agency_id: entry.agency_id.clone(),
        staff: match (&entry.staff_name, &entry.staff_role) {
            (Some(name), Some(role)) => Some(convert::staff_out(&Staff {
                name: name.clone(),
                role: role.clone(),
            })),
            _ => None,
        },
        action: entry.action.clone(),
        case_id: text(&entry.case_id),
        referral_id: text(&entry.referral_id),
        note_id: text(&entry.note_id),
        basis: entry
            .basis
            .as_deref()
            .and_then(LegalBasisKind::from_code)
            .map_or(pb::LegalBasisKind::Unspecified, convert::basis_out) as i32,
        outcome: entry.outcome.clone(),
        hash: hex::encode(&record.hash),
        consent_id: text(&entry.consent_id),
        municipality: text(&entry.municipality),
        agency_hidden: listed.hidden,
    }
}

#[tonic::async_trait]
impl AuditService for Hub {
    async fn list_audit_records(
        &self,
        request: Request<pb::ListAuditRecordsRequest>,
    ) -> Result<Response<pb::ListAuditRecordsResponse>, Status> {
        let agency = caller(&request)?.agency.clone();
        let query = request.into_inner();
        let audit = self
            .audit(&agency, "AuditService/ListAuditRecords")
            .case(&query.case_id)
            .municipality(&query.municipality);
        let result = async {
            let from = convert::parse_timestamp("from", query.from.as_ref())?;
            let until = convert::parse_timestamp("until", query.until.as_ref())?;
            if let (Some(from), Some(until)) = (from, until)
                && until < from
            {
                return Err(Error::invalid("until", "is before from"));
            }
            let wanted = AuditQuery {
                case_id: convert::optional_id("case_id", &query.case_id, CaseId::parse)?,
                municipality: convert::optional_municipality("municipality", &query.municipality)?,
                from,
                until,
                after_sequence: query.after_sequence,
                limit: convert::limit("limit", query.limit, 100, 1000)?,
            };
            let mut tx = self.store.read().await?;
            let records = audit::list(&mut *tx, &agency, &wanted).await?;
            drop(tx);
            audit
                .read(
                    self,
                    &AuditTarget {
                        case_id: wanted.case_id,
                        municipality: wanted.municipality,
                        ..AuditTarget::default()
                    },
                )
                .await?;
            Ok(pb::ListAuditRecordsResponse {
                records: records.iter().map(record_out).collect(),
            })
        }
        .await;
        audit.finish(self, result).await
    }

    /// Not audited: it shows no case data, and auditing it would move the head it reports.
    /// Signed with the hub's audit signing key; with `since_sequence`, it vouches that the head
    /// extends that record (`casework::audit::head_since`).
    async fn get_audit_head(
        &self,
        request: Request<pb::GetAuditHeadRequest>,
    ) -> Result<Response<pb::GetAuditHeadResponse>, Status> {
        caller(&request)?;
        let since = request.into_inner().since_sequence;
        let mut tx = self.store.read().await.map_err(Error::from)?;
        let (head, vouched) = audit::head_since(&mut *tx, since).await?;
        drop(tx);
        let signed = self.audit_signer.sign(head, vouched);
        Ok(Response::new(pb::GetAuditHeadResponse {
            sequence: signed.head.sequence,
            hash: signed.head.hash_hex(),
            since_sequence: signed.since.sequence,
            since_hash: signed.since.hash_hex(),
            signing_key: self.audit_signer.public_key_hex(),
            signature: hex::encode(&signed.signature),
        }))
    }
}

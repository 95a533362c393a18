//! 移管: proposing a case's transfer to another municipality, the receiving coordinator's
//! acknowledgement, acceptance (opening or linking the case there) or decline, withdrawal, the
//! coordinators' worklist, and escalating the transfer timers.

use std::collections::HashMap;

use super::audit::{AuditCall, AuditTarget, Auditor, entry};
use super::cases::{CaseView, case_view};
use super::timers::HUB_ACTOR;
use super::{FeedAbout, coordinators, notify, visible_case};
use crate::domain::basis::ClaimedBasis;
use crate::domain::council::{self, Ending};
use crate::domain::deadlines::CalendarSettings;
use crate::domain::records::{Case, FeedEventKind};
use crate::domain::transfer::{
    self, DeclineReason, Transfer, TransferDeadlines, TransferShare, TransferState, TransferTimer,
};
use crate::domain::{
    Agency, AgencyId, AgencyStatus, CaseId, Municipality, Sealed, Staff, Timestamp, TransferId,
};
use crate::error::Error;
use crate::store::{StoreError, Transaction};

/// The audit action of a transfer timer's escalation.
pub const ESCALATE_TRANSFER_ACTION: &str = "Hub/EscalateTransfer";

impl From<transfer::TransferError> for Error {
    fn from(error: transfer::TransferError) -> Self {
        Error::FailedPrecondition(error.to_string())
    }
}

/// A transfer as its reader sees it: with the timers escalated and whether it still needs
/// someone.
#[derive(Debug, Clone)]
pub struct TransferView {
    pub transfer: Transfer,
    pub escalated: Vec<TransferTimer>,
    pub on_worklist: bool,
}

/// The audit target of a call about a transfer: the case it moves (in A).
pub fn audit_target(transfer: &Transfer) -> AuditTarget {
    AuditTarget {
        municipality: Some(transfer.from_municipality.clone()),
        case_id: Some(transfer.case_id.clone()),
        basis: Some(transfer.basis),
        ..AuditTarget::default()
    }
}

/// A proposal A's coordinator makes.
#[derive(Debug, Clone)]
pub struct ProposeTransfer {
    pub case_id: CaseId,
    pub to_municipality: Municipality,
    pub basis: ClaimedBasis,
    pub note: Option<Sealed>,
    pub staff: Staff,
}

fn ids(agencies: &[Agency]) -> Vec<AgencyId> {
    agencies.iter().map(|a| a.id.clone()).collect()
}

/// The active coordinators of a municipality.
async fn active_coordinators(
    tx: &mut dyn Transaction,
    municipality: &Municipality,
) -> Result<Vec<Agency>, Error> {
    Ok(coordinators(tx, municipality)
        .await?
        .into_iter()
        .filter(|a| a.status == AgencyStatus::Active)
        .collect())
}

pub async fn propose(
    tx: &mut dyn Transaction,
    caller: &Agency,
    request: ProposeTransfer,
    calendars: &CalendarSettings,
    now: Timestamp,
) -> Result<TransferView, Error> {
    let (case, _) = visible_case(tx, caller, &request.case_id).await?;
    if !caller.is_coordinator_of(&case.municipality) {
        return Err(Error::PermissionDenied(format!(
            "only the coordinator (調整機関) of {} proposes the transfer (移管) of its cases; \
             agency {} does not coordinate it",
            case.municipality, caller.id
        )));
    }
    let to = request.to_municipality;
    if to == case.municipality {
        return Err(Error::invalid(
            "to_municipality",
            format!("{to} is the case's own municipality; name the one the family moves to"),
        ));
    }
    let receiving = active_coordinators(tx, &to).await?;
    if receiving.is_empty() {
        return Err(Error::FailedPrecondition(format!(
            "to_municipality {to} has no coordinator (調整機関) registered with this hub; the \
             hub operator registers one before a case can be transferred there"
        )));
    }
    let earlier = tx.case_transfers(&case.id).await?;
    if let Some(open) = earlier.iter().find(|t| t.state.in_progress()) {
        return Err(Error::AlreadyExists(format!(
            "case {} already has a transfer in progress ({}, to {}); withdraw it first",
            case.id, open.id, open.to_municipality
        )));
    }
    if let Some(done) = earlier.iter().find(|t| t.state == TransferState::Accepted) {
        return Err(Error::FailedPrecondition(format!(
            "case {} was already transferred to {} (transfer {})",
            case.id, done.to_municipality, done.id
        )));
    }
    let consents = tx.consents(&case.id).await?;
    let basis = transfer::decide_basis(
        &request.basis,
        &TransferShare {
            sender: caller,
            receiving_coordinators: &receiving,
            case_municipality: &case.municipality,
            case_council_registered: case.council_registered,
            to: &to,
            consents: &consents,
            now,
        },
    )
    .map_err(|refusal| Error::FailedPrecondition(refusal.to_string()))?;
    let calendar = calendars.for_municipality(Some(&to));
    let transfer = Transfer {
        id: TransferId::generate(),
        case_id: case.id.clone(),
        from_municipality: case.municipality.clone(),
        to_municipality: to,
        proposed_by: caller.id.clone(),
        proposed_staff: request.staff,
        basis: basis.kind,
        consent_id: basis.consent_id,
        justification: basis.justification,
        note: request.note,
        state: TransferState::Proposed,
        proposed_at: now,
        acknowledged_at: None,
        acknowledged_by: None,
        responded_at: None,
        responded_by: None,
        responded_staff: None,
        lead_agency: None,
        receiving_case: None,
        receiving_case_opened: false,
        decline_reason: None,
        decline_text: None,
        withdrawn_at: None,
        deadlines: TransferDeadlines::from_proposal(now, &calendar),
        updated_at: now,
    };
    tx.insert_transfer(&transfer)
        .await
        .map_err(|error| match error {
            StoreError::Conflict(_) => Error::AlreadyExists(format!(
                "case {} already has a transfer in progress",
                transfer.case_id
            )),
            other => other.into(),
        })?;
    tell(
        tx,
        ids(&receiving),
        FeedEventKind::TransferReceived,
        &transfer,
        now,
    )
    .await?;
    Ok(TransferView {
        transfer,
        escalated: Vec::new(),
        on_worklist: true,
    })
}

async fn tell(
    tx: &mut dyn Transaction,
    agencies: Vec<AgencyId>,
    kind: FeedEventKind,
    transfer: &Transfer,
    now: Timestamp,
) -> Result<(), Error> {
    notify(
        tx,
        agencies,
        kind,
        FeedAbout {
            case_id: Some(transfer.case_id.clone()),
            ..FeedAbout::default()
        },
        now,
    )
    .await
}

/// A transfer the caller may read: a coordinator of either side, or B's lead agency once
/// accepted. Anyone else gets the same refusal whether or not it exists.
async fn readable(
    tx: &mut dyn Transaction,
    caller: &Agency,
    id: &TransferId,
) -> Result<Transfer, Error> {
    let transfer = tx
        .transfer(id)
        .await?
        .ok_or_else(|| Error::not_visible("transfer", &caller.id))?;
    let reads = caller.is_coordinator_of(&transfer.from_municipality)
        || caller.is_coordinator_of(&transfer.to_municipality)
        || transfer.lead_agency.as_ref() == Some(&caller.id);
    if reads {
        Ok(transfer)
    } else {
        Err(Error::not_visible("transfer", &caller.id))
    }
}

/// A transfer the receiving municipality's coordinator acts on.
async fn for_receiver(
    tx: &mut dyn Transaction,
    caller: &Agency,
    id: &TransferId,
    step: &str,
) -> Result<Transfer, Error> {
    let transfer = readable(tx, caller, id).await?;
    if !caller.is_coordinator_of(&transfer.to_municipality) {
        return Err(Error::PermissionDenied(format!(
            "only the coordinator (調整機関) of {} {step} this transfer",
            transfer.to_municipality
        )));
    }
    Ok(transfer)
}

/// Completes a view of a transfer from the store.
async fn view(tx: &mut dyn Transaction, transfer: Transfer) -> Result<TransferView, Error> {
    let later = tx
        .case_transfers(&transfer.case_id)
        .await?
        .iter()
        .any(|t| (t.proposed_at, &t.id) > (transfer.proposed_at, &transfer.id));
    let escalated = tx.transfer_escalations(&transfer.id).await?;
    Ok(TransferView {
        on_worklist: transfer::on_worklist(&transfer, later),
        escalated,
        transfer,
    })
}

pub async fn acknowledge(
    tx: &mut dyn Transaction,
    caller: &Agency,
    id: &TransferId,
    now: Timestamp,
) -> Result<TransferView, Error> {
    let current = for_receiver(tx, caller, id, "acknowledges").await?;
    let next = transfer::acknowledge(&current, &caller.id, now)?;
    tx.update_transfer(&next).await?;
    let from = active_coordinators(tx, &next.from_municipality).await?;
    tell(tx, ids(&from), FeedEventKind::TransferUpdated, &next, now).await?;
    view(tx, next).await
}

/// B's acceptance.
#[derive(Debug, Clone)]
pub struct AcceptTransfer {
    pub id: TransferId,
    pub lead_agency: AgencyId,
    /// A case of B to link; `None`: open one with `header`.
    pub receiving_case: Option<CaseId>,
    pub header: Option<Sealed>,
    pub staff: Staff,
}

/// B takes the family on: checks the lead agency, links or opens B's case, makes B's coordinator
/// and lead agency participants of it and B's coordinator a participant of A's case (to read its
/// thread once A re-seals it), ends an active 要対協 registration of A's case as transferred,
/// and tells A's coordinators and the lead agency.
pub async fn accept(
    tx: &mut dyn Transaction,
    caller: &Agency,
    request: AcceptTransfer,
    now: Timestamp,
) -> Result<(TransferView, CaseView), Error> {
    let current = for_receiver(tx, caller, &request.id, "accepts").await?;
    // The state first, so that a late acceptance is refused as such, before its details.
    transfer::accept(
        &current,
        &caller.id,
        request.staff.clone(),
        request.lead_agency.clone(),
        current.case_id.clone(),
        false,
        now,
    )?;
    let to = &current.to_municipality;
    let lead = tx.agency(&request.lead_agency).await?.ok_or_else(|| {
        Error::invalid(
            "lead_agency",
            format!(
                "agency {} is not registered with this hub",
                request.lead_agency
            ),
        )
    })?;
    if !lead.serves(to) {
        return Err(Error::invalid(
            "lead_agency",
            format!(
                "agency {} does not serve {to}; name an agency of {to}",
                lead.id
            ),
        ));
    }
    if lead.status != AgencyStatus::Active {
        return Err(Error::FailedPrecondition(format!(
            "lead_agency {} is suspended and cannot take the family on now",
            lead.id
        )));
    }
    let sent_case = tx
        .case(&current.case_id)
        .await?
        .ok_or_else(|| Error::internal(StoreError::corrupt("transfers", "case missing")))?;
    let (receiving, opened) = match (request.receiving_case, request.header) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid(
                "header",
                "give either receiving_case_id (link a case of the receiving municipality) or \
                 header (open one), not both",
            ));
        }
        (Some(id), None) => {
            let case = tx.case(&id).await?.filter(|c| &c.municipality == to);
            let case = case.ok_or_else(|| {
                Error::invalid(
                    "receiving_case_id",
                    format!(
                        "no case of {to} with this id; link a case of the receiving municipality"
                    ),
                )
            })?;
            (case.id, false)
        }
        (None, Some(header)) => {
            let case = Case {
                id: CaseId::generate(),
                municipality: to.clone(),
                category: sent_case.category,
                stage: sent_case.stage,
                opened_by: caller.id.clone(),
                opened_at: now,
                header,
                council_registered: false,
            };
            tx.insert_case(&case).await?;
            (case.id, true)
        }
        (None, None) => {
            return Err(Error::invalid(
                "header",
                "is required to open the case in the receiving municipality (or give \
                 receiving_case_id to link one)",
            ));
        }
    };
    let next = transfer::accept(
        &current,
        &caller.id,
        request.staff.clone(),
        lead.id.clone(),
        receiving.clone(),
        opened,
        now,
    )?;
    tx.update_transfer(&next).await?;
    tx.add_participants(&receiving, &[&caller.id, &lead.id], now)
        .await?;
    tx.add_participants(&sent_case.id, &[&caller.id], now)
        .await?;
    if let Some(registration) = tx.registration(&sent_case.id).await?
        && registration.is_active()
    {
        let ended = council::end(
            &registration,
            Ending::Transfer {
                to: to.clone(),
                reason: Some("移管受理".to_owned()),
            },
            now.date_in_japan().max(registration.registered_on),
            request.staff,
            now,
        )?;
        tx.save_registration(&ended).await?;
        let participants: Vec<AgencyId> = tx
            .participants(&sent_case.id)
            .await?
            .into_iter()
            .map(|p| p.agency_id)
            .filter(|id| id != &caller.id)
            .collect();
        notify(
            tx,
            participants,
            FeedEventKind::CouncilUpdated,
            FeedAbout {
                case_id: Some(sent_case.id.clone()),
                ..FeedAbout::default()
            },
            now,
        )
        .await?;
    }
    let mut told = ids(&active_coordinators(tx, &next.from_municipality).await?);
    told.push(lead.id.clone());
    told.retain(|id| id != &caller.id);
    tell(tx, told, FeedEventKind::TransferUpdated, &next, now).await?;
    let case = case_view(tx, caller, &receiving).await?;
    Ok((view(tx, next).await?, case))
}

pub async fn decline(
    tx: &mut dyn Transaction,
    caller: &Agency,
    id: &TransferId,
    reason: DeclineReason,
    text: Option<String>,
    staff: Staff,
    now: Timestamp,
) -> Result<TransferView, Error> {
    let current = for_receiver(tx, caller, id, "declines").await?;
    let next = transfer::decline(&current, &caller.id, staff, reason, text, now)?;
    tx.update_transfer(&next).await?;
    let mut told = ids(&active_coordinators(tx, &next.from_municipality).await?);
    told.push(next.proposed_by.clone());
    tell(tx, told, FeedEventKind::TransferUpdated, &next, now).await?;
    view(tx, next).await
}

pub async fn withdraw(
    tx: &mut dyn Transaction,
    caller: &Agency,
    id: &TransferId,
    now: Timestamp,
) -> Result<TransferView, Error> {
    let current = readable(tx, caller, id).await?;
    if !caller.is_coordinator_of(&current.from_municipality) {
        return Err(Error::PermissionDenied(format!(
            "only the coordinator (調整機関) of {} withdraws this transfer",
            current.from_municipality
        )));
    }
    let next = transfer::withdraw(&current, now)?;
    tx.update_transfer(&next).await?;
    let to = active_coordinators(tx, &next.to_municipality).await?;
    tell(tx, ids(&to), FeedEventKind::TransferUpdated, &next, now).await?;
    view(tx, next).await
}

pub async fn get(
    tx: &mut dyn Transaction,
    caller: &Agency,
    id: &TransferId,
) -> Result<TransferView, Error> {
    let transfer = readable(tx, caller, id).await?;
    view(tx, transfer).await
}

/// Which transfers a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListView {
    All,
    /// The worklist: transfers someone still has to act on.
    Open,
    /// Worklist transfers with a passed timer.
    Overdue,
}

/// The transfers of the caller's coordinated municipalities (or of one of them), newest first.
pub async fn list(
    tx: &mut dyn Transaction,
    caller: &Agency,
    municipality: Option<&Municipality>,
    case: Option<&CaseId>,
    list_view: ListView,
    now: Timestamp,
) -> Result<Vec<TransferView>, Error> {
    let municipalities: Vec<Municipality> = match municipality {
        Some(m) if caller.is_coordinator_of(m) => vec![m.clone()],
        Some(m) => {
            return Err(Error::PermissionDenied(format!(
                "only the coordinator (調整機関) of {m} lists its transfers"
            )));
        }
        None => caller.coordinator_of.clone(),
    };
    let mut found: HashMap<TransferId, Transfer> = HashMap::new();
    for m in &municipalities {
        for t in tx.municipality_transfers(m).await? {
            found.insert(t.id.clone(), t);
        }
    }
    let mut all: Vec<Transfer> = found.into_values().collect();
    // The latest proposal of each case, to tell whether A has acted on a decline.
    let mut latest: HashMap<CaseId, (Timestamp, TransferId)> = HashMap::new();
    for t in &all {
        let entry = latest
            .entry(t.case_id.clone())
            .or_insert((t.proposed_at, t.id.clone()));
        if (t.proposed_at, &t.id) > (entry.0, &entry.1) {
            *entry = (t.proposed_at, t.id.clone());
        }
    }
    all.sort_by(|a, b| (b.proposed_at, &b.id).cmp(&(a.proposed_at, &a.id)));
    let mut views = Vec::new();
    for transfer in all {
        if let Some(case) = case
            && &transfer.case_id != case
            && transfer.receiving_case.as_ref() != Some(case)
        {
            continue;
        }
        let later = latest
            .get(&transfer.case_id)
            .is_some_and(|(_, id)| id != &transfer.id);
        let on_worklist = transfer::on_worklist(&transfer, later);
        // B's worklist holds a transfer while B has to act; A's also once B declined.
        let mine = (caller.is_coordinator_of(&transfer.to_municipality)
            && transfer.state.in_progress())
            || (caller.is_coordinator_of(&transfer.from_municipality) && on_worklist);
        let keep = match list_view {
            ListView::All => true,
            ListView::Open => mine,
            ListView::Overdue => mine && !transfer.overdue(now).is_empty(),
        };
        if !keep {
            continue;
        }
        let escalated = tx.transfer_escalations(&transfer.id).await?;
        views.push(TransferView {
            transfer,
            escalated,
            on_worklist,
        });
    }
    Ok(views)
}

/// Escalates every passed timer of a transfer in progress, once each: an audit record of the
/// hub's own, and a feed entry to the coordinators of both municipalities. The transfer stays on
/// both worklists until it moves. Returns how many escalations were raised.
pub async fn escalate_due(
    tx: &mut dyn Transaction,
    auditor: &Auditor,
    now: Timestamp,
) -> Result<usize, Error> {
    let mut raised = 0;
    for transfer in tx.transfers_due(now).await? {
        for timer in transfer.overdue(now) {
            if !tx
                .record_transfer_escalation(&transfer.id, timer, now)
                .await?
            {
                continue;
            }
            let mut record = entry(
                &AuditCall {
                    agency: AgencyId::parse(HUB_ACTOR).expect("a valid agency id"),
                    staff: None,
                    action: ESCALATE_TRANSFER_ACTION,
                },
                &audit_target(&transfer),
                crate::domain::audit::OK,
                now,
            );
            record.staff_role = Some(format!("transfer {}", timer.code()));
            auditor.record_entry(tx, &record).await?;
            let mut told = ids(&active_coordinators(tx, &transfer.from_municipality).await?);
            told.extend(ids(
                &active_coordinators(tx, &transfer.to_municipality).await?
            ));
            tell(tx, told, FeedEventKind::TransferEscalation, &transfer, now).await?;
            raised += 1;
        }
    }
    Ok(raised)
}

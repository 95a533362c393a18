//! Cases and consent: opening a case, who takes part, recording and withdrawing consent, and the
//! case thread.

use std::collections::HashSet;

use super::{CaseAccess, FeedAbout, hidden_reporters, may_see_referral, notify, visible_case};
use crate::domain::consent::{Consent, ConsentGiver, ConsentMethod, ConsentScope, validate_scope};
use crate::domain::council::Decision;
use crate::domain::records::{Case, FeedEventKind, Note, Participant, Referral, ReferralEvent};
use crate::domain::sealing::{ResealRecord, SealedFieldKind};
use crate::domain::{
    Agency, AgencyId, CaseCategory, CaseId, CaseStage, ConsentId, Municipality, Sealed, Staff,
    Timestamp,
};
use crate::error::Error;
use crate::store::Transaction;

/// A request to open a case.
#[derive(Debug, Clone)]
pub struct OpenCase {
    pub municipality: Municipality,
    pub category: CaseCategory,
    pub stage: CaseStage,
    pub header: Sealed,
    pub staff: Staff,
}

/// A case as one agency may see it.
#[derive(Debug, Clone)]
pub struct CaseView {
    pub case: Case,
    pub participants: Vec<Participant>,
    /// Agencies whose identity this viewer must not learn (reporters of 通告).
    pub hidden: HashSet<AgencyId>,
    pub access: CaseAccess,
}

pub async fn open_case(
    tx: &mut dyn Transaction,
    caller: &Agency,
    request: OpenCase,
    now: Timestamp,
) -> Result<CaseView, Error> {
    if !caller.serves(&request.municipality) {
        return Err(Error::PermissionDenied(format!(
            "agency {} does not serve municipality {}; open the case in a municipality you serve",
            caller.id, request.municipality
        )));
    }
    let case = Case {
        id: CaseId::generate(),
        municipality: request.municipality,
        category: request.category,
        stage: request.stage,
        opened_by: caller.id.clone(),
        opened_at: now,
        header: request.header,
        council_registered: false,
    };
    tx.insert_case(&case).await?;
    tx.add_participants(&case.id, &[&caller.id], now).await?;
    Ok(CaseView {
        participants: vec![Participant {
            agency_id: caller.id.clone(),
            since: now,
        }],
        case,
        hidden: HashSet::new(),
        access: CaseAccess::Participant,
    })
}

/// A case the caller may see, with its participants.
pub async fn case_view(
    tx: &mut dyn Transaction,
    caller: &Agency,
    case_id: &CaseId,
) -> Result<CaseView, Error> {
    let (case, access) = visible_case(tx, caller, case_id).await?;
    let referrals = tx.case_referrals(case_id).await?;
    let participants = tx.participants(case_id).await?;
    Ok(CaseView {
        hidden: hidden_reporters(&referrals, &caller.id),
        case,
        participants,
        access,
    })
}

/// The cases the caller takes part in or coordinates, in id order after `after`.
pub async fn list_cases(
    tx: &mut dyn Transaction,
    caller: &Agency,
    municipality: Option<&Municipality>,
    after: Option<&CaseId>,
    limit: u32,
) -> Result<Vec<CaseView>, Error> {
    let cases = tx
        .visible_cases(
            &caller.id,
            &caller.coordinator_of,
            municipality,
            after,
            limit,
        )
        .await?;
    let mut views = Vec::with_capacity(cases.len());
    for case in cases {
        views.push(case_view(tx, caller, &case.id).await?);
    }
    Ok(views)
}

/// A consent to record.
#[derive(Debug, Clone)]
pub struct RecordConsent {
    pub case_id: CaseId,
    pub given_by: ConsentGiver,
    pub method: ConsentMethod,
    pub scope: ConsentScope,
    pub valid_from: time::Date,
    pub valid_until: Option<time::Date>,
    pub evidence: Option<Sealed>,
    pub staff: Staff,
}

pub async fn record_consent(
    tx: &mut dyn Transaction,
    caller: &Agency,
    request: RecordConsent,
    now: Timestamp,
) -> Result<Consent, Error> {
    visible_case(tx, caller, &request.case_id).await?;
    validate_scope(&request.scope, request.valid_from, request.valid_until)
        .map_err(|error| Error::invalid(error.field, error.reason))?;
    for agency in &request.scope.recipient_agencies {
        if tx.agency(agency).await?.is_none() {
            return Err(Error::invalid(
                "scope.recipient_agencies",
                format!("agency {agency} is not registered with this hub"),
            ));
        }
    }
    let consent = Consent {
        id: ConsentId::generate(),
        case_id: request.case_id,
        given_by: request.given_by,
        method: request.method,
        recorded_by: caller.id.clone(),
        recorded_by_staff: request.staff,
        scope: request.scope,
        valid_from: request.valid_from,
        valid_until: request.valid_until,
        recorded_at: now,
        withdrawn_at: None,
        evidence: request.evidence,
    };
    tx.insert_consent(&consent).await?;
    Ok(consent)
}

/// Withdraws a consent at `at`. Withdrawing twice keeps the first withdrawal.
pub async fn withdraw_consent(
    tx: &mut dyn Transaction,
    caller: &Agency,
    consent_id: &ConsentId,
    at: Timestamp,
) -> Result<Consent, Error> {
    // A consent that does not exist and one on a case the caller may not see are refused alike.
    let consent = tx
        .consent(consent_id)
        .await?
        .ok_or_else(|| Error::not_visible("consent", &caller.id))?;
    visible_case(tx, caller, &consent.case_id)
        .await
        .map_err(|error| match error {
            Error::PermissionDenied(_) => Error::not_visible("consent", &caller.id),
            other => other,
        })?;
    if consent.withdrawn_at.is_none() {
        tx.withdraw_consent(consent_id, at).await?;
        let others: Vec<AgencyId> = tx
            .participants(&consent.case_id)
            .await?
            .into_iter()
            .map(|p| p.agency_id)
            .filter(|id| id != &caller.id)
            .collect();
        notify(
            tx,
            others,
            FeedEventKind::ConsentWithdrawn,
            FeedAbout {
                case_id: Some(consent.case_id.clone()),
                ..FeedAbout::default()
            },
            at,
        )
        .await?;
    }
    tx.consent(consent_id)
        .await?
        .ok_or_else(|| Error::NotFound {
            what: "consent",
            id: consent_id.to_string(),
        })
}

pub async fn consents(
    tx: &mut dyn Transaction,
    caller: &Agency,
    case_id: &CaseId,
) -> Result<Vec<Consent>, Error> {
    visible_case(tx, caller, case_id).await?;
    Ok(tx.consents(case_id).await?)
}

/// One entry of a case thread.
#[derive(Debug, Clone)]
pub enum ThreadItem {
    ReferralEvent(ReferralEvent),
    Note(Note),
    /// A 要対協 decision, for the council's members only.
    Decision(Decision),
    /// A sealed field the caller sees was given new readers.
    Reseal(ResealRecord),
    /// A transfer (移管) of the case to another municipality, or into it from one.
    Transfer(Box<crate::domain::transfer::Transfer>),
}

impl ThreadItem {
    pub fn at(&self) -> Timestamp {
        match self {
            Self::ReferralEvent(event) => event.recorded_at,
            Self::Note(note) => note.sent_at,
            Self::Decision(decision) => decision.decided_at,
            Self::Reseal(record) => record.resealed_at,
            Self::Transfer(transfer) => transfer.updated_at,
        }
    }
}

/// A case thread as one agency may see it.
#[derive(Debug, Clone)]
pub struct Thread {
    pub view: CaseView,
    /// The case's referrals the caller may see (to redact events).
    pub referrals: Vec<Referral>,
    pub items: Vec<ThreadItem>,
}

/// The referral events and notes of a case that the caller may see, and the council's decisions
/// for its members, oldest first.
pub async fn thread(
    tx: &mut dyn Transaction,
    caller: &Agency,
    case_id: &CaseId,
    since: Option<Timestamp>,
) -> Result<Thread, Error> {
    let view = case_view(tx, caller, case_id).await?;
    let referrals: Vec<Referral> = tx
        .case_referrals(case_id)
        .await?
        .into_iter()
        .filter(|r| may_see_referral(caller, r))
        .collect();
    let visible: HashSet<_> = referrals.iter().map(|r| r.id.clone()).collect();
    let mut items: Vec<ThreadItem> = tx
        .case_referral_events(case_id, since)
        .await?
        .into_iter()
        .filter(|e| visible.contains(&e.referral_id))
        .map(ThreadItem::ReferralEvent)
        .collect();
    let coordinator = caller.is_coordinator_of(&view.case.municipality);
    items.extend(
        tx.case_notes(case_id, since)
            .await?
            .into_iter()
            .filter(|note| {
                coordinator
                    || note.from_agency == caller.id
                    || note.recipients.iter().any(|r| r.agency_id == caller.id)
            })
            .map(ThreadItem::Note),
    );
    if crate::domain::council::sees_decisions(caller, &view.case.municipality) {
        items.extend(
            tx.case_decisions(case_id, since)
                .await?
                .into_iter()
                .map(ThreadItem::Decision),
        );
    }
    let notes: HashSet<String> = items
        .iter()
        .filter_map(|item| match item {
            ThreadItem::Note(note) => Some(note.id.to_string()),
            _ => None,
        })
        .collect();
    let referral_ids: HashSet<String> = visible.iter().map(ToString::to_string).collect();
    items.extend(
        tx.case_reseals(case_id, since)
            .await?
            .into_iter()
            .filter(|record| {
                !view.hidden.contains(&record.resealed_by)
                    && match record.field.kind {
                        SealedFieldKind::CaseHeader => true,
                        SealedFieldKind::ReferralBody => referral_ids.contains(&record.field.id),
                        SealedFieldKind::NoteBody => notes.contains(&record.field.id),
                    }
            })
            .map(ThreadItem::Reseal),
    );
    // The family's journey between municipalities: transfers of this case, and into it.
    let mut transfers = tx.case_transfers(case_id).await?;
    transfers.extend(tx.received_transfers(case_id).await?);
    items.extend(
        transfers
            .into_iter()
            .filter(|t| since.is_none_or(|since| t.updated_at >= since))
            .map(|t| ThreadItem::Transfer(Box::new(t))),
    );
    items.sort_by_key(ThreadItem::at);
    Ok(Thread {
        view,
        referrals,
        items,
    })
}

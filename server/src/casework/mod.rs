//! Casework: the hub's use cases (open a case, record consent, refer, act on a referral, send a
//! note, list the worklist, escalate passed timers). Each runs inside one store transaction,
//! reads what the domain rules need, applies them, and writes the outcome with its events.

pub mod audit;
pub mod cases;
pub mod council;
pub mod feed;
pub mod followups;
pub mod keys;
pub mod notes;
pub mod outcomes;
pub mod referrals;
pub mod sealing;
pub mod timers;
pub mod transfers;

use std::collections::HashSet;

use crate::domain::records::{Case, FeedEntry, FeedEventKind, Referral};
use crate::domain::{Agency, AgencyId, EventId, Timestamp};
use crate::error::Error;
use crate::store::Transaction;

/// How the caller relates to a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseAccess {
    Participant,
    /// The coordinator of the case's municipality, who sees every case there.
    Coordinator,
}

/// Loads a case the caller may see. A case that does not exist and one the caller neither takes
/// part in nor coordinates get the same refusal ([`Error::not_visible`]).
pub async fn visible_case(
    tx: &mut dyn Transaction,
    caller: &Agency,
    case_id: &crate::domain::CaseId,
) -> Result<(Case, CaseAccess), Error> {
    let (case, participates) = tx
        .case_for(case_id, &caller.id)
        .await?
        .ok_or_else(|| Error::not_visible("case", &caller.id))?;
    if participates {
        return Ok((case, CaseAccess::Participant));
    }
    if caller.is_coordinator_of(&case.municipality) {
        return Ok((case, CaseAccess::Coordinator));
    }
    Err(Error::not_visible("case", &caller.id))
}

/// Whether the caller may see a referral: its sender, its recipient, or the coordinator of its
/// municipality.
pub fn may_see_referral(caller: &Agency, referral: &Referral) -> bool {
    referral.from_agency == caller.id
        || referral.to_agency == caller.id
        || caller.is_coordinator_of(&referral.municipality)
}

/// The agencies whose identity must be hidden from `viewer` on a case: the reporters of 通告
/// (abuse notifications), except from the agency the notification went to.
pub fn hidden_reporters(referrals: &[Referral], viewer: &AgencyId) -> HashSet<AgencyId> {
    let mut hidden: HashSet<AgencyId> = referrals
        .iter()
        .filter(|r| r.hide_sender && &r.from_agency != viewer && &r.to_agency != viewer)
        .map(|r| r.from_agency.clone())
        .collect();
    // A reporter whose own notification the viewer received is already known to the viewer.
    for referral in referrals {
        if referral.hide_sender && &referral.to_agency == viewer {
            hidden.remove(&referral.from_agency);
        }
    }
    hidden.remove(viewer);
    hidden
}

/// Whether the sender of a referral is shown to `viewer`.
pub fn sender_visible(referral: &Referral, viewer: &AgencyId) -> bool {
    !referral.hide_sender || &referral.from_agency == viewer || &referral.to_agency == viewer
}

/// Appends a feed entry for each agency (once each) and reports whether any was written.
pub async fn notify(
    tx: &mut dyn Transaction,
    agencies: impl IntoIterator<Item = AgencyId>,
    kind: FeedEventKind,
    about: FeedAbout,
    at: Timestamp,
) -> Result<(), Error> {
    let mut seen = HashSet::new();
    for agency in agencies {
        if !seen.insert(agency.clone()) {
            continue;
        }
        tx.append_feed(&FeedEntry {
            agency_id: agency,
            event_id: EventId::generate(),
            kind,
            case_id: about.case_id.clone(),
            referral_id: about.referral_id.clone(),
            note_id: about.note_id.clone(),
            referral_event_id: about.referral_event_id.clone(),
            recorded_at: at,
        })
        .await?;
    }
    Ok(())
}

/// What a feed entry is about.
#[derive(Debug, Clone, Default)]
pub struct FeedAbout {
    pub case_id: Option<crate::domain::CaseId>,
    pub referral_id: Option<crate::domain::ReferralId>,
    pub note_id: Option<crate::domain::NoteId>,
    pub referral_event_id: Option<EventId>,
}

/// The coordinators (調整機関) of a municipality.
/// Every registered agency by id, to describe participants and readers by name and kind.
pub async fn directory(
    tx: &mut dyn Transaction,
) -> Result<std::collections::HashMap<AgencyId, Agency>, Error> {
    Ok(tx
        .agencies()
        .await?
        .into_iter()
        .map(|agency| (agency.id.clone(), agency))
        .collect())
}

/// The registered agencies, those serving `municipality` and of `kind` where given.
pub async fn agencies(
    tx: &mut dyn Transaction,
    municipality: Option<&crate::domain::Municipality>,
    kind: Option<&crate::domain::AgencyKind>,
) -> Result<Vec<Agency>, Error> {
    let mut agencies = tx.agencies().await?;
    agencies
        .retain(|a| municipality.is_none_or(|m| a.serves(m)) && kind.is_none_or(|k| &a.kind == k));
    Ok(agencies)
}

pub async fn coordinators(
    tx: &mut dyn Transaction,
    municipality: &crate::domain::Municipality,
) -> Result<Vec<Agency>, Error> {
    Ok(tx
        .agencies()
        .await?
        .into_iter()
        .filter(|a| a.is_coordinator_of(municipality))
        .collect())
}

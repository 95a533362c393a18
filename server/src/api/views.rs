//! What the services answer with about cases: a case, its thread's entries (referral events,
//! notes, 要対協 decisions, re-seals, transfers). Shared by CaseService, CouncilService (the
//! meeting pack's timeline), SealingService and TransferService, so that a case and its thread
//! read the same whichever call returns them.

use std::collections::HashMap;

use tsunagu_proto::v1 as pb;

use super::convert;
use crate::casework::cases::{CaseView, ThreadItem};
use crate::domain::council::{Decision, DecisionOutcome};
use crate::domain::records::Referral;
use crate::domain::sealing::{ResealRecord, SealedFieldKind, SealedFieldRef};
use crate::domain::transfer::{Transfer, TransferState};
use crate::domain::{Agency, AgencyId, ReferralId};

/// A case as its viewer may see it.
pub fn case_out(view: &CaseView, agencies: &HashMap<AgencyId, Agency>) -> pb::Case {
    let case = &view.case;
    pb::Case {
        case_id: case.id.to_string(),
        municipality: case.municipality.to_string(),
        category: convert::category_out(case.category) as i32,
        stage: convert::stage_out(case.stage) as i32,
        opened_by: if view.hidden.contains(&case.opened_by) {
            String::new()
        } else {
            case.opened_by.to_string()
        },
        opened_at: Some(convert::timestamp(case.opened_at)),
        participants: view
            .participants
            .iter()
            .filter(|p| !view.hidden.contains(&p.agency_id))
            .map(|p| {
                let agency = agencies.get(&p.agency_id);
                pb::Participant {
                    agency_id: p.agency_id.to_string(),
                    display_name: agency.map(|a| a.display_name.clone()).unwrap_or_default(),
                    kind: agency.map(|a| a.kind.to_string()).unwrap_or_default(),
                    since: Some(convert::timestamp(p.since)),
                }
            })
            .collect(),
        header: Some(convert::sealed_out(&case.header)),
        council_registered: case.council_registered,
    }
}

/// A decision as every council member sees it (the case thread renders it too).
pub fn decision_out(decision: &Decision) -> pb::Decision {
    let outcome = match &decision.outcome {
        DecisionOutcome::Continue => pb::DecisionOutcome::Continue,
        DecisionOutcome::Close { .. } => pb::DecisionOutcome::Close,
        DecisionOutcome::Transfer { .. } => pb::DecisionOutcome::Transfer,
    };
    pb::Decision {
        decision_id: decision.id.to_string(),
        meeting_id: decision.meeting_id.to_string(),
        case_id: decision.case_id.to_string(),
        outcome: outcome as i32,
        close_reason: decision.outcome.reason().unwrap_or_default().to_owned(),
        transfer_to: decision
            .outcome
            .transfer_to()
            .map(ToString::to_string)
            .unwrap_or_default(),
        lead_agency: decision.lead_agency.to_string(),
        plan: decision.plan.as_ref().map(convert::sealed_out),
        next_review_on: optional_date_out(decision.next_review_on),
        decided_at: Some(convert::timestamp(decision.decided_at)),
        held_on: convert::date_text(decision.held_on),
        decided_by: decision.decided_by.to_string(),
        staff: Some(convert::staff_out(&decision.staff)),
    }
}

pub fn optional_date_out(date: Option<time::Date>) -> String {
    date.map(convert::date_text).unwrap_or_default()
}

pub fn kind_out(kind: SealedFieldKind) -> pb::SealedFieldKind {
    match kind {
        SealedFieldKind::CaseHeader => pb::SealedFieldKind::CaseHeader,
        SealedFieldKind::ReferralBody => pb::SealedFieldKind::ReferralBody,
        SealedFieldKind::NoteBody => pb::SealedFieldKind::NoteBody,
    }
}

pub fn field_out(field: &SealedFieldRef) -> pb::SealedFieldRef {
    pb::SealedFieldRef {
        kind: kind_out(field.kind) as i32,
        id: field.id.clone(),
    }
}

/// A re-seal on the case thread.
pub fn record_out(record: &ResealRecord) -> pb::ResealRecord {
    pb::ResealRecord {
        reseal_id: record.id.to_string(),
        case_id: record.case_id.to_string(),
        field: Some(field_out(&record.field)),
        resealed_by: record.resealed_by.to_string(),
        staff: Some(convert::staff_out(&record.staff)),
        added_readers: record
            .added_readers
            .iter()
            .map(ToString::to_string)
            .collect(),
        resealed_at: Some(convert::timestamp(record.resealed_at)),
    }
}

pub fn state_out(state: TransferState) -> pb::TransferState {
    match state {
        TransferState::Proposed => pb::TransferState::Proposed,
        TransferState::Acknowledged => pb::TransferState::Acknowledged,
        TransferState::Accepted => pb::TransferState::Accepted,
        TransferState::Declined => pb::TransferState::Declined,
        TransferState::Withdrawn => pb::TransferState::Withdrawn,
    }
}

/// A transfer as a case thread shows it.
pub fn transfer_entry(transfer: &Transfer) -> pb::TransferEntry {
    pb::TransferEntry {
        transfer_id: transfer.id.to_string(),
        state: state_out(transfer.state) as i32,
        from_municipality: transfer.from_municipality.to_string(),
        to_municipality: transfer.to_municipality.to_string(),
        sent_case_id: transfer.case_id.to_string(),
        receiving_case_id: text(transfer.receiving_case.as_ref()),
        lead_agency: text(transfer.lead_agency.as_ref()),
        decline_reason: transfer
            .decline_reason
            .map(|r| r.code().to_owned())
            .unwrap_or_default(),
        at: Some(convert::timestamp(transfer.updated_at)),
    }
}

pub fn text<T: ToString>(value: Option<&T>) -> String {
    value.map(ToString::to_string).unwrap_or_default()
}

/// One entry of a case thread as `viewer` may see it; `referrals` are the thread's referrals the
/// viewer sees (an event of any other is left out), so a hidden reporter stays hidden.
pub fn thread_entry(
    item: &ThreadItem,
    referrals: &HashMap<&ReferralId, &Referral>,
    viewer: &AgencyId,
) -> Option<pb::ThreadEntry> {
    let entry = match item {
        ThreadItem::ReferralEvent(event) => {
            let referral = referrals.get(&event.referral_id)?;
            let hide = convert::hides_actor(event, referral, viewer);
            pb::thread_entry::Entry::ReferralEvent(convert::referral_event(event, hide))
        }
        ThreadItem::Note(note) => pb::thread_entry::Entry::Note(convert::note(note, viewer)),
        ThreadItem::Decision(decision) => pb::thread_entry::Entry::Decision(decision_out(decision)),
        ThreadItem::Reseal(record) => pb::thread_entry::Entry::Reseal(record_out(record)),
        ThreadItem::Transfer(transfer) => {
            pb::thread_entry::Entry::Transfer(transfer_entry(transfer))
        }
    };
    Some(pb::ThreadEntry { entry: Some(entry) })
}

//! Notes on a case thread: sent to one or more agencies under a legal basis each, and
//! acknowledged per recipient.

use super::referrals::share_recipient;
use super::{FeedAbout, notify, visible_case};
use crate::domain::basis::{ClaimedBasis, ShareContext, decide};
use crate::domain::records::{FeedEventKind, Note, NoteRecipient};
use crate::domain::{Agency, AgencyId, CaseId, NoteId, Purpose, Sealed, Staff, Timestamp};
use crate::error::Error;
use crate::store::Transaction;

/// A note to send.
#[derive(Debug, Clone)]
pub struct SendNote {
    pub case_id: CaseId,
    pub to_agencies: Vec<AgencyId>,
    pub purpose: Purpose,
    pub basis: ClaimedBasis,
    pub body: Sealed,
    pub staff: Staff,
}

/// Sends a note. Every recipient needs the basis to hold for it; one that does not refuses the
/// whole note, so no recipient gets a note another was refused.
pub async fn send_note(
    tx: &mut dyn Transaction,
    caller: &Agency,
    request: SendNote,
    now: Timestamp,
) -> Result<Note, Error> {
    let (case, _) = visible_case(tx, caller, &request.case_id).await?;
    let consents = tx.consents(&case.id).await?;
    let mut decisions = Vec::with_capacity(request.to_agencies.len());
    for recipient in &request.to_agencies {
        let recipient = share_recipient(tx, caller, recipient, "to_agencies").await?;
        let decision = decide(
            &request.basis,
            &ShareContext {
                sender: caller,
                recipient: &recipient,
                case_municipality: &case.municipality,
                case_council_registered: case.council_registered,
                purpose: &request.purpose,
                consents: &consents,
                now,
            },
        )
        .map_err(|refusal| Error::FailedPrecondition(refusal.to_string()))?;
        decisions.push(decision);
    }
    let needs_review = decisions.iter().any(|d| d.needs_review);
    let note = Note {
        id: NoteId::generate(),
        case_id: case.id.clone(),
        from_agency: caller.id.clone(),
        staff: request.staff,
        purpose: request.purpose,
        basis: request.basis.kind,
        consent_id: decisions.iter().find_map(|d| d.consent_id.clone()),
        justification: request.basis.justification.filter(|_| needs_review),
        hide_sender: decisions.iter().any(|d| d.hide_sender),
        body: request.body,
        sent_at: now,
        recipients: request
            .to_agencies
            .iter()
            .map(|agency_id| NoteRecipient {
                agency_id: agency_id.clone(),
                acknowledged_at: None,
            })
            .collect(),
    };
    tx.insert_note(&note).await?;
    let taking_part: Vec<&AgencyId> = std::iter::once(&caller.id)
        .chain(note.recipients.iter().map(|recipient| &recipient.agency_id))
        .collect();
    tx.add_participants(&case.id, &taking_part, now).await?;
    let recipients: Vec<_> = note
        .recipients
        .iter()
        .map(|r| r.agency_id.clone())
        .collect();
    notify(
        tx,
        recipients,
        FeedEventKind::NoteReceived,
        FeedAbout {
            case_id: Some(case.id),
            note_id: Some(note.id.clone()),
            ..FeedAbout::default()
        },
        now,
    )
    .await?;
    Ok(note)
}

/// Loads a note the caller may see: its sender, a recipient, or the case's coordinator.
pub async fn visible_note(
    tx: &mut dyn Transaction,
    caller: &Agency,
    id: &NoteId,
) -> Result<Note, Error> {
    // A note that does not exist and one the caller may not see are refused alike.
    let note = tx
        .note(id)
        .await?
        .ok_or_else(|| Error::not_visible("note", &caller.id))?;
    let involved =
        note.from_agency == caller.id || note.recipients.iter().any(|r| r.agency_id == caller.id);
    if !involved {
        let visible = match visible_case(tx, caller, &note.case_id).await {
            Ok((case, _)) => caller.is_coordinator_of(&case.municipality),
            Err(Error::PermissionDenied(_)) => false,
            Err(other) => return Err(other),
        };
        if !visible {
            return Err(Error::not_visible("note", &caller.id));
        }
    }
    Ok(note)
}

/// Records that the caller, a recipient, has the note. Acknowledging twice keeps the first time.
pub async fn acknowledge_note(
    tx: &mut dyn Transaction,
    caller: &Agency,
    id: &NoteId,
    now: Timestamp,
) -> Result<Note, Error> {
    let note = visible_note(tx, caller, id).await?;
    let Some(entry) = note.recipients.iter().find(|r| r.agency_id == caller.id) else {
        return Err(Error::PermissionDenied(format!(
            "only a recipient may acknowledge note {id}"
        )));
    };
    if entry.acknowledged_at.is_none() {
        tx.acknowledge_note(id, &caller.id, now).await?;
        notify(
            tx,
            [note.from_agency.clone()],
            FeedEventKind::NoteAcknowledged,
            FeedAbout {
                case_id: Some(note.case_id.clone()),
                note_id: Some(note.id.clone()),
                ..FeedAbout::default()
            },
            now,
        )
        .await?;
    }
    visible_note(tx, caller, id).await
}

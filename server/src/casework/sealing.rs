//! Re-sealing: listing who can open each sealed field of a case, and giving a field new readers
//! on the word of an agency that can open it. The hub checks the caller is a reader and every new
//! reader has a basis; the new ciphertext was made on the caller's own machine.

use std::collections::{BTreeSet, HashMap};

use super::{hidden_reporters, may_see_referral, visible_case};
use crate::domain::council::Registration;
use crate::domain::records::{Case, Note, Participant, Referral};
use crate::domain::sealing::{
    FieldReaders, ResealAsk, ResealRecord, ResealRefusal, SealedFieldKind, SealedFieldRef,
    check_reseal, entitled_readers, sealed_at_writing,
};
use crate::domain::transfer::TransferState;
use crate::domain::{
    Agency, AgencyId, CaseId, NoteId, ReferralId, ResealId, Sealed, Staff, Timestamp,
};
use crate::error::Error;
use crate::store::Transaction;

/// One sealed field as the caller sees it.
#[derive(Debug, Clone)]
pub struct SealedFieldView {
    pub readers: FieldReaders,
    /// Agencies whose identity the caller must not learn.
    pub hidden: BTreeSet<AgencyId>,
    pub caller_can_open: bool,
    /// The caller can open the field and knows all its readers.
    pub caller_may_reseal: bool,
    /// The current ciphertext, when the caller may re-seal it.
    pub sealed: Option<Sealed>,
}

/// What the readers of a case's fields are worked out from, read once per case.
struct CaseFacts {
    case: Case,
    participants: Vec<Participant>,
    registration: Option<Registration>,
    coordinators: Vec<AgencyId>,
    recorded: HashMap<SealedFieldRef, BTreeSet<AgencyId>>,
    transfer_receivers: Vec<AgencyId>,
    hidden: BTreeSet<AgencyId>,
}

impl CaseFacts {
    async fn read(
        tx: &mut dyn Transaction,
        caller: &Agency,
        case: Case,
        referrals: &[Referral],
    ) -> Result<Self, Error> {
        let participants = tx.participants(&case.id).await?;
        let registration = tx.registration(&case.id).await?;
        // One read of the directory serves the case's coordinators and a transfer's receivers.
        let agencies = tx.agencies().await?;
        let coordinators_of = |municipality: &crate::domain::Municipality| {
            agencies
                .iter()
                .filter(|a| a.is_coordinator_of(municipality))
                .map(|a| a.id.clone())
                .collect::<Vec<_>>()
        };
        let coordinators = coordinators_of(&case.municipality);
        let mut recorded: HashMap<SealedFieldRef, BTreeSet<AgencyId>> = HashMap::new();
        for (field, agency) in tx.sealed_readers(&case.id).await? {
            recorded.entry(field).or_default().insert(agency);
        }
        let mut transfer_receivers: Vec<AgencyId> = Vec::new();
        for transfer in tx.case_transfers(&case.id).await? {
            if transfer.state != TransferState::Accepted {
                continue;
            }
            let receivers = coordinators_of(&transfer.to_municipality);
            for agency in receivers.into_iter().chain(transfer.lead_agency) {
                if !transfer_receivers.contains(&agency) {
                    transfer_receivers.push(agency);
                }
            }
        }
        let hidden = hidden_reporters(referrals, &caller.id)
            .into_iter()
            .collect();
        Ok(Self {
            case,
            participants,
            registration,
            coordinators,
            recorded,
            transfer_receivers,
            hidden,
        })
    }

    /// Whether the case was registered with the 要対協 at `at`, so that what was written then was
    /// sealed to the coordinators too.
    fn registered_at(&self, at: Timestamp) -> bool {
        self.registration.as_ref().is_some_and(|registration| {
            registration.registered_at <= at
                && (registration.is_active() || registration.updated_at > at)
        })
    }

    fn active_registration(&self) -> Option<(&[AgencyId], &AgencyId)> {
        self.registration
            .as_ref()
            .filter(|registration| registration.is_active())
            .map(|registration| (self.coordinators.as_slice(), &registration.lead_agency))
    }

    /// A field written at `written_at` for `parties`, which any of `entitled` (with the council
    /// and transfer readers) may read.
    fn field(
        &self,
        field: SealedFieldRef,
        parties: &[&AgencyId],
        entitled: &[&AgencyId],
        written_at: Timestamp,
    ) -> FieldReaders {
        let readers = self.recorded.get(&field).cloned().unwrap_or_else(|| {
            sealed_at_writing(parties, self.registered_at(written_at), &self.coordinators)
        });
        FieldReaders {
            field,
            case_id: self.case.id.clone(),
            readers,
            entitled: entitled_readers(
                entitled,
                self.active_registration(),
                &self.transfer_receivers,
            ),
        }
    }

    fn header(&self) -> FieldReaders {
        let participants: Vec<&AgencyId> = self.participants.iter().map(|p| &p.agency_id).collect();
        // Sealed by the opener; every participant of the case may read it.
        self.field(
            SealedFieldRef {
                kind: SealedFieldKind::CaseHeader,
                id: self.case.id.to_string(),
            },
            &[&self.case.opened_by],
            &participants,
            self.case.opened_at,
        )
    }

    fn referral(&self, referral: &Referral) -> FieldReaders {
        self.field(
            SealedFieldRef {
                kind: SealedFieldKind::ReferralBody,
                id: referral.id.to_string(),
            },
            &[&referral.from_agency, &referral.to_agency],
            &[&referral.from_agency, &referral.to_agency],
            referral.sent_at,
        )
    }

    fn note(&self, note: &Note) -> FieldReaders {
        let mut parties: Vec<&AgencyId> = vec![&note.from_agency];
        parties.extend(note.recipients.iter().map(|r| &r.agency_id));
        self.field(
            SealedFieldRef {
                kind: SealedFieldKind::NoteBody,
                id: note.id.to_string(),
            },
            &parties,
            &parties,
            note.sent_at,
        )
    }

    fn view(&self, caller: &Agency, readers: FieldReaders, sealed: &Sealed) -> SealedFieldView {
        let caller_can_open = readers.readers.contains(&caller.id);
        let caller_may_reseal =
            caller_can_open && !readers.readers.iter().any(|r| self.hidden.contains(r));
        SealedFieldView {
            readers,
            hidden: self.hidden.clone(),
            caller_can_open,
            caller_may_reseal,
            sealed: caller_may_reseal.then(|| sealed.clone()),
        }
    }
}

/// Whether the caller sees a note on the case thread.
fn may_see_note(caller: &Agency, case: &Case, note: &Note) -> bool {
    caller.is_coordinator_of(&case.municipality)
        || note.from_agency == caller.id
        || note.recipients.iter().any(|r| r.agency_id == caller.id)
}

/// The sealed fields of a case the caller may see: the header, the referrals' and the notes'
/// bodies, each with its readers.
pub async fn sealed_fields(
    tx: &mut dyn Transaction,
    caller: &Agency,
    case_id: &CaseId,
) -> Result<(Case, Vec<SealedFieldView>), Error> {
    let (case, _) = visible_case(tx, caller, case_id).await?;
    let referrals = tx.case_referrals(case_id).await?;
    let notes = tx.case_notes(case_id, None).await?;
    let facts = CaseFacts::read(tx, caller, case, &referrals).await?;
    let mut fields = vec![facts.view(caller, facts.header(), &facts.case.header)];
    for referral in referrals.iter().filter(|r| may_see_referral(caller, r)) {
        fields.push(facts.view(caller, facts.referral(referral), &referral.body));
    }
    for note in notes
        .iter()
        .filter(|n| may_see_note(caller, &facts.case, n))
    {
        fields.push(facts.view(caller, facts.note(note), &note.body));
    }
    Ok((facts.case, fields))
}

/// A re-seal to make.
#[derive(Debug, Clone)]
pub struct Reseal {
    pub field: SealedFieldRef,
    pub add_readers: Vec<AgencyId>,
    pub current_readers: Vec<AgencyId>,
    pub sealed: Sealed,
    pub staff: Staff,
}

/// Replaces a field's ciphertext with the caller's re-sealed one and records the new readers.
pub async fn reseal(
    tx: &mut dyn Transaction,
    caller: &Agency,
    request: Reseal,
    now: Timestamp,
) -> Result<(SealedFieldView, ResealRecord), Error> {
    let (case_id, kind_id) = field_case(tx, caller, &request.field).await?;
    for agency in &request.add_readers {
        if tx.agency(agency).await?.is_none() {
            return Err(Error::invalid(
                "add_readers",
                format!("agency {agency} is not registered with this hub"),
            ));
        }
    }
    let (case, _) = visible_case(tx, caller, &case_id).await?;
    let referrals = tx.case_referrals(&case_id).await?;
    let facts = CaseFacts::read(tx, caller, case, &referrals).await?;
    let readers = match &kind_id {
        FieldOwner::Case => facts.header(),
        FieldOwner::Referral(referral) => facts.referral(referral),
        FieldOwner::Note(note) => facts.note(note),
    };
    let after = check_reseal(
        &readers,
        &ResealAsk {
            caller: &caller.id,
            add_readers: &request.add_readers,
            current_readers: &request.current_readers,
            hidden: &facts.hidden,
        },
    )
    .map_err(|refusal| match refusal {
        ResealRefusal::CannotOpen { .. } => Error::PermissionDenied(refusal.to_string()),
        other => Error::FailedPrecondition(other.to_string()),
    })?;
    let record = ResealRecord {
        id: ResealId::generate(),
        case_id: case_id.clone(),
        field: request.field,
        resealed_by: caller.id.clone(),
        staff: request.staff,
        added_readers: request.add_readers,
        resealed_at: now,
    };
    tx.record_reseal(&record, &request.sealed, &after).await?;
    let readers = FieldReaders {
        readers: after,
        ..readers
    };
    Ok((facts.view(caller, readers, &request.sealed), record))
}

/// What a field belongs to.
enum FieldOwner {
    Case,
    Referral(Box<Referral>),
    Note(Box<Note>),
}

/// The case a field belongs to, refusing fields the caller may not see alike whether they exist
/// or not.
async fn field_case(
    tx: &mut dyn Transaction,
    caller: &Agency,
    field: &SealedFieldRef,
) -> Result<(CaseId, FieldOwner), Error> {
    let invalid = || Error::invalid("field.id", format!("{:?} is not a valid id", field.id));
    match field.kind {
        SealedFieldKind::CaseHeader => Ok((
            CaseId::parse(&field.id).ok_or_else(invalid)?,
            FieldOwner::Case,
        )),
        SealedFieldKind::ReferralBody => {
            let id = ReferralId::parse(&field.id).ok_or_else(invalid)?;
            let referral = tx
                .referral(&id)
                .await?
                .filter(|r| may_see_referral(caller, r))
                .ok_or_else(|| Error::not_visible("referral", &caller.id))?;
            Ok((
                referral.case_id.clone(),
                FieldOwner::Referral(Box::new(referral)),
            ))
        }
        SealedFieldKind::NoteBody => {
            let id = NoteId::parse(&field.id).ok_or_else(invalid)?;
            let note = tx
                .note(&id)
                .await?
                .ok_or_else(|| Error::not_visible("note", &caller.id))?;
            let (case, _) = visible_case(tx, caller, &note.case_id).await?;
            if !may_see_note(caller, &case, &note) {
                return Err(Error::not_visible("note", &caller.id));
            }
            Ok((note.case_id.clone(), FieldOwner::Note(Box::new(note))))
        }
    }
}

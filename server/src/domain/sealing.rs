//! Re-sealing: who can open a sealed field, who may be added as its reader, and the rules a
//! re-seal must pass. The hub never opens a field; it keeps the list of agencies each ciphertext
//! is sealed to, and checks that every added reader has a legal basis to read it.

use std::collections::BTreeSet;
use std::fmt;

use super::{AgencyId, CaseId, ResealId, Staff, Timestamp};

/// Which sealed field of a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SealedFieldKind {
    CaseHeader,
    ReferralBody,
    NoteBody,
}

impl SealedFieldKind {
    pub const ALL: [Self; 3] = [Self::CaseHeader, Self::ReferralBody, Self::NoteBody];

    pub fn code(self) -> &'static str {
        match self {
            Self::CaseHeader => "case_header",
            Self::ReferralBody => "referral_body",
            Self::NoteBody => "note_body",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.code() == code)
    }

    /// The field's name as people read it.
    pub fn label(self) -> &'static str {
        match self {
            Self::CaseHeader => "ケースの基本情報",
            Self::ReferralBody => "紹介の本文",
            Self::NoteBody => "連絡の本文",
        }
    }
}

/// One sealed field: its kind and the id of the case, referral or note it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SealedFieldRef {
    pub kind: SealedFieldKind,
    pub id: String,
}

impl fmt::Display for SealedFieldRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind.code(), self.id)
    }
}

/// Why an agency may read a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReaderBasis {
    /// Takes part in the case (for the header) or in the referral or note (for its body).
    Participant,
    /// The 要対協 coordinator of a case registered with the council.
    Coordinator,
    /// The 主担当機関 of a case registered with the council.
    LeadAgency,
    /// The receiving municipality's coordinator or lead agency of an accepted 移管.
    TransferReceiver,
}

impl ReaderBasis {
    pub fn code(self) -> &'static str {
        match self {
            Self::Participant => "participant",
            Self::Coordinator => "coordinator",
            Self::LeadAgency => "lead_agency",
            Self::TransferReceiver => "transfer_receiver",
        }
    }
}

/// What the hub knows about a field's readers and about who has a basis to read it.
#[derive(Debug, Clone)]
pub struct FieldReaders {
    pub field: SealedFieldRef,
    pub case_id: CaseId,
    /// The agencies the current ciphertext is sealed to.
    pub readers: BTreeSet<AgencyId>,
    /// The agencies with a basis to read the field, each with the first basis that applies.
    pub entitled: Vec<(AgencyId, ReaderBasis)>,
}

impl FieldReaders {
    /// Agencies with a basis that cannot open the field yet.
    pub fn could_add(&self) -> Vec<(AgencyId, ReaderBasis)> {
        self.entitled
            .iter()
            .filter(|(agency, _)| !self.readers.contains(agency))
            .cloned()
            .collect()
    }
}

/// The agencies a field was sealed to when it was written, before any re-seal: what the sending
/// client seals to (the parties, its own agency and, for a case registered with the 要対協, the
/// municipality's coordinators).
pub fn sealed_at_writing(
    parties: &[&AgencyId],
    registered_when_written: bool,
    coordinators: &[AgencyId],
) -> BTreeSet<AgencyId> {
    let mut readers: BTreeSet<AgencyId> = parties.iter().map(|a| (*a).clone()).collect();
    if registered_when_written {
        readers.extend(coordinators.iter().cloned());
    }
    readers
}

/// Who has a basis to read a field: its parties (the case's participants for the header), then
/// for a registered case its coordinators and lead agency, then the receivers of an accepted
/// transfer. An agency is listed once, with the first basis that applies.
pub fn entitled_readers(
    parties: &[&AgencyId],
    registered: Option<(&[AgencyId], &AgencyId)>,
    transfer_receivers: &[AgencyId],
) -> Vec<(AgencyId, ReaderBasis)> {
    let mut entitled: Vec<(AgencyId, ReaderBasis)> = Vec::new();
    let mut add = |agency: &AgencyId, basis: ReaderBasis| {
        if !entitled.iter().any(|(known, _)| known == agency) {
            entitled.push((agency.clone(), basis));
        }
    };
    for agency in parties {
        add(agency, ReaderBasis::Participant);
    }
    if let Some((coordinators, lead)) = registered {
        for agency in coordinators {
            add(agency, ReaderBasis::Coordinator);
        }
        add(lead, ReaderBasis::LeadAgency);
    }
    for agency in transfer_receivers {
        add(agency, ReaderBasis::TransferReceiver);
    }
    entitled
}

/// A re-seal the caller asks for.
#[derive(Debug, Clone)]
pub struct ResealAsk<'a> {
    pub caller: &'a AgencyId,
    pub add_readers: &'a [AgencyId],
    /// The readers the caller's client read and sealed to.
    pub current_readers: &'a [AgencyId],
    /// Agencies whose identity the caller must not learn (a 通告's reporter).
    pub hidden: &'a BTreeSet<AgencyId>,
}

/// Why a re-seal is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResealRefusal {
    #[error(
        "agency {caller} cannot open this field (it is not sealed to {caller}); ask an agency \
         that can open it to re-seal it"
    )]
    CannotOpen { caller: AgencyId },
    #[error(
        "this field is also sealed to an agency whose identity is withheld from {caller} (the \
         reporter of a 通告); only the notification's sender or recipient can re-seal it"
    )]
    HiddenReader { caller: AgencyId },
    #[error(
        "agency {agency} has no legal basis to read this field: it is not a participant, nor the \
         要対協 coordinator or lead agency (主担当機関) of a registered case, nor the receiver of an \
         accepted transfer (移管)"
    )]
    NoBasis { agency: AgencyId },
    #[error("agency {agency} can already open this field")]
    AlreadyReader { agency: AgencyId },
    #[error(
        "the readers of this field changed since they were read (now: {now}); list the sealed \
         fields again and re-seal"
    )]
    ReadersChanged { now: String },
}

/// Checks a re-seal and returns the readers after it: the current ones and the added ones.
pub fn check_reseal(
    field: &FieldReaders,
    ask: &ResealAsk<'_>,
) -> Result<BTreeSet<AgencyId>, ResealRefusal> {
    if !field.readers.contains(ask.caller) {
        return Err(ResealRefusal::CannotOpen {
            caller: ask.caller.clone(),
        });
    }
    if field.readers.iter().any(|r| ask.hidden.contains(r)) {
        return Err(ResealRefusal::HiddenReader {
            caller: ask.caller.clone(),
        });
    }
    let claimed: BTreeSet<AgencyId> = ask.current_readers.iter().cloned().collect();
    if claimed != field.readers {
        let now: Vec<&str> = field.readers.iter().map(AgencyId::as_str).collect();
        return Err(ResealRefusal::ReadersChanged {
            now: now.join(", "),
        });
    }
    let mut after = field.readers.clone();
    for agency in ask.add_readers {
        if field.readers.contains(agency) {
            return Err(ResealRefusal::AlreadyReader {
                agency: agency.clone(),
            });
        }
        if !field.entitled.iter().any(|(known, _)| known == agency) {
            return Err(ResealRefusal::NoBasis {
                agency: agency.clone(),
            });
        }
        after.insert(agency.clone());
    }
    Ok(after)
}

/// A re-seal as the case thread and the audit remember it.
#[derive(Debug, Clone)]
pub struct ResealRecord {
    pub id: ResealId,
    pub case_id: CaseId,
    pub field: SealedFieldRef,
    pub resealed_by: AgencyId,
    pub staff: Staff,
    pub added_readers: Vec<AgencyId>,
    pub resealed_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agency(id: &str) -> AgencyId {
        AgencyId::parse(id).unwrap()
    }

    fn header(readers: &[&str], entitled: Vec<(AgencyId, ReaderBasis)>) -> FieldReaders {
        FieldReaders {
            field: SealedFieldRef {
                kind: SealedFieldKind::CaseHeader,
                id: "case".into(),
            },
            case_id: CaseId::generate(),
            readers: readers.iter().map(|r| agency(r)).collect(),
            entitled,
        }
    }

    fn ask<'a>(
        caller: &'a AgencyId,
        add: &'a [AgencyId],
        current: &'a [AgencyId],
        hidden: &'a BTreeSet<AgencyId>,
    ) -> ResealAsk<'a> {
        ResealAsk {
            caller,
            add_readers: add,
            current_readers: current,
            hidden,
        }
    }

    #[test]
    fn a_registered_cases_coordinator_may_be_added_by_a_reader() {
        let opener = agency("hoken");
        let coordinator = agency("kodomo");
        let entitled = entitled_readers(
            &[&opener],
            Some((std::slice::from_ref(&coordinator), &opener)),
            &[],
        );
        let field = header(&["hoken"], entitled);
        assert_eq!(
            field.could_add(),
            vec![(coordinator.clone(), ReaderBasis::Coordinator)]
        );
        let none = BTreeSet::new();
        let add = [coordinator.clone()];
        let current = [opener.clone()];
        let after = check_reseal(&field, &ask(&opener, &add, &current, &none)).unwrap();
        assert_eq!(after, [opener, coordinator].into_iter().collect());
    }

    #[test]
    fn an_agency_without_a_basis_cannot_be_added() {
        let opener = agency("hoken");
        let field = header(&["hoken"], entitled_readers(&[&opener], None, &[]));
        let none = BTreeSet::new();
        let add = [agency("stranger")];
        let current = [opener.clone()];
        assert_eq!(
            check_reseal(&field, &ask(&opener, &add, &current, &none)),
            Err(ResealRefusal::NoBasis {
                agency: agency("stranger")
            })
        );
    }

    #[test]
    fn a_caller_that_cannot_open_the_field_cannot_reseal_it() {
        let opener = agency("hoken");
        let nursery = agency("hoikusho");
        let field = header(
            &["hoken"],
            entitled_readers(&[&opener, &nursery], None, &[]),
        );
        let none = BTreeSet::new();
        let add = [nursery.clone()];
        let current = [opener];
        assert_eq!(
            check_reseal(&field, &ask(&nursery, &add, &current, &none)),
            Err(ResealRefusal::CannotOpen { caller: nursery })
        );
    }

    #[test]
    fn readers_that_changed_since_they_were_read_refuse_the_reseal() {
        let opener = agency("hoken");
        let nursery = agency("hoikusho");
        let field = header(
            &["hoken", "hoikusho"],
            entitled_readers(&[&opener], None, &[]),
        );
        let none = BTreeSet::new();
        let current = [opener.clone()];
        let refused = check_reseal(&field, &ask(&opener, &[], &current, &none));
        assert!(matches!(refused, Err(ResealRefusal::ReadersChanged { .. })));
        let add = [nursery.clone()];
        let both = [opener.clone(), nursery.clone()];
        assert_eq!(
            check_reseal(&field, &ask(&opener, &add, &both, &none)),
            Err(ResealRefusal::AlreadyReader { agency: nursery })
        );
    }

    #[test]
    fn a_field_sealed_to_a_hidden_reporter_is_resealed_only_by_those_who_know_it() {
        let reporter = agency("hoikusho");
        let coordinator = agency("kodomo");
        let field = header(
            &["hoikusho", "kodomo"],
            entitled_readers(&[&reporter, &coordinator], None, &[]),
        );
        let hidden: BTreeSet<AgencyId> = [reporter.clone()].into_iter().collect();
        let current = [reporter, coordinator.clone()];
        assert!(matches!(
            check_reseal(&field, &ask(&coordinator, &[], &current, &hidden)),
            Err(ResealRefusal::HiddenReader { .. })
        ));
    }

    #[test]
    fn entitled_readers_list_each_agency_once_with_its_first_basis() {
        let opener = agency("hoken");
        let coordinator = agency("kodomo");
        let receiver = agency("other-kodomo");
        let entitled = entitled_readers(
            &[&opener, &coordinator],
            Some((std::slice::from_ref(&coordinator), &opener)),
            std::slice::from_ref(&receiver),
        );
        assert_eq!(
            entitled,
            vec![
                (opener, ReaderBasis::Participant),
                (coordinator, ReaderBasis::Participant),
                (receiver, ReaderBasis::TransferReceiver),
            ]
        );
    }

    #[test]
    fn a_field_written_for_a_registered_case_is_sealed_to_its_coordinators_too() {
        let sender = agency("hoken");
        let recipient = agency("hoikusho");
        let coordinator = agency("kodomo");
        let coordinators = [coordinator.clone()];
        assert_eq!(
            sealed_at_writing(&[&sender, &recipient], true, &coordinators),
            [sender.clone(), recipient.clone(), coordinator]
                .into_iter()
                .collect()
        );
        assert_eq!(
            sealed_at_writing(&[&sender, &recipient], false, &coordinators).len(),
            2
        );
    }
}

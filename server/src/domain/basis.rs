//! Legal bases: the one rule that decides whether a share (referral, note, council registration)
//! may happen, and on which ground — checked before anything is stored.

use std::fmt;

use super::consent::{self, Consent, NotCovered};
use super::{Agency, AgencyId, AgencyKind, ConsentId, Municipality, Purpose, Timestamp};

/// The longest justification accepted, in characters. It is stored and shown in the clear (the
/// coordinator's review list, the council's registrations), so it is a category-level reason
/// ("要対協登録ケース: 進行管理のため", "生命の危険があり同意を得る時間がない"), never a name or a
/// case history: short enough that a case file does not fit. Details go in the sealed body.
pub const MAX_JUSTIFICATION_CHARS: usize = 200;

/// The ground a share rests on. Exactly one applies to each share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LegalBasisKind {
    /// An active consent record on the case covers this recipient, purpose and day.
    Consent,
    /// The case is registered with the 要対協 and the recipient is a member (児童福祉法25条の2,
    /// 25条の5: members share information under a duty of confidentiality).
    CouncilSharing,
    /// A 通告 to a 児童相談所 or the municipality (児童虐待防止法6条・7条).
    AbuseNotification,
    /// Protecting life or body when consent cannot be obtained (個人情報保護法の例外).
    VitalInterest,
}

impl LegalBasisKind {
    pub const ALL: [Self; 4] = [
        Self::Consent,
        Self::CouncilSharing,
        Self::AbuseNotification,
        Self::VitalInterest,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::Consent => "consent",
            Self::CouncilSharing => "council_sharing",
            Self::AbuseNotification => "abuse_notification",
            Self::VitalInterest => "vital_interest",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.code() == code)
    }
}

impl fmt::Display for LegalBasisKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The basis a sender claims for one share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedBasis {
    pub kind: LegalBasisKind,
    /// For `Consent`: the record relied on. `None` lets the hub find a covering record itself.
    pub consent_id: Option<ConsentId>,
    /// Required for every kind but `Consent`.
    pub justification: Option<String>,
}

/// Everything the rule needs to decide, gathered by the caller from the store.
#[derive(Debug, Clone, Copy)]
pub struct ShareContext<'a> {
    pub sender: &'a Agency,
    pub recipient: &'a Agency,
    pub case_municipality: &'a Municipality,
    /// Whether the case is registered with the 要対協 of its municipality.
    pub case_council_registered: bool,
    pub purpose: &'a Purpose,
    /// The case's consent records (withdrawn and expired ones included, so a refusal can say why
    /// each one failed).
    pub consents: &'a [Consent],
    pub now: Timestamp,
}

/// The basis a share is stored with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasisDecision {
    pub kind: LegalBasisKind,
    /// The consent relied on, for `Consent`.
    pub consent_id: Option<ConsentId>,
    /// Every share without consent goes on the coordinator's review list.
    pub needs_review: bool,
    /// A 通告's reporter is hidden from every other participant, so that reporting abuse never
    /// exposes the reporter to the family.
    pub hide_sender: bool,
}

/// Why a share was refused. Each message names what is missing, so the sender can fix it or pick
/// another basis.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BasisRefusal {
    #[error(
        "no consent on this case covers sharing with {recipient} for {purpose}: {}",
        ConsentFailures(.failures)
    )]
    NoCoveringConsent {
        recipient: AgencyId,
        purpose: Purpose,
        /// Why each of the case's consents failed; empty when the case has none.
        failures: Vec<(ConsentId, NotCovered)>,
    },
    #[error("consent {consent_id} is not a consent of this case")]
    ConsentNotOnCase { consent_id: ConsentId },
    #[error("consent {consent_id} does not cover this share: {why}")]
    ConsentDoesNotCover {
        consent_id: ConsentId,
        why: NotCovered,
    },
    #[error("basis {kind} does not take a consent (basis.consent_id must be empty)")]
    ConsentIdNotExpected { kind: LegalBasisKind },
    #[error(
        "basis council_sharing needs the case to be registered with the 要対協 of {municipality}"
    )]
    CaseNotRegistered { municipality: Municipality },
    #[error(
        "basis council_sharing needs the recipient {recipient} to be a member of the 要対協 of \
         {municipality}"
    )]
    RecipientNotCouncilMember {
        recipient: AgencyId,
        municipality: Municipality,
    },
    #[error(
        "basis council_sharing needs the sender {sender} to be a member of the 要対協 of \
         {municipality}"
    )]
    SenderNotCouncilMember {
        sender: AgencyId,
        municipality: Municipality,
    },
    #[error(
        "basis abuse_notification may only go to a child guidance centre or the municipality's \
         coordinator (recipient {recipient} is a {kind})"
    )]
    NotAnAbuseNotificationRecipient {
        recipient: AgencyId,
        kind: AgencyKind,
    },
    #[error("basis {kind} needs a written justification (basis.justification)")]
    JustificationMissing { kind: LegalBasisKind },
    #[error(
        "basis {kind} needs a justification of at most {MAX_JUSTIFICATION_CHARS} characters \
         (basis.justification has {chars})"
    )]
    JustificationTooLong { kind: LegalBasisKind, chars: usize },
}

/// Lists why each consent failed, or says there were none.
struct ConsentFailures<'a>(&'a [(ConsentId, NotCovered)]);

impl fmt::Display for ConsentFailures<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("the case has no consent records");
        }
        for (i, (id, why)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "consent {id}: {why}")?;
        }
        Ok(())
    }
}

/// Decides whether the claimed basis holds for this share. The sender names the basis; the hub
/// never picks another one for it, because the basis is a legal statement the sender makes.
pub fn decide(claimed: &ClaimedBasis, ctx: &ShareContext) -> Result<BasisDecision, BasisRefusal> {
    let kind = claimed.kind;
    if kind == LegalBasisKind::Consent {
        let consent_id = covering_consent(claimed.consent_id.as_ref(), ctx)?;
        return Ok(BasisDecision {
            kind,
            consent_id: Some(consent_id),
            needs_review: false,
            hide_sender: false,
        });
    }

    if claimed.consent_id.is_some() {
        return Err(BasisRefusal::ConsentIdNotExpected { kind });
    }
    let municipality = ctx.case_municipality;
    match kind {
        LegalBasisKind::CouncilSharing => {
            if !ctx.case_council_registered {
                return Err(BasisRefusal::CaseNotRegistered {
                    municipality: municipality.clone(),
                });
            }
            if !council_member(ctx.recipient, municipality) {
                return Err(BasisRefusal::RecipientNotCouncilMember {
                    recipient: ctx.recipient.id.clone(),
                    municipality: municipality.clone(),
                });
            }
            if !council_member(ctx.sender, municipality) {
                return Err(BasisRefusal::SenderNotCouncilMember {
                    sender: ctx.sender.id.clone(),
                    municipality: municipality.clone(),
                });
            }
        }
        LegalBasisKind::AbuseNotification => {
            // The law names the receivers of a 通告: a 児童相談所, or the municipality, which
            // in the hub is the agency acting as its coordinator.
            let receiver = ctx.recipient.kind.is_child_guidance_centre()
                || ctx.recipient.is_coordinator_of(municipality);
            if !receiver {
                return Err(BasisRefusal::NotAnAbuseNotificationRecipient {
                    recipient: ctx.recipient.id.clone(),
                    kind: ctx.recipient.kind.clone(),
                });
            }
        }
        // Whether life or body is at risk is the sender's judgement; the justification records
        // it and the coordinator reviews it afterwards.
        LegalBasisKind::VitalInterest | LegalBasisKind::Consent => {}
    }
    check_justification(kind, claimed.justification.as_deref())?;
    Ok(BasisDecision {
        kind,
        consent_id: None,
        needs_review: true,
        hide_sender: kind == LegalBasisKind::AbuseNotification,
    })
}

/// The consent this share rests on: the one claimed, which must cover it, or else the most
/// recently recorded consent of the case that covers it (the family's latest word).
fn covering_consent(
    claimed: Option<&ConsentId>,
    ctx: &ShareContext,
) -> Result<ConsentId, BasisRefusal> {
    let check = |c: &Consent| consent::covers(c, ctx.recipient, ctx.purpose, ctx.now);
    if let Some(id) = claimed {
        let record = ctx.consents.iter().find(|c| &c.id == id).ok_or_else(|| {
            BasisRefusal::ConsentNotOnCase {
                consent_id: id.clone(),
            }
        })?;
        return check(record).map(|()| id.clone()).map_err(|why| {
            BasisRefusal::ConsentDoesNotCover {
                consent_id: id.clone(),
                why,
            }
        });
    }
    let best = ctx
        .consents
        .iter()
        .filter(|c| check(c).is_ok())
        .max_by(|a, b| (a.recorded_at, &a.id).cmp(&(b.recorded_at, &b.id)));
    match best {
        Some(record) => Ok(record.id.clone()),
        None => Err(BasisRefusal::NoCoveringConsent {
            recipient: ctx.recipient.id.clone(),
            purpose: ctx.purpose.clone(),
            failures: ctx
                .consents
                .iter()
                .filter_map(|c| check(c).err().map(|why| (c.id.clone(), why)))
                .collect(),
        }),
    }
}

/// Membership of the municipality's 要対協. The coordinator (要保護児童対策調整機関) is by law
/// designated from among the council's members (児童福祉法25条の2第4項), so it counts even if
/// the directory lists it only as coordinator.
fn council_member(agency: &Agency, municipality: &Municipality) -> bool {
    agency.is_council_member(municipality) || agency.is_coordinator_of(municipality)
}

fn check_justification(kind: LegalBasisKind, text: Option<&str>) -> Result<(), BasisRefusal> {
    let text = text.map(str::trim).unwrap_or_default();
    if text.is_empty() {
        return Err(BasisRefusal::JustificationMissing { kind });
    }
    let chars = text.chars().count();
    if chars > MAX_JUSTIFICATION_CHARS {
        return Err(BasisRefusal::JustificationTooLong { kind, chars });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::consent::tests::{agency, consent, june, purpose};

    struct World {
        sender: Agency,
        recipient: Agency,
        municipality: Municipality,
        registered: bool,
        purpose: Purpose,
        consents: Vec<Consent>,
        now: Timestamp,
    }

    impl World {
        /// aoba-hoken (a health centre) refers to aoba-hospital for postnatal care; the case has
        /// one consent covering exactly that.
        fn new() -> Self {
            Self {
                sender: agency("aoba-hoken", "health_centre"),
                recipient: agency("aoba-hospital", "hospital"),
                municipality: Municipality::parse("141178").unwrap(),
                registered: false,
                purpose: purpose("postnatal_care"),
                consents: vec![consent()],
                now: june(),
            }
        }

        fn ctx(&self) -> ShareContext<'_> {
            ShareContext {
                sender: &self.sender,
                recipient: &self.recipient,
                case_municipality: &self.municipality,
                case_council_registered: self.registered,
                purpose: &self.purpose,
                consents: &self.consents,
                now: self.now,
            }
        }

        fn decide(&self, claimed: &ClaimedBasis) -> Result<BasisDecision, BasisRefusal> {
            decide(claimed, &self.ctx())
        }

        /// A registered case whose sender and recipient are both council members.
        fn council() -> Self {
            let mut world = Self::new();
            world.registered = true;
            world.sender.council_memberships = vec![world.municipality.clone()];
            world.recipient.council_memberships = vec![world.municipality.clone()];
            world
        }
    }

    fn by_consent(id: Option<ConsentId>) -> ClaimedBasis {
        ClaimedBasis {
            kind: LegalBasisKind::Consent,
            consent_id: id,
            justification: None,
        }
    }

    fn justified(kind: LegalBasisKind) -> ClaimedBasis {
        ClaimedBasis {
            kind,
            consent_id: None,
            justification: Some("生命の危険があり、同意を得る時間がない".to_owned()),
        }
    }

    #[test]
    fn basis_codes_round_trip() {
        for kind in LegalBasisKind::ALL {
            assert_eq!(LegalBasisKind::from_code(kind.code()), Some(kind));
        }
        assert_eq!(
            LegalBasisKind::AbuseNotification.code(),
            "abuse_notification"
        );
    }

    #[test]
    fn a_covering_consent_is_found_when_none_is_named() {
        let world = World::new();
        let decision = world.decide(&by_consent(None)).unwrap();
        assert_eq!(
            decision,
            BasisDecision {
                kind: LegalBasisKind::Consent,
                consent_id: Some(world.consents[0].id.clone()),
                needs_review: false,
                hide_sender: false,
            }
        );
    }

    #[test]
    fn a_named_covering_consent_is_used() {
        let world = World::new();
        let id = world.consents[0].id.clone();
        let decision = world.decide(&by_consent(Some(id.clone()))).unwrap();
        assert_eq!(decision.consent_id, Some(id));
    }

    #[test]
    fn the_most_recently_recorded_covering_consent_is_chosen() {
        let mut world = World::new();
        let mut newer = consent();
        newer.recorded_at = june();
        let mut withdrawn_newest = consent();
        withdrawn_newest.recorded_at = june().plus(time::Duration::hours(1));
        withdrawn_newest.withdrawn_at = Some(june());
        world.consents.push(newer.clone());
        world.consents.push(withdrawn_newest);
        let decision = world.decide(&by_consent(None)).unwrap();
        assert_eq!(decision.consent_id, Some(newer.id));
    }

    #[test]
    fn a_case_without_consents_is_refused_saying_so() {
        let mut world = World::new();
        world.consents.clear();
        let err = world.decide(&by_consent(None)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no consent on this case covers sharing with aoba-hospital for postnatal_care: the \
             case has no consent records"
        );
    }

    #[test]
    fn a_refusal_lists_why_each_consent_failed() {
        let mut world = World::new();
        world.purpose = purpose("psychiatric_care");
        let mut withdrawn = consent();
        withdrawn.withdrawn_at = Some(june());
        world.consents.push(withdrawn.clone());
        let first = world.consents[0].id.clone();
        let err = world.decide(&by_consent(None)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "no consent on this case covers sharing with aoba-hospital for psychiatric_care: \
                 consent {first}: purpose psychiatric_care not in scope; consent {}: withdrawn",
                withdrawn.id
            )
        );
    }

    #[test]
    fn a_consent_for_another_recipient_is_refused() {
        let mut world = World::new();
        world.recipient = agency("midori-hospital", "hospital");
        let err = world.decide(&by_consent(None)).unwrap_err();
        match err {
            BasisRefusal::NoCoveringConsent { failures, .. } => {
                assert!(matches!(
                    failures.as_slice(),
                    [(_, NotCovered::RecipientNotInScope { .. })]
                ));
            }
            other => panic!("unexpected refusal: {other}"),
        }
    }

    #[test]
    fn a_named_consent_that_does_not_cover_is_refused_with_the_reason() {
        let mut world = World::new();
        world.consents[0].withdrawn_at = Some(june());
        let id = world.consents[0].id.clone();
        let err = world.decide(&by_consent(Some(id.clone()))).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("consent {id} does not cover this share: withdrawn")
        );
    }

    #[test]
    fn a_named_consent_of_another_case_is_refused() {
        let world = World::new();
        let stranger = ConsentId::generate();
        let err = world
            .decide(&by_consent(Some(stranger.clone())))
            .unwrap_err();
        assert_eq!(
            err,
            BasisRefusal::ConsentNotOnCase {
                consent_id: stranger
            }
        );
    }

    #[test]
    fn a_named_consent_is_not_replaced_by_another_that_covers() {
        let mut world = World::new();
        let mut expired = consent();
        expired.valid_until = Some(time::macros::date!(2026 - 05 - 31));
        world.consents.push(expired.clone());
        let err = world
            .decide(&by_consent(Some(expired.id.clone())))
            .unwrap_err();
        assert!(matches!(
            err,
            BasisRefusal::ConsentDoesNotCover {
                why: NotCovered::Expired { .. },
                ..
            }
        ));
    }

    #[test]
    fn council_sharing_between_members_on_a_registered_case_is_reviewed() {
        let world = World::council();
        let decision = world
            .decide(&justified(LegalBasisKind::CouncilSharing))
            .unwrap();
        assert_eq!(
            decision,
            BasisDecision {
                kind: LegalBasisKind::CouncilSharing,
                consent_id: None,
                needs_review: true,
                hide_sender: false,
            }
        );
    }

    #[test]
    fn council_sharing_on_an_unregistered_case_is_refused() {
        let mut world = World::council();
        world.registered = false;
        let err = world
            .decide(&justified(LegalBasisKind::CouncilSharing))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "basis council_sharing needs the case to be registered with the 要対協 of 141178"
        );
    }

    #[test]
    fn council_sharing_with_a_non_member_recipient_is_refused() {
        let mut world = World::council();
        world.recipient.council_memberships.clear();
        let err = world
            .decide(&justified(LegalBasisKind::CouncilSharing))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "basis council_sharing needs the recipient aoba-hospital to be a member of the 要対協 \
             of 141178"
        );
    }

    #[test]
    fn council_sharing_from_a_non_member_sender_is_refused() {
        let mut world = World::council();
        world.sender.council_memberships.clear();
        let err = world
            .decide(&justified(LegalBasisKind::CouncilSharing))
            .unwrap_err();
        assert!(matches!(err, BasisRefusal::SenderNotCouncilMember { .. }));
    }

    #[test]
    fn membership_of_another_municipalitys_council_does_not_count() {
        let mut world = World::council();
        world.recipient.council_memberships = vec![Municipality::parse("131016").unwrap()];
        let err = world
            .decide(&justified(LegalBasisKind::CouncilSharing))
            .unwrap_err();
        assert!(matches!(
            err,
            BasisRefusal::RecipientNotCouncilMember { .. }
        ));
    }

    #[test]
    fn the_coordinator_counts_as_a_council_member() {
        let mut world = World::council();
        world.recipient.council_memberships.clear();
        world.recipient.coordinator_of = vec![world.municipality.clone()];
        assert!(
            world
                .decide(&justified(LegalBasisKind::CouncilSharing))
                .is_ok()
        );
    }

    #[test]
    fn abuse_notification_to_a_child_guidance_centre_hides_the_sender() {
        let mut world = World::new();
        world.recipient = agency("kanagawa-jido", "child_guidance_centre");
        let decision = world
            .decide(&justified(LegalBasisKind::AbuseNotification))
            .unwrap();
        assert_eq!(
            decision,
            BasisDecision {
                kind: LegalBasisKind::AbuseNotification,
                consent_id: None,
                needs_review: true,
                hide_sender: true,
            }
        );
    }

    #[test]
    fn abuse_notification_to_the_municipalitys_coordinator_is_allowed() {
        let mut world = World::new();
        world.recipient = agency("aoba-kodomo", "support_hub");
        world.recipient.coordinator_of = vec![world.municipality.clone()];
        assert!(
            world
                .decide(&justified(LegalBasisKind::AbuseNotification))
                .is_ok()
        );
    }

    #[test]
    fn abuse_notification_to_a_hospital_is_refused() {
        let world = World::new();
        let err = world
            .decide(&justified(LegalBasisKind::AbuseNotification))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "basis abuse_notification may only go to a child guidance centre or the \
             municipality's coordinator (recipient aoba-hospital is a hospital)"
        );
    }

    #[test]
    fn abuse_notification_to_another_municipalitys_coordinator_is_refused() {
        let mut world = World::new();
        world.recipient = agency("chiyoda-kodomo", "support_hub");
        world.recipient.coordinator_of = vec![Municipality::parse("131016").unwrap()];
        let err = world
            .decide(&justified(LegalBasisKind::AbuseNotification))
            .unwrap_err();
        assert!(matches!(
            err,
            BasisRefusal::NotAnAbuseNotificationRecipient { .. }
        ));
    }

    #[test]
    fn vital_interest_with_a_justification_is_reviewed() {
        let world = World::new();
        let decision = world
            .decide(&justified(LegalBasisKind::VitalInterest))
            .unwrap();
        assert!(decision.needs_review);
        assert!(!decision.hide_sender);
        assert_eq!(decision.consent_id, None);
    }

    #[test]
    fn every_basis_but_consent_needs_a_non_blank_justification() {
        let mut world = World::council();
        world.recipient.kind = AgencyKind::parse("child_guidance_centre").unwrap();
        for kind in [
            LegalBasisKind::CouncilSharing,
            LegalBasisKind::AbuseNotification,
            LegalBasisKind::VitalInterest,
        ] {
            for justification in [None, Some(String::new()), Some(" \n\t ".to_owned())] {
                let claimed = ClaimedBasis {
                    kind,
                    consent_id: None,
                    justification,
                };
                let err = world.decide(&claimed).unwrap_err();
                assert_eq!(err, BasisRefusal::JustificationMissing { kind });
                assert_eq!(
                    err.to_string(),
                    format!(
                        "basis {} needs a written justification (basis.justification)",
                        kind.code()
                    )
                );
            }
        }
    }

    #[test]
    fn a_justification_over_the_limit_is_refused_counting_characters() {
        let world = World::new();
        let at_limit = ClaimedBasis {
            justification: Some("危".repeat(MAX_JUSTIFICATION_CHARS)),
            ..justified(LegalBasisKind::VitalInterest)
        };
        assert!(world.decide(&at_limit).is_ok());
        let over = ClaimedBasis {
            justification: Some("危".repeat(MAX_JUSTIFICATION_CHARS + 1)),
            ..justified(LegalBasisKind::VitalInterest)
        };
        assert_eq!(
            world.decide(&over).unwrap_err(),
            BasisRefusal::JustificationTooLong {
                kind: LegalBasisKind::VitalInterest,
                chars: MAX_JUSTIFICATION_CHARS + 1
            }
        );
    }

    #[test]
    fn a_consent_id_with_another_basis_is_refused() {
        let world = World::new();
        let claimed = ClaimedBasis {
            consent_id: Some(world.consents[0].id.clone()),
            ..justified(LegalBasisKind::VitalInterest)
        };
        assert_eq!(
            world.decide(&claimed).unwrap_err(),
            BasisRefusal::ConsentIdNotExpected {
                kind: LegalBasisKind::VitalInterest
            }
        );
    }

    #[test]
    fn a_consent_basis_needs_no_justification() {
        let world = World::new();
        let claimed = ClaimedBasis {
            justification: Some("  ".to_owned()),
            ..by_consent(None)
        };
        assert!(world.decide(&claimed).is_ok());
    }
}

//! Consent records (同意): who consented, how, to which recipients and purposes, for which days —
//! and whether one record covers a given share.

use time::Date;

use super::{Agency, AgencyId, AgencyKind, CaseId, ConsentId, Purpose, Sealed, Staff, Timestamp};

/// Who gave the consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsentGiver {
    /// 本人: the person concerned.
    SelfPerson,
    /// 保護者: a guardian of the child.
    Guardian,
}

impl ConsentGiver {
    pub const ALL: [Self; 2] = [Self::SelfPerson, Self::Guardian];

    pub fn code(self) -> &'static str {
        match self {
            Self::SelfPerson => "self",
            Self::Guardian => "guardian",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.code() == code)
    }
}

/// How the consent was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsentMethod {
    /// 書面: a signed form.
    Written,
    /// 口頭: said to a staff member, who noted it.
    Oral,
    /// 電子: through an electronic form.
    Electronic,
}

impl ConsentMethod {
    pub const ALL: [Self; 3] = [Self::Written, Self::Oral, Self::Electronic];

    pub fn code(self) -> &'static str {
        match self {
            Self::Written => "written",
            Self::Oral => "oral",
            Self::Electronic => "electronic",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.code() == code)
    }
}

/// Which shares a consent covers: the recipient must be listed by id or by kind, and the purpose
/// must be listed. Both lists must match; a consent to "hospitals" for "postnatal care" does not
/// let anything go to a hospital for another purpose.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsentScope {
    pub recipient_agencies: Vec<AgencyId>,
    pub recipient_kinds: Vec<AgencyKind>,
    pub purposes: Vec<Purpose>,
}

impl ConsentScope {
    /// Whether the agency is named, by id or by kind.
    pub fn includes_recipient(&self, recipient: &Agency) -> bool {
        self.recipient_agencies.contains(&recipient.id)
            || self.recipient_kinds.contains(&recipient.kind)
    }

    pub fn includes_purpose(&self, purpose: &Purpose) -> bool {
        self.purposes.contains(purpose)
    }
}

/// A consent record on a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    pub id: ConsentId,
    pub case_id: CaseId,
    pub given_by: ConsentGiver,
    pub method: ConsentMethod,
    /// The agency that recorded it.
    pub recorded_by: AgencyId,
    pub recorded_by_staff: Staff,
    pub scope: ConsentScope,
    /// First day covered (civil date in Japan).
    pub valid_from: Date,
    /// Last day covered (civil date in Japan); `None`: no end date.
    pub valid_until: Option<Date>,
    pub recorded_at: Timestamp,
    pub withdrawn_at: Option<Timestamp>,
    /// The signed form or a note of the conversation, sealed to the agencies entitled to read it.
    pub evidence: Option<Sealed>,
}

impl Consent {
    pub fn is_withdrawn(&self) -> bool {
        self.withdrawn_at.is_some()
    }
}

/// Why a consent does not cover a share — precise, so the refusal can name what is missing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotCovered {
    #[error("withdrawn")]
    Withdrawn,
    #[error("not valid before {valid_from}")]
    NotYetValid { valid_from: Date },
    #[error("expired after {valid_until}")]
    Expired { valid_until: Date },
    #[error("recipient {recipient} not in scope")]
    RecipientNotInScope { recipient: AgencyId },
    #[error("purpose {purpose} not in scope")]
    PurposeNotInScope { purpose: Purpose },
}

/// Whether `consent` covers sharing with `recipient` (by id or kind) for `purpose` at `now`.
///
/// Validity days are civil dates in Japan and inclusive at both ends, because that is how the
/// person read the form ("until 31 March" includes 31 March). A withdrawal counts from the moment
/// it is recorded, whatever its timestamp: withdrawal stops new shares at once.
pub fn covers(
    consent: &Consent,
    recipient: &Agency,
    purpose: &Purpose,
    now: Timestamp,
) -> Result<(), NotCovered> {
    if consent.is_withdrawn() {
        return Err(NotCovered::Withdrawn);
    }
    let today = now.date_in_japan();
    if today < consent.valid_from {
        return Err(NotCovered::NotYetValid {
            valid_from: consent.valid_from,
        });
    }
    if let Some(valid_until) = consent.valid_until
        && today > valid_until
    {
        return Err(NotCovered::Expired { valid_until });
    }
    if !consent.scope.includes_recipient(recipient) {
        return Err(NotCovered::RecipientNotInScope {
            recipient: recipient.id.clone(),
        });
    }
    if !consent.scope.includes_purpose(purpose) {
        return Err(NotCovered::PurposeNotInScope {
            purpose: purpose.clone(),
        });
    }
    Ok(())
}

/// Why a consent record could not be recorded; `field` names the one to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ConsentError {
    pub field: &'static str,
    pub reason: String,
}

/// Checks a consent before it is recorded: the scope names at least one purpose and at least one
/// recipient (agency or kind), and the validity period does not end before it starts. An empty
/// scope would be a record that covers nothing, which is almost certainly a client mistake.
pub fn validate_scope(
    scope: &ConsentScope,
    valid_from: Date,
    valid_until: Option<Date>,
) -> Result<(), ConsentError> {
    if scope.purposes.is_empty() {
        return Err(ConsentError {
            field: "scope.purposes",
            reason: "must name at least one purpose".to_owned(),
        });
    }
    if scope.recipient_agencies.is_empty() && scope.recipient_kinds.is_empty() {
        return Err(ConsentError {
            field: "scope.recipient_agencies",
            reason:
                "must name at least one recipient agency or agency kind (scope.recipient_kinds)"
                    .to_owned(),
        });
    }
    if let Some(until) = valid_until
        && until < valid_from
    {
        return Err(ConsentError {
            field: "valid_until",
            reason: format!("must not be before valid_from ({until} is before {valid_from})"),
        });
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use time::macros::{date, datetime};

    use super::*;
    use crate::domain::{AgencyStatus, Municipality};

    pub(crate) fn agency(id: &str, kind: &str) -> Agency {
        Agency {
            id: AgencyId::parse(id).unwrap(),
            kind: AgencyKind::parse(kind).unwrap(),
            display_name: id.to_owned(),
            municipalities: vec![Municipality::parse("141178").unwrap()],
            council_memberships: Vec::new(),
            coordinator_of: Vec::new(),
            status: AgencyStatus::Active,
        }
    }

    pub(crate) fn purpose(code: &str) -> Purpose {
        Purpose::parse(code).unwrap()
    }

    /// A written guardian consent to share with aoba-hospital for postnatal care, from
    /// 2026-04-01 to 2027-03-31.
    pub(crate) fn consent() -> Consent {
        Consent {
            id: ConsentId::generate(),
            case_id: CaseId::generate(),
            given_by: ConsentGiver::Guardian,
            method: ConsentMethod::Written,
            recorded_by: AgencyId::parse("aoba-hoken").unwrap(),
            recorded_by_staff: Staff {
                name: "山田".to_owned(),
                role: "保健師".to_owned(),
            },
            scope: ConsentScope {
                recipient_agencies: vec![AgencyId::parse("aoba-hospital").unwrap()],
                recipient_kinds: Vec::new(),
                purposes: vec![purpose("postnatal_care")],
            },
            valid_from: date!(2026 - 04 - 01),
            valid_until: Some(date!(2027 - 03 - 31)),
            recorded_at: Timestamp::from_offset_date_time(datetime!(2026-04-01 01:00 UTC)),
            withdrawn_at: None,
            evidence: Some(Sealed(b"age-encryption.org/v1".to_vec())),
        }
    }

    pub(crate) fn june() -> Timestamp {
        Timestamp::from_offset_date_time(datetime!(2026-06-15 03:00 UTC))
    }

    fn hospital() -> Agency {
        agency("aoba-hospital", "hospital")
    }

    #[test]
    fn giver_and_method_codes_round_trip() {
        for giver in ConsentGiver::ALL {
            assert_eq!(ConsentGiver::from_code(giver.code()), Some(giver));
        }
        for method in ConsentMethod::ALL {
            assert_eq!(ConsentMethod::from_code(method.code()), Some(method));
        }
        assert_eq!(ConsentGiver::SelfPerson.code(), "self");
        assert_eq!(ConsentGiver::from_code("parent"), None);
    }

    #[test]
    fn a_consent_covers_a_named_recipient_for_a_named_purpose_within_its_dates() {
        assert_eq!(
            covers(&consent(), &hospital(), &purpose("postnatal_care"), june()),
            Ok(())
        );
    }

    #[test]
    fn a_consent_for_another_purpose_does_not_cover() {
        let err = covers(
            &consent(),
            &hospital(),
            &purpose("psychiatric_care"),
            june(),
        )
        .unwrap_err();
        assert_eq!(
            err,
            NotCovered::PurposeNotInScope {
                purpose: purpose("psychiatric_care")
            }
        );
        assert_eq!(err.to_string(), "purpose psychiatric_care not in scope");
    }

    #[test]
    fn a_consent_for_another_recipient_does_not_cover() {
        let other = agency("midori-hospital", "hospital");
        let err = covers(&consent(), &other, &purpose("postnatal_care"), june()).unwrap_err();
        assert_eq!(
            err,
            NotCovered::RecipientNotInScope {
                recipient: other.id.clone()
            }
        );
        assert_eq!(err.to_string(), "recipient midori-hospital not in scope");
    }

    #[test]
    fn a_kind_scoped_consent_covers_any_agency_of_that_kind() {
        let mut by_kind = consent();
        by_kind.scope.recipient_agencies.clear();
        by_kind.scope.recipient_kinds = vec![AgencyKind::parse("hospital").unwrap()];
        let other = agency("midori-hospital", "hospital");
        assert_eq!(
            covers(&by_kind, &other, &purpose("postnatal_care"), june()),
            Ok(())
        );
        let nursery = agency("aoba-hoikuen", "nursery");
        assert!(matches!(
            covers(&by_kind, &nursery, &purpose("postnatal_care"), june()),
            Err(NotCovered::RecipientNotInScope { .. })
        ));
    }

    #[test]
    fn a_withdrawn_consent_does_not_cover() {
        let mut withdrawn = consent();
        withdrawn.withdrawn_at = Some(june());
        let err = covers(&withdrawn, &hospital(), &purpose("postnatal_care"), june()).unwrap_err();
        assert_eq!(err, NotCovered::Withdrawn);
        assert_eq!(err.to_string(), "withdrawn");
    }

    #[test]
    fn an_expired_consent_does_not_cover() {
        let april_2027 = Timestamp::from_offset_date_time(datetime!(2027-04-01 00:00 +9));
        let err = covers(
            &consent(),
            &hospital(),
            &purpose("postnatal_care"),
            april_2027,
        )
        .unwrap_err();
        assert_eq!(
            err,
            NotCovered::Expired {
                valid_until: date!(2027 - 03 - 31)
            }
        );
        assert_eq!(err.to_string(), "expired after 2027-03-31");
    }

    #[test]
    fn a_consent_not_yet_valid_does_not_cover() {
        let march = Timestamp::from_offset_date_time(datetime!(2026-03-31 23:59 +9));
        let err = covers(&consent(), &hospital(), &purpose("postnatal_care"), march).unwrap_err();
        assert_eq!(
            err,
            NotCovered::NotYetValid {
                valid_from: date!(2026 - 04 - 01)
            }
        );
        assert_eq!(err.to_string(), "not valid before 2026-04-01");
    }

    #[test]
    fn validity_days_are_inclusive_japanese_civil_dates() {
        let c = consent();
        let p = purpose("postnatal_care");
        // 2026-03-31T15:00Z is already 1 April in Japan.
        let first_day = Timestamp::from_offset_date_time(datetime!(2026-03-31 15:00 UTC));
        assert_eq!(covers(&c, &hospital(), &p, first_day), Ok(()));
        let last_moment = Timestamp::from_offset_date_time(datetime!(2027-03-31 23:59:59 +9));
        assert_eq!(covers(&c, &hospital(), &p, last_moment), Ok(()));
    }

    #[test]
    fn a_consent_without_an_end_date_never_expires() {
        let mut open = consent();
        open.valid_until = None;
        let far = Timestamp::from_offset_date_time(datetime!(2040-01-01 00:00 UTC));
        assert_eq!(
            covers(&open, &hospital(), &purpose("postnatal_care"), far),
            Ok(())
        );
    }

    #[test]
    fn withdrawal_is_reported_before_any_other_shortfall() {
        let mut c = consent();
        c.withdrawn_at = Some(june());
        let err = covers(
            &c,
            &agency("midori-hospital", "hospital"),
            &purpose("x"),
            june(),
        )
        .unwrap_err();
        assert_eq!(err, NotCovered::Withdrawn);
    }

    #[test]
    fn a_scope_with_purposes_and_recipients_is_valid() {
        let c = consent();
        assert_eq!(
            validate_scope(&c.scope, c.valid_from, c.valid_until),
            Ok(())
        );
        assert_eq!(validate_scope(&c.scope, c.valid_from, None), Ok(()));
        assert_eq!(
            validate_scope(&c.scope, c.valid_from, Some(c.valid_from)),
            Ok(()),
            "a one-day consent is fine"
        );
    }

    #[test]
    fn a_scope_without_purposes_is_refused() {
        let mut scope = consent().scope;
        scope.purposes.clear();
        let err = validate_scope(&scope, date!(2026 - 04 - 01), None).unwrap_err();
        assert_eq!(err.field, "scope.purposes");
    }

    #[test]
    fn a_scope_without_recipients_is_refused() {
        let mut scope = consent().scope;
        scope.recipient_agencies.clear();
        let err = validate_scope(&scope, date!(2026 - 04 - 01), None).unwrap_err();
        assert_eq!(err.field, "scope.recipient_agencies");
        assert!(err.to_string().contains("agency kind"), "{err}");
        scope.recipient_kinds = vec![AgencyKind::parse("nursery").unwrap()];
        assert_eq!(validate_scope(&scope, date!(2026 - 04 - 01), None), Ok(()));
    }

    #[test]
    fn a_validity_that_ends_before_it_starts_is_refused() {
        let err = validate_scope(
            &consent().scope,
            date!(2026 - 04 - 01),
            Some(date!(2026 - 03 - 31)),
        )
        .unwrap_err();
        assert_eq!(err.field, "valid_until");
    }
}

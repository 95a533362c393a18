//! Conversions between proto messages and domain types, at the boundary. Parsing failures name
//! the offending field.

use tsunagu_proto::v1 as pb;

use crate::domain::deadlines::DeadlineTerm;
use crate::domain::{Agency, AgencyStatus, Timestamp};
use crate::error::Error;

/// A prost timestamp for a domain instant.
pub fn timestamp(at: Timestamp) -> prost_types::Timestamp {
    let millis = at.millis();
    prost_types::Timestamp {
        seconds: millis.div_euclid(1000),
        nanos: (millis.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// A domain instant from an optional prost timestamp; `field` names it in errors.
pub fn parse_timestamp(
    field: &str,
    at: Option<&prost_types::Timestamp>,
) -> Result<Option<Timestamp>, Error> {
    let Some(at) = at else { return Ok(None) };
    if !(0..1_000_000_000).contains(&at.nanos) || !(0..=253_402_300_799).contains(&at.seconds) {
        return Err(Error::invalid(field, "is not a valid timestamp"));
    }
    Ok(Some(Timestamp::from_millis(
        at.seconds * 1000 + i64::from(at.nanos / 1_000_000),
    )))
}

pub fn agency(agency: &Agency, trust_domain: &str) -> pb::Agency {
    let codes = |list: &[crate::domain::Municipality]| {
        list.iter().map(ToString::to_string).collect::<Vec<_>>()
    };
    pb::Agency {
        agency_id: agency.id.to_string(),
        kind: agency.kind.to_string(),
        display_name: agency.display_name.clone(),
        municipalities: codes(&agency.municipalities),
        council_memberships: codes(&agency.council_memberships),
        coordinator_of: codes(&agency.coordinator_of),
        status: match agency.status {
            AgencyStatus::Active => pb::AgencyStatus::Active,
            AgencyStatus::Suspended => pb::AgencyStatus::Suspended,
        } as i32,
        spiffe_id: agency.id.spiffe_uri(trust_domain),
    }
}

// ---- Parsing requests (proto → domain). Every failure names its field. ----

use crate::domain::basis::{ClaimedBasis, LegalBasisKind, MAX_JUSTIFICATION_CHARS};
use crate::domain::consent::{Consent, ConsentGiver, ConsentMethod, ConsentScope};
use crate::domain::records::{
    EscalationTier, FeedEvent, FeedEventKind, Note, Referral, ReferralEvent, ReferralEventKind,
};
use crate::domain::referral::{
    ConnectionState, DeadlineOverrides, DeliveryState, NotConnectedReason, ReferralAction,
    ResponseState, TimerKind,
};
use crate::domain::{
    AgencyId, CaseCategory, CaseStage, Municipality, Purpose, Sealed, Staff, Urgency,
};

/// Longest staff name or role, in characters.
const MAX_STAFF_CHARS: usize = 100;
/// Longest idempotency key, in characters.
const MAX_IDEMPOTENCY_KEY_CHARS: usize = 128;
/// Most recipients of one note.
pub const MAX_NOTE_RECIPIENTS: usize = 20;
/// Most entries in a consent scope list.
const MAX_SCOPE_ENTRIES: usize = 50;

/// A required id of the `parse` shape.
pub fn required_id<T>(
    field: &str,
    text: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<T, Error> {
    if text.is_empty() {
        return Err(Error::missing(field));
    }
    parse(text).ok_or_else(|| Error::invalid(field, format!("{text:?} is not a valid id (a UUID)")))
}

/// An optional id: empty means none.
pub fn optional_id<T>(
    field: &str,
    text: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Option<T>, Error> {
    if text.is_empty() {
        Ok(None)
    } else {
        required_id(field, text, parse).map(Some)
    }
}

pub fn agency_id(field: &str, text: &str) -> Result<AgencyId, Error> {
    if text.is_empty() {
        return Err(Error::missing(field));
    }
    AgencyId::parse(text).ok_or_else(|| {
        Error::invalid(
            field,
            format!("{text:?} is not an agency id (lower-case letters, digits and '-')"),
        )
    })
}

pub fn municipality(field: &str, text: &str) -> Result<Municipality, Error> {
    if text.is_empty() {
        return Err(Error::missing(field));
    }
    Municipality::parse(text).ok_or_else(|| {
        Error::invalid(
            field,
            format!(
                "{text:?} is not a municipality code (six digits with check digit, e.g. 141178)"
            ),
        )
    })
}

pub fn optional_municipality(field: &str, text: &str) -> Result<Option<Municipality>, Error> {
    if text.is_empty() {
        Ok(None)
    } else {
        municipality(field, text).map(Some)
    }
}

pub fn purpose(field: &str, text: &str) -> Result<Purpose, Error> {
    if text.is_empty() {
        return Err(Error::missing(field));
    }
    Purpose::parse(text).ok_or_else(|| {
        Error::invalid(
            field,
            format!("{text:?} is not a purpose code (lower-case letters, digits and '_', e.g. postnatal_care)"),
        )
    })
}

/// A civil date `YYYY-MM-DD`.
pub fn date(field: &str, text: &str) -> Result<time::Date, Error> {
    if text.is_empty() {
        return Err(Error::missing(field));
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(text, format)
        .map_err(|_| Error::invalid(field, format!("{text:?} is not a date (YYYY-MM-DD)")))
}

pub fn optional_date(field: &str, text: &str) -> Result<Option<time::Date>, Error> {
    if text.is_empty() {
        Ok(None)
    } else {
        date(field, text).map(Some)
    }
}

pub fn date_text(date: time::Date) -> String {
    crate::store::queries::date_text(date)
}

pub fn staff(staff: Option<&pb::Staff>) -> Result<Staff, Error> {
    let staff = staff.ok_or_else(|| Error::missing("staff"))?;
    let text = |field: &str, value: &str| {
        let value = value.trim();
        if value.is_empty() {
            return Err(Error::missing(field));
        }
        if value.chars().count() > MAX_STAFF_CHARS || value.chars().any(char::is_control) {
            return Err(Error::invalid(
                field,
                format!("must be at most {MAX_STAFF_CHARS} characters without control characters"),
            ));
        }
        Ok(value.to_owned())
    };
    Ok(Staff {
        name: text("staff.name", &staff.name)?,
        role: text("staff.role", &staff.role)?,
    })
}

pub fn idempotency_key(text: &str) -> Result<String, Error> {
    if text.is_empty() {
        return Err(Error::invalid(
            "idempotency_key",
            "is required: send a fresh unique key (e.g. a UUID) with each new request and the same key when retrying it",
        ));
    }
    if text.chars().count() > MAX_IDEMPOTENCY_KEY_CHARS || text.chars().any(char::is_control) {
        return Err(Error::invalid(
            "idempotency_key",
            format!(
                "must be at most {MAX_IDEMPOTENCY_KEY_CHARS} characters without control characters"
            ),
        ));
    }
    Ok(text.to_owned())
}

/// A required proto enum: unset is missing, an unknown number is invalid.
pub fn required_enum<E: TryFrom<i32>>(field: &str, value: i32) -> Result<E, Error> {
    if value == 0 {
        return Err(Error::missing(field));
    }
    E::try_from(value).map_err(|_| Error::invalid(field, format!("{value} is not a known value")))
}

/// An optional proto enum: unset is none.
pub fn optional_enum<E: TryFrom<i32>>(field: &str, value: i32) -> Result<Option<E>, Error> {
    if value == 0 {
        Ok(None)
    } else {
        required_enum(field, value).map(Some)
    }
}

/// A sealed payload: a well-formed age file within the size limit, stored unchanged.
pub fn sealed(field: &str, sealed: Option<&pb::Sealed>, limit: usize) -> Result<Sealed, Error> {
    let bytes = match sealed {
        Some(sealed) if !sealed.age.is_empty() => &sealed.age,
        _ => return Err(Error::missing(field)),
    };
    if bytes.len() > limit {
        return Err(Error::ResourceExhausted {
            field: field.to_owned(),
            size: bytes.len(),
            limit,
        });
    }
    check_age_file(bytes).map_err(|reason| Error::invalid(field, reason))?;
    Ok(Sealed(bytes.clone()))
}

pub fn optional_sealed(
    field: &str,
    value: Option<&pb::Sealed>,
    limit: usize,
) -> Result<Option<Sealed>, Error> {
    match value {
        Some(inner) if !inner.age.is_empty() => sealed(field, value, limit).map(Some),
        _ => Ok(None),
    }
}

/// Checks a sealed field without decrypting anything (the hub holds no age identity): an ASCII
/// armour is decoded first, the age header must parse, and what follows it must have the shape
/// of age's payload stream: a 16-byte nonce, then chunks of 64 KiB of ciphertext plus a 16-byte
/// tag each, the last one shorter but holding more than its tag (only an empty plaintext ends in
/// a bare tag). So a file cut inside its header, or cut anywhere that leaves a chunk no longer
/// than its tag, is refused; the hub cannot tell a cut at a chunk boundary, the recipient can.
fn check_age_file(bytes: &[u8]) -> Result<(), String> {
    use std::io::Read as _;
    const NOT_AGE: &str = "is not an age-encrypted file: seal it to the recipients' age keys \
                           before sending (plaintext is never accepted)";
    const DAMAGED: &str = "is a truncated or damaged age file: its header does not parse";
    const TRUNCATED: &str = "is a truncated age file: its payload is cut short";
    const NONCE: usize = 16;
    const TAG: usize = 16;
    const CHUNK: usize = 64 * 1024 + TAG;

    let mut binary = Vec::with_capacity(bytes.len());
    age::armor::ArmoredReader::new(bytes)
        .read_to_end(&mut binary)
        .map_err(|_| NOT_AGE.to_owned())?;
    if age::Decryptor::new_buffered(binary.as_slice()).is_err() {
        return Err(if binary.starts_with(b"age-encryption.org/") {
            DAMAGED.to_owned()
        } else {
            NOT_AGE.to_owned()
        });
    }
    // The header ends with the MAC line "--- <base64>\n"; the payload follows it.
    let header_end = binary
        .windows(4)
        .position(|w| w == b"\n---")
        .and_then(|start| {
            binary[start + 1..]
                .iter()
                .position(|&b| b == b'\n')
                .map(|end| start + 1 + end + 1)
        })
        .ok_or_else(|| DAMAGED.to_owned())?;
    let payload = binary.len() - header_end;
    if payload < NONCE + TAG {
        return Err(TRUNCATED.to_owned());
    }
    let stream = payload - NONCE;
    let last_chunk = stream % CHUNK;
    if stream != TAG && last_chunk != 0 && last_chunk <= TAG {
        return Err(TRUNCATED.to_owned());
    }
    Ok(())
}

pub fn basis(value: Option<&pb::LegalBasis>) -> Result<ClaimedBasis, Error> {
    let value = value.ok_or_else(|| Error::missing("basis"))?;
    let kind = match required_enum::<pb::LegalBasisKind>("basis.kind", value.kind)? {
        pb::LegalBasisKind::Consent => LegalBasisKind::Consent,
        pb::LegalBasisKind::CouncilSharing => LegalBasisKind::CouncilSharing,
        pb::LegalBasisKind::AbuseNotification => LegalBasisKind::AbuseNotification,
        pb::LegalBasisKind::VitalInterest => LegalBasisKind::VitalInterest,
        pb::LegalBasisKind::Unspecified => return Err(Error::missing("basis.kind")),
    };
    let justification = value.justification.trim();
    if justification.chars().count() > MAX_JUSTIFICATION_CHARS {
        return Err(Error::invalid(
            "basis.justification",
            format!(
                "must be at most {MAX_JUSTIFICATION_CHARS} characters: it is stored in the clear, \
                 so give a category-level reason and never a name; details go in the sealed body"
            ),
        ));
    }
    Ok(ClaimedBasis {
        kind,
        consent_id: optional_id(
            "basis.consent_id",
            &value.consent_id,
            crate::domain::ConsentId::parse,
        )?,
        justification: (!justification.is_empty()).then(|| justification.to_owned()),
    })
}

pub fn category(field: &str, value: i32) -> Result<CaseCategory, Error> {
    Ok(match required_enum::<pb::CaseCategory>(field, value)? {
        pb::CaseCategory::General => CaseCategory::General,
        pb::CaseCategory::RequiresProtection => CaseCategory::RequiresProtection,
        pb::CaseCategory::RequiresSupport => CaseCategory::RequiresSupport,
        pb::CaseCategory::SpecificExpectantMother => CaseCategory::SpecificExpectantMother,
        pb::CaseCategory::Unspecified => return Err(Error::missing(field)),
    })
}

pub fn stage(field: &str, value: i32) -> Result<CaseStage, Error> {
    Ok(match required_enum::<pb::CaseStage>(field, value)? {
        pb::CaseStage::Pregnancy => CaseStage::Pregnancy,
        pb::CaseStage::Postnatal => CaseStage::Postnatal,
        pb::CaseStage::Infancy => CaseStage::Infancy,
        pb::CaseStage::SchoolAge => CaseStage::SchoolAge,
        pb::CaseStage::Unspecified => return Err(Error::missing(field)),
    })
}

pub fn urgency(field: &str, value: i32) -> Result<Urgency, Error> {
    Ok(match required_enum::<pb::Urgency>(field, value)? {
        pb::Urgency::Routine => Urgency::Routine,
        pb::Urgency::Urgent => Urgency::Urgent,
        pb::Urgency::Emergency => Urgency::Emergency,
        pb::Urgency::Unspecified => return Err(Error::missing(field)),
    })
}

pub fn action(field: &str, value: i32) -> Result<ReferralAction, Error> {
    use pb::ReferralAction as P;
    Ok(match required_enum::<P>(field, value)? {
        P::AcknowledgeDelivery => ReferralAction::AcknowledgeDelivery,
        P::Accept => ReferralAction::Accept,
        P::Decline => ReferralAction::Decline,
        P::Start => ReferralAction::Start,
        P::Complete => ReferralAction::Complete,
        P::Fail => ReferralAction::Fail,
        P::Cancel => ReferralAction::Cancel,
        P::RecordContactAttempt => ReferralAction::RecordContactAttempt,
        P::ReportConnected => ReferralAction::ReportConnected,
        P::ReportNotConnected => ReferralAction::ReportNotConnected,
        P::Confirm => ReferralAction::Confirm,
        P::CloseWithReason => ReferralAction::CloseWithReason,
        P::Unspecified => return Err(Error::missing(field)),
    })
}

pub fn not_connected_reason(field: &str, value: i32) -> Result<Option<NotConnectedReason>, Error> {
    use pb::NotConnectedReason as P;
    Ok(
        optional_enum::<P>(field, value)?.and_then(|reason| match reason {
            P::CouldNotContact => Some(NotConnectedReason::CouldNotContact),
            P::DeclinedByFamily => Some(NotConnectedReason::DeclinedByFamily),
            P::NotEligible => Some(NotConnectedReason::NotEligible),
            P::NoCapacity => Some(NotConnectedReason::NoCapacity),
            P::Moved => Some(NotConnectedReason::Moved),
            P::ReferredElsewhere => Some(NotConnectedReason::ReferredElsewhere),
            P::Unspecified => None,
        }),
    )
}

/// A short clear-text note to a reason: plain text (line breaks allowed) of at most
/// `MAX_JUSTIFICATION_CHARS`; empty means none.
pub fn clear_reason_text(field: &str, text: &str) -> Result<Option<String>, Error> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let control = text.chars().any(|c| c.is_control() && c != '\n');
    if text.chars().count() > MAX_JUSTIFICATION_CHARS || control {
        return Err(Error::invalid(
            field,
            format!(
                "must be at most {MAX_JUSTIFICATION_CHARS} characters of plain text: it is stored \
                 in the clear, so give a category-level note and never a name; details go in the \
                 sealed note"
            ),
        ));
    }
    Ok(Some(text.to_owned()))
}

/// A reason code for decline, fail and cancel: 1..=64 of `[a-z0-9_]`; empty means none.
pub fn reason_code(field: &str, text: &str) -> Result<Option<String>, Error> {
    if text.is_empty() {
        return Ok(None);
    }
    let ok = text.len() <= 64
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        return Err(Error::invalid(
            field,
            "must be a short code of lower-case letters, digits and '_' (e.g. no_capacity); put details in the sealed note",
        ));
    }
    Ok(Some(text.to_owned()))
}

pub fn deadline_overrides(value: Option<&pb::Deadlines>) -> Result<DeadlineOverrides, Error> {
    let Some(value) = value else {
        return Ok(DeadlineOverrides::default());
    };
    Ok(DeadlineOverrides {
        deliver_by: parse_timestamp("deadlines.deliver_by", value.deliver_by.as_ref())?,
        respond_by: parse_timestamp("deadlines.respond_by", value.respond_by.as_ref())?,
        connect_by: parse_timestamp("deadlines.connect_by", value.connect_by.as_ref())?,
        confirm_by: parse_timestamp("deadlines.confirm_by", value.confirm_by.as_ref())?,
    })
}

pub fn consent_scope(value: Option<&pb::ConsentScope>) -> Result<ConsentScope, Error> {
    let value = value.ok_or_else(|| Error::missing("scope"))?;
    for (field, list) in [
        ("scope.recipient_agencies", &value.recipient_agencies),
        ("scope.recipient_kinds", &value.recipient_kinds),
        ("scope.purposes", &value.purposes),
    ] {
        if list.len() > MAX_SCOPE_ENTRIES {
            return Err(Error::invalid(
                field,
                format!("may list at most {MAX_SCOPE_ENTRIES} entries"),
            ));
        }
    }
    Ok(ConsentScope {
        recipient_agencies: value
            .recipient_agencies
            .iter()
            .map(|id| agency_id("scope.recipient_agencies", id))
            .collect::<Result<_, _>>()?,
        recipient_kinds: value
            .recipient_kinds
            .iter()
            .map(|kind| {
                crate::domain::AgencyKind::parse(kind).ok_or_else(|| {
                    Error::invalid(
                        "scope.recipient_kinds",
                        format!("{kind:?} is not an agency kind"),
                    )
                })
            })
            .collect::<Result<_, _>>()?,
        purposes: value
            .purposes
            .iter()
            .map(|p| purpose("scope.purposes", p))
            .collect::<Result<_, _>>()?,
    })
}

pub fn consent_giver(field: &str, value: i32) -> Result<ConsentGiver, Error> {
    Ok(match required_enum::<pb::ConsentGiver>(field, value)? {
        pb::ConsentGiver::Person => ConsentGiver::SelfPerson,
        pb::ConsentGiver::Guardian => ConsentGiver::Guardian,
        pb::ConsentGiver::Unspecified => return Err(Error::missing(field)),
    })
}

pub fn consent_method(field: &str, value: i32) -> Result<ConsentMethod, Error> {
    Ok(match required_enum::<pb::ConsentMethod>(field, value)? {
        pb::ConsentMethod::Written => ConsentMethod::Written,
        pb::ConsentMethod::Oral => ConsentMethod::Oral,
        pb::ConsentMethod::Electronic => ConsentMethod::Electronic,
        pb::ConsentMethod::Unspecified => return Err(Error::missing(field)),
    })
}

/// A page size: 0 means `default`, above `max` is refused.
pub fn limit(field: &str, value: u32, default: u32, max: u32) -> Result<u32, Error> {
    match value {
        0 => Ok(default),
        value if value > max => Err(Error::invalid(field, format!("must be at most {max}"))),
        value => Ok(value),
    }
}

// ---- Rendering responses (domain → proto), as one viewer may see them. ----

pub fn sealed_out(sealed: &Sealed) -> pb::Sealed {
    pb::Sealed {
        age: sealed.0.clone(),
    }
}

pub fn staff_out(staff: &Staff) -> pb::Staff {
    pb::Staff {
        name: staff.name.clone(),
        role: staff.role.clone(),
    }
}

pub fn category_out(category: CaseCategory) -> pb::CaseCategory {
    match category {
        CaseCategory::General => pb::CaseCategory::General,
        CaseCategory::RequiresProtection => pb::CaseCategory::RequiresProtection,
        CaseCategory::RequiresSupport => pb::CaseCategory::RequiresSupport,
        CaseCategory::SpecificExpectantMother => pb::CaseCategory::SpecificExpectantMother,
    }
}

pub fn stage_out(stage: CaseStage) -> pb::CaseStage {
    match stage {
        CaseStage::Pregnancy => pb::CaseStage::Pregnancy,
        CaseStage::Postnatal => pb::CaseStage::Postnatal,
        CaseStage::Infancy => pb::CaseStage::Infancy,
        CaseStage::SchoolAge => pb::CaseStage::SchoolAge,
    }
}

pub fn urgency_out(urgency: Urgency) -> pb::Urgency {
    match urgency {
        Urgency::Routine => pb::Urgency::Routine,
        Urgency::Urgent => pb::Urgency::Urgent,
        Urgency::Emergency => pb::Urgency::Emergency,
    }
}

pub fn basis_out(kind: LegalBasisKind) -> pb::LegalBasisKind {
    match kind {
        LegalBasisKind::Consent => pb::LegalBasisKind::Consent,
        LegalBasisKind::CouncilSharing => pb::LegalBasisKind::CouncilSharing,
        LegalBasisKind::AbuseNotification => pb::LegalBasisKind::AbuseNotification,
        LegalBasisKind::VitalInterest => pb::LegalBasisKind::VitalInterest,
    }
}

pub fn delivery_out(state: DeliveryState) -> pb::DeliveryState {
    match state {
        DeliveryState::Sent => pb::DeliveryState::Sent,
        DeliveryState::Delivered => pb::DeliveryState::Delivered,
    }
}

pub fn response_out(state: ResponseState) -> pb::ResponseState {
    match state {
        ResponseState::Requested => pb::ResponseState::Requested,
        ResponseState::Accepted => pb::ResponseState::Accepted,
        ResponseState::Declined => pb::ResponseState::Declined,
        ResponseState::InProgress => pb::ResponseState::InProgress,
        ResponseState::Completed => pb::ResponseState::Completed,
        ResponseState::Failed => pb::ResponseState::Failed,
        ResponseState::Cancelled => pb::ResponseState::Cancelled,
    }
}

pub fn connection_out(state: ConnectionState) -> pb::ConnectionState {
    match state {
        ConnectionState::NotUpdated => pb::ConnectionState::NotUpdated,
        ConnectionState::ContactAttempted => pb::ConnectionState::ContactAttempted,
        ConnectionState::Connected => pb::ConnectionState::Connected,
        ConnectionState::NotConnected => pb::ConnectionState::NotConnected,
    }
}

pub fn not_connected_out(reason: Option<NotConnectedReason>) -> pb::NotConnectedReason {
    match reason {
        None => pb::NotConnectedReason::Unspecified,
        Some(NotConnectedReason::CouldNotContact) => pb::NotConnectedReason::CouldNotContact,
        Some(NotConnectedReason::DeclinedByFamily) => pb::NotConnectedReason::DeclinedByFamily,
        Some(NotConnectedReason::NotEligible) => pb::NotConnectedReason::NotEligible,
        Some(NotConnectedReason::NoCapacity) => pb::NotConnectedReason::NoCapacity,
        Some(NotConnectedReason::Moved) => pb::NotConnectedReason::Moved,
        Some(NotConnectedReason::ReferredElsewhere) => pb::NotConnectedReason::ReferredElsewhere,
    }
}

pub fn action_out(action: ReferralAction) -> pb::ReferralAction {
    use pb::ReferralAction as P;
    match action {
        ReferralAction::AcknowledgeDelivery => P::AcknowledgeDelivery,
        ReferralAction::Accept => P::Accept,
        ReferralAction::Decline => P::Decline,
        ReferralAction::Start => P::Start,
        ReferralAction::Complete => P::Complete,
        ReferralAction::Fail => P::Fail,
        ReferralAction::Cancel => P::Cancel,
        ReferralAction::RecordContactAttempt => P::RecordContactAttempt,
        ReferralAction::ReportConnected => P::ReportConnected,
        ReferralAction::ReportNotConnected => P::ReportNotConnected,
        ReferralAction::Confirm => P::Confirm,
        ReferralAction::CloseWithReason => P::CloseWithReason,
    }
}

pub fn timer_out(timer: TimerKind) -> pb::TimerKind {
    match timer {
        TimerKind::DeliverBy => pb::TimerKind::DeliverBy,
        TimerKind::RespondBy => pb::TimerKind::RespondBy,
        TimerKind::ConnectBy => pb::TimerKind::ConnectBy,
        TimerKind::ConfirmBy => pb::TimerKind::ConfirmBy,
    }
}

fn optional_timestamp(at: Option<Timestamp>) -> Option<prost_types::Timestamp> {
    at.map(timestamp)
}

/// A referral as `viewer` may see it: a hidden reporter's id is left out.
pub fn referral(
    referral: &Referral,
    viewer: &AgencyId,
    now: Timestamp,
    consent_withdrawn: bool,
) -> pb::Referral {
    let visible = crate::casework::sender_visible(referral, viewer);
    let state = &referral.state;
    pb::Referral {
        referral_id: referral.id.to_string(),
        case_id: referral.case_id.to_string(),
        from_agency: if visible {
            referral.from_agency.to_string()
        } else {
            String::new()
        },
        to_agency: referral.to_agency.to_string(),
        purpose: referral.purpose.to_string(),
        urgency: urgency_out(referral.urgency) as i32,
        basis: basis_out(referral.basis) as i32,
        consent_id: referral
            .consent_id
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        body: Some(sealed_out(&referral.body)),
        sent_at: Some(timestamp(referral.sent_at)),
        deadlines: Some(pb::Deadlines {
            deliver_by: Some(timestamp(referral.deadlines.deliver_by)),
            respond_by: Some(timestamp(referral.deadlines.respond_by)),
            connect_by: Some(timestamp(referral.deadlines.connect_by)),
            confirm_by: Some(timestamp(referral.deadlines.confirm_by)),
        }),
        delivery: delivery_out(state.delivery) as i32,
        delivered_at: optional_timestamp(state.delivered_at),
        response: response_out(state.response) as i32,
        responded_at: optional_timestamp(state.responded_at),
        response_reason: state.response_reason.clone().unwrap_or_default(),
        connection: connection_out(state.connection) as i32,
        connection_updated_at: optional_timestamp(state.connection_updated_at),
        contact_attempts: state.contact_attempts,
        not_connected_reason: not_connected_out(state.not_connected_reason) as i32,
        linked_referral_id: state
            .linked_referral_id
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        confirmed_at: optional_timestamp(state.confirmed_at),
        confirmed_by: state
            .confirmed_by
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        overdue: crate::domain::referral::overdue(state, &referral.deadlines, now)
            .into_iter()
            .map(|timer| timer_out(timer) as i32)
            .collect(),
        consent_withdrawn,
        sender_attested: visible,
        deadline_terms: referral.deadline_terms.map(|terms| pb::DeadlineTerms {
            deliver_by: Some(deadline_term_out(terms.deliver_by)),
            respond_by: Some(deadline_term_out(terms.respond_by)),
            connect_by: Some(deadline_term_out(terms.connect_by)),
            confirm_by: Some(deadline_term_out(terms.confirm_by)),
        }),
        // Needs the case's other referrals: set where the referral is answered (`referral_out`).
        next_step_needed: false,
        closed_with_reason: referral.closed_with_reason.as_ref().map(|closed| {
            pb::ClosedWithReason {
                reason_code: closed.reason.code().to_owned(),
                reason_text: closed.text.clone().unwrap_or_default(),
                closed_at: Some(timestamp(closed.at)),
                // Only the sender or the coordinator closes; a hidden reporter stays hidden.
                closed_by: if !visible && closed.by == referral.from_agency {
                    String::new()
                } else {
                    closed.by.to_string()
                },
            }
        }),
    }
}

fn deadline_term_out(term: DeadlineTerm) -> pb::DeadlineTerm {
    let (unit, amount) = match term {
        DeadlineTerm::Hours(hours) => (pb::DeadlineUnit::Hours, hours),
        DeadlineTerm::BusinessDays(days) => (pb::DeadlineUnit::BusinessDays, days),
        DeadlineTerm::SetBySender => (pb::DeadlineUnit::SetBySender, 0),
    };
    pb::DeadlineTerm {
        unit: unit as i32,
        amount,
    }
}

/// A referral event as `viewer` may see it. `hide_actor` hides the actor when it is a reporter
/// the viewer must not learn.
pub fn referral_event(event: &ReferralEvent, hide_actor: bool) -> pb::ReferralEvent {
    let (kind, action, timer) = match event.kind {
        ReferralEventKind::Sent => (pb::ReferralEventKind::Sent, None, None),
        ReferralEventKind::Action(action) => (pb::ReferralEventKind::Action, Some(action), None),
        ReferralEventKind::Escalated { timer, .. } => {
            (pb::ReferralEventKind::Escalated, None, Some(timer))
        }
    };
    pb::ReferralEvent {
        event_id: event.id.to_string(),
        referral_id: event.referral_id.to_string(),
        case_id: event.case_id.to_string(),
        kind: kind as i32,
        action: action.map(|a| action_out(a) as i32).unwrap_or_default(),
        timer: timer.map(|t| timer_out(t) as i32).unwrap_or_default(),
        actor_agency: match (&event.actor_agency, hide_actor) {
            (Some(actor), false) => actor.to_string(),
            _ => String::new(),
        },
        actor_staff: if hide_actor {
            None
        } else {
            event.actor_staff.as_ref().map(staff_out)
        },
        occurred_at: Some(timestamp(event.occurred_at)),
        recorded_at: Some(timestamp(event.recorded_at)),
        reason_code: event.reason_code.clone().unwrap_or_default(),
        not_connected_reason: not_connected_out(event.not_connected_reason) as i32,
        note: event.note.as_ref().map(sealed_out),
        delivery: delivery_out(event.delivery) as i32,
        response: response_out(event.response) as i32,
        connection: connection_out(event.connection) as i32,
        reason_text: event.reason_text.clone().unwrap_or_default(),
        reason_detail: event.reason_detail.as_ref().map(sealed_out),
    }
}

/// Whether an event's actor must be hidden from `viewer`: it is the hidden sender of the
/// referral the event belongs to.
pub fn hides_actor(event: &ReferralEvent, referral: &Referral, viewer: &AgencyId) -> bool {
    !crate::casework::sender_visible(referral, viewer)
        && event.actor_agency.as_ref() == Some(&referral.from_agency)
}

/// A note as `viewer` may see it: a recipient sees only its own acknowledgement entry.
pub fn note(note: &Note, viewer: &AgencyId) -> pb::Note {
    let is_sender = &note.from_agency == viewer;
    let is_recipient = note.recipients.iter().any(|r| &r.agency_id == viewer);
    let sender_visible = !note.hide_sender || is_sender || is_recipient;
    pb::Note {
        note_id: note.id.to_string(),
        case_id: note.case_id.to_string(),
        from_agency: if sender_visible {
            note.from_agency.to_string()
        } else {
            String::new()
        },
        staff: sender_visible.then(|| staff_out(&note.staff)),
        basis: basis_out(note.basis) as i32,
        body: Some(sealed_out(&note.body)),
        sent_at: Some(timestamp(note.sent_at)),
        recipients: note
            .recipients
            .iter()
            .filter(|r| !is_recipient || is_sender || &r.agency_id == viewer)
            .map(|r| pb::NoteRecipient {
                agency_id: r.agency_id.to_string(),
                acknowledged_at: optional_timestamp(r.acknowledged_at),
            })
            .collect(),
        sender_attested: sender_visible,
    }
}

pub fn consent(consent: &Consent) -> pb::Consent {
    pb::Consent {
        consent_id: consent.id.to_string(),
        case_id: consent.case_id.to_string(),
        given_by: match consent.given_by {
            ConsentGiver::SelfPerson => pb::ConsentGiver::Person,
            ConsentGiver::Guardian => pb::ConsentGiver::Guardian,
        } as i32,
        method: match consent.method {
            ConsentMethod::Written => pb::ConsentMethod::Written,
            ConsentMethod::Oral => pb::ConsentMethod::Oral,
            ConsentMethod::Electronic => pb::ConsentMethod::Electronic,
        } as i32,
        recorded_by_agency: consent.recorded_by.to_string(),
        recorded_by_staff: Some(staff_out(&consent.recorded_by_staff)),
        scope: Some(pb::ConsentScope {
            recipient_agencies: consent
                .scope
                .recipient_agencies
                .iter()
                .map(ToString::to_string)
                .collect(),
            recipient_kinds: consent
                .scope
                .recipient_kinds
                .iter()
                .map(ToString::to_string)
                .collect(),
            purposes: consent
                .scope
                .purposes
                .iter()
                .map(ToString::to_string)
                .collect(),
        }),
        valid_from: date_text(consent.valid_from),
        valid_until: consent.valid_until.map(date_text).unwrap_or_default(),
        recorded_at: Some(timestamp(consent.recorded_at)),
        withdrawn_at: optional_timestamp(consent.withdrawn_at),
        evidence: consent.evidence.as_ref().map(sealed_out),
    }
}

pub fn feed_kind_out(kind: FeedEventKind) -> pb::FeedEventKind {
    match kind {
        FeedEventKind::ReferralReceived => pb::FeedEventKind::ReferralReceived,
        FeedEventKind::ReferralUpdated => pb::FeedEventKind::ReferralUpdated,
        FeedEventKind::Escalation => pb::FeedEventKind::Escalation,
        FeedEventKind::NoteReceived => pb::FeedEventKind::NoteReceived,
        FeedEventKind::NoteAcknowledged => pb::FeedEventKind::NoteAcknowledged,
        FeedEventKind::ConsentWithdrawn => pb::FeedEventKind::ConsentWithdrawn,
        FeedEventKind::CouncilUpdated => pb::FeedEventKind::CouncilUpdated,
        FeedEventKind::TransferReceived => pb::FeedEventKind::TransferReceived,
        FeedEventKind::TransferUpdated => pb::FeedEventKind::TransferUpdated,
        FeedEventKind::TransferEscalation => pb::FeedEventKind::TransferEscalation,
    }
}

/// A feed entry. Only the parties of a referral and its coordinators get entries about it, and
/// all of them may know its sender except where a reporter is hidden: such events carry no actor
/// unless the viewer was the recipient.
pub fn feed_event(event: &FeedEvent, about: Option<&ReferralEvent>) -> pb::FeedEvent {
    let entry = &event.entry;
    let hide_actor = matches!(
        about.map(|e| e.kind),
        Some(ReferralEventKind::Escalated {
            tier: EscalationTier::Coordinator,
            ..
        })
    );
    pb::FeedEvent {
        cursor: event.cursor,
        event_id: entry.event_id.to_string(),
        kind: feed_kind_out(entry.kind) as i32,
        case_id: entry
            .case_id
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        referral_id: entry
            .referral_id
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        note_id: entry
            .note_id
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        recorded_at: Some(timestamp(entry.recorded_at)),
        referral_event: about.map(|e| referral_event(e, hide_actor)),
    }
}

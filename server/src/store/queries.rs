//! The SQL shared by every backend. Runtime queries with `$1` placeholders work on SQLite and
//! PostgreSQL alike, so `Transaction` is implemented once, for every backend's [`Connection`](super::db::Connection).

use super::StoreError;
use super::db::{self, Connection, Row, query};
/// Joins municipality codes for a comma-separated column.
pub(crate) fn join_codes<T: std::fmt::Display>(codes: &[T]) -> String {
    codes
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Joins codes (agency ids, kinds, purposes) for a comma-separated column; none of them can hold
/// a comma.
pub(crate) fn join_list<T: AsRef<str>>(items: &[T]) -> String {
    items
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn split_list(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').filter(|item| !item.is_empty())
}

pub(crate) fn millis(at: Option<crate::domain::Timestamp>) -> Option<i64> {
    at.map(crate::domain::Timestamp::millis)
}

pub(crate) fn timestamp(millis: Option<i64>) -> Option<crate::domain::Timestamp> {
    millis.map(crate::domain::Timestamp::from_millis)
}

pub(crate) fn date_text(date: time::Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

pub(crate) fn parse_date(table: &'static str, text: &str) -> Result<time::Date, StoreError> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(text, format)
        .map_err(|_| StoreError::corrupt(table, format!("date {text:?}")))
}

/// Parses a stored code with `from_code`, or reports the row as corrupt.
pub(crate) fn code<T>(
    table: &'static str,
    column: &'static str,
    text: &str,
    from_code: impl Fn(&str) -> Option<T>,
) -> Result<T, StoreError> {
    from_code(text).ok_or_else(|| StoreError::corrupt(table, format!("{column} {text:?}")))
}

pub(crate) fn optional_code<T>(
    table: &'static str,
    column: &'static str,
    text: Option<String>,
    from_code: impl Fn(&str) -> Option<T>,
) -> Result<Option<T>, StoreError> {
    text.map(|text| code(table, column, &text, from_code))
        .transpose()
}

pub(crate) const CASE_COLUMNS: &str =
    "case_id, municipality, category, stage, opened_by, opened_at, header, council_registered";

pub(crate) const CONSENT_COLUMNS: &str = "consent_id, case_id, given_by, method, recorded_by, \
     staff_name, staff_role, recipient_agencies, recipient_kinds, purposes, valid_from, \
     valid_until, recorded_at, withdrawn_at, evidence";

pub(crate) const REFERRAL_COLUMNS: &str = "referral_id, case_id, municipality, from_agency, \
     to_agency, purpose, urgency, basis, consent_id, justification, hide_sender, body, staff_name, \
     staff_role, sent_at, deliver_by, respond_by, connect_by, confirm_by, delivery, delivered_at, \
     response, responded_at, response_reason, connection, connection_updated_at, \
     contact_attempts, not_connected_reason, linked_referral_id, confirmed_at, confirmed_by, \
     deadline_terms, close_reason, close_reason_text, closed_with_reason_at, closed_with_reason_by";

pub(crate) const EVENT_COLUMNS: &str = "event_id, referral_id, case_id, kind, action, timer, \
     actor_agency, staff_name, staff_role, occurred_at, recorded_at, reason_code, \
     not_connected_reason, note, delivery, response, connection, reason_text, reason_detail";

pub(crate) const NOTE_COLUMNS: &str = "note_id, case_id, from_agency, staff_name, staff_role, \
     purpose, basis, consent_id, justification, hide_sender, body, sent_at";

/// The stored form of a referral event's kind: (kind, action, timer, tier folded into timer).
pub(crate) fn event_kind_columns(
    kind: &crate::domain::records::ReferralEventKind,
) -> (&'static str, Option<&'static str>, Option<String>) {
    use crate::domain::records::ReferralEventKind;
    match kind {
        ReferralEventKind::Sent => ("sent", None, None),
        ReferralEventKind::Action(action) => ("action", Some(action.code()), None),
        ReferralEventKind::Escalated { timer, tier } => (
            "escalated",
            None,
            Some(format!("{}:{}", timer.code(), tier.code())),
        ),
    }
}

pub(crate) fn event_kind_from_columns(
    kind: &str,
    action: Option<String>,
    timer: Option<String>,
) -> Result<crate::domain::records::ReferralEventKind, StoreError> {
    use crate::domain::records::{EscalationTier, ReferralEventKind};
    use crate::domain::referral::{ReferralAction, TimerKind};
    const TABLE: &str = "referral_events";
    match kind {
        "sent" => Ok(ReferralEventKind::Sent),
        "action" => {
            let action = action.unwrap_or_default();
            Ok(ReferralEventKind::Action(code(
                TABLE,
                "action",
                &action,
                ReferralAction::from_code,
            )?))
        }
        "escalated" => {
            let timer = timer.unwrap_or_default();
            let (timer, tier) = timer
                .split_once(':')
                .ok_or_else(|| StoreError::corrupt(TABLE, "timer"))?;
            Ok(ReferralEventKind::Escalated {
                timer: code(TABLE, "timer", timer, TimerKind::from_code)?,
                tier: code(TABLE, "tier", tier, EscalationTier::from_code)?,
            })
        }
        other => Err(StoreError::corrupt(TABLE, format!("kind {other:?}"))),
    }
}

/// A page of an agency's feed after a cursor, each entry with the referral event it is about.
pub(crate) const FEED_PAGE: &str = "SELECT f.cursor, f.agency_id, f.event_id AS feed_event_id, \
     f.kind AS feed_kind, f.case_id AS feed_case_id, f.referral_id AS feed_referral_id, \
     f.note_id, f.referral_event_id, f.recorded_at AS feed_recorded_at, e.event_id, \
     e.referral_id, e.case_id, e.kind, e.action, e.timer, e.actor_agency, e.staff_name, \
     e.staff_role, e.occurred_at, e.recorded_at, e.reason_code, e.not_connected_reason, e.note, \
     e.delivery, e.response, e.connection, e.reason_text, e.reason_detail \
     FROM feed_events f LEFT JOIN referral_events e ON e.event_id = f.referral_event_id \
     WHERE f.agency_id = $1 AND f.cursor > $2 ORDER BY f.cursor LIMIT $3";

/// The last cursor an agency acknowledged in its feed.
pub(crate) const FEED_ACKNOWLEDGED: &str =
    "SELECT cursor FROM feed_acknowledgements WHERE agency_id = $1";

pub(crate) const AGENCY_COLUMNS: &str = "agency_id, kind, display_name, municipalities, \
     council_memberships, coordinator_of, status";

/// A value bound to a write that a backend may run later, together with the writes after it
/// (SQLite sends a transaction's writes to its connection in one go). Owned, and typed even when
/// null, because PostgreSQL needs the type of a null.
#[derive(Debug, Clone)]
pub(crate) enum Param {
    Int(Option<i64>),
    Text(Option<String>),
    Blob(Option<Vec<u8>>),
}

impl From<i64> for Param {
    fn from(value: i64) -> Self {
        Self::Int(Some(value))
    }
}

impl From<Option<i64>> for Param {
    fn from(value: Option<i64>) -> Self {
        Self::Int(value)
    }
}

impl From<&str> for Param {
    fn from(value: &str) -> Self {
        Self::Text(Some(value.to_owned()))
    }
}

impl From<String> for Param {
    fn from(value: String) -> Self {
        Self::Text(Some(value))
    }
}

impl From<Option<&str>> for Param {
    fn from(value: Option<&str>) -> Self {
        Self::Text(value.map(str::to_owned))
    }
}

impl From<Option<String>> for Param {
    fn from(value: Option<String>) -> Self {
        Self::Text(value)
    }
}

impl From<&String> for Param {
    fn from(value: &String) -> Self {
        Self::Text(Some(value.clone()))
    }
}

impl From<Option<Vec<u8>>> for Param {
    fn from(value: Option<Vec<u8>>) -> Self {
        Self::Blob(value)
    }
}

impl From<&Vec<u8>> for Param {
    fn from(value: &Vec<u8>) -> Self {
        Self::Blob(Some(value.clone()))
    }
}

impl From<&[u8]> for Param {
    fn from(value: &[u8]) -> Self {
        Self::Blob(Some(value.to_vec()))
    }
}

impl From<Option<&[u8]>> for Param {
    fn from(value: Option<&[u8]>) -> Self {
        Self::Blob(value.map(<[u8]>::to_vec))
    }
}

/// The parameters of one statement, in placeholder order: `params![a, b, c]` binds `$1, $2, $3`.
macro_rules! params {
    ($($value:expr),* $(,)?) => {
        vec![$($crate::store::queries::Param::from($value)),*]
    };
}
pub(crate) use params;

impl crate::store::Lookup<'_> {
    /// The statement that makes this read.
    pub(crate) fn statement(&self) -> (String, Vec<Param>) {
        use crate::store::Lookup;
        match *self {
            Lookup::CaseFor(case, agency) => (
                format!(
                    "SELECT {CASE_COLUMNS}, EXISTS (SELECT 1 FROM case_participants p \
                     WHERE p.case_id = $1 AND p.agency_id = $2) AS participates \
                     FROM cases WHERE case_id = $1"
                ),
                params![case.as_str(), agency.as_str()],
            ),
            Lookup::Agency(agency) => (
                format!("SELECT {AGENCY_COLUMNS} FROM agencies WHERE agency_id = $1"),
                params![agency.as_str()],
            ),
            Lookup::Consent(consent) => (
                format!("SELECT {CONSENT_COLUMNS} FROM consents WHERE consent_id = $1"),
                params![consent.as_str()],
            ),
            Lookup::Consents(case) => (
                format!(
                    "SELECT {CONSENT_COLUMNS} FROM consents WHERE case_id = $1 \
                     ORDER BY recorded_at, consent_id"
                ),
                params![case.as_str()],
            ),
            Lookup::Referral(referral) => (
                format!("SELECT {REFERRAL_COLUMNS} FROM referrals WHERE referral_id = $1"),
                params![referral.as_str()],
            ),
            Lookup::AuditHead => (
                "SELECT sequence, hash FROM audit_records ORDER BY sequence DESC LIMIT 1"
                    .to_owned(),
                Vec::new(),
            ),
            Lookup::IdempotentResponse {
                agency,
                operation,
                key,
            } => (
                "SELECT request_digest, response FROM idempotency_keys \
                 WHERE agency_id = $1 AND operation = $2 AND idempotency_key = $3"
                    .to_owned(),
                params![agency.as_str(), operation, key],
            ),
        }
    }
}

/// A referral's state, in the column order `delivery` .. `closed` that inserting and updating
/// a referral share.
pub(crate) fn state_params(s: &crate::domain::referral::ReferralState) -> Vec<Param> {
    params![
        s.delivery.code(),
        millis(s.delivered_at),
        s.response.code(),
        millis(s.responded_at),
        s.response_reason.as_deref(),
        s.connection.code(),
        millis(s.connection_updated_at),
        i64::from(s.contact_attempts),
        s.not_connected_reason.map(|c| c.code()),
        s.linked_referral_id.as_ref().map(|id| id.as_str()),
        millis(s.confirmed_at),
        s.confirmed_by.as_ref().map(|a| a.as_str()),
        i64::from(s.is_closed()),
    ]
}

/// Binds `params` to `query` in order.
pub(crate) fn bind_params<'q, DB: sqlx::Database>(
    mut query: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    params: &'q [Param],
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<&'q [u8]>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    for param in params {
        query = match param {
            Param::Int(value) => query.bind(*value),
            Param::Text(value) => query.bind(value.as_deref()),
            Param::Blob(value) => query.bind(value.as_deref()),
        };
    }
    query
}

fn parse_codes(
    table: &'static str,
    text: String,
) -> Result<Vec<crate::domain::Municipality>, StoreError> {
    text.split(',')
        .filter(|code| !code.is_empty())
        .map(|code| {
            crate::domain::Municipality::parse(code)
                .ok_or_else(|| StoreError::corrupt(table, format!("municipality {code:?}")))
        })
        .collect()
}

pub(crate) fn agency_from_row(row: &Row) -> Result<crate::domain::Agency, StoreError> {
    use crate::domain::{AgencyId, AgencyKind, AgencyStatus};
    let id: String = row.try_get("agency_id")?;
    let kind: String = row.try_get("kind")?;
    let status: String = row.try_get("status")?;
    Ok(crate::domain::Agency {
        id: AgencyId::parse(&id).ok_or_else(|| StoreError::corrupt("agencies", "agency_id"))?,
        kind: AgencyKind::parse(&kind).ok_or_else(|| StoreError::corrupt("agencies", "kind"))?,
        display_name: row.try_get("display_name")?,
        municipalities: parse_codes("agencies", row.try_get("municipalities")?)?,
        council_memberships: parse_codes("agencies", row.try_get("council_memberships")?)?,
        coordinator_of: parse_codes("agencies", row.try_get("coordinator_of")?)?,
        status: AgencyStatus::from_code(&status)
            .ok_or_else(|| StoreError::corrupt("agencies", "status"))?,
    })
}

pub(crate) fn case_from_row(row: &Row) -> Result<crate::domain::records::Case, StoreError> {
    use crate::domain::*;
    use crate::store::queries::code;
    const T: &str = "cases";
    let id: String = row.try_get("case_id")?;
    let municipality: String = row.try_get("municipality")?;
    let category: String = row.try_get("category")?;
    let stage: String = row.try_get("stage")?;
    let opened_by: String = row.try_get("opened_by")?;
    let registered: i64 = row.try_get("council_registered")?;
    Ok(crate::domain::records::Case {
        id: code(T, "case_id", &id, CaseId::parse)?,
        municipality: code(T, "municipality", &municipality, Municipality::parse)?,
        category: code(T, "category", &category, CaseCategory::from_code)?,
        stage: code(T, "stage", &stage, CaseStage::from_code)?,
        opened_by: code(T, "opened_by", &opened_by, AgencyId::parse)?,
        opened_at: Timestamp::from_millis(row.try_get("opened_at")?),
        header: Sealed(row.try_get("header")?),
        council_registered: registered != 0,
    })
}

pub(crate) fn consent_from_row(row: &Row) -> Result<crate::domain::consent::Consent, StoreError> {
    use crate::domain::consent::{Consent, ConsentGiver, ConsentMethod, ConsentScope};
    use crate::domain::*;
    use crate::store::queries::{code, parse_date, split_list, timestamp};
    const T: &str = "consents";
    let id: String = row.try_get("consent_id")?;
    let case_id: String = row.try_get("case_id")?;
    let given_by: String = row.try_get("given_by")?;
    let method: String = row.try_get("method")?;
    let recorded_by: String = row.try_get("recorded_by")?;
    let agencies: String = row.try_get("recipient_agencies")?;
    let kinds: String = row.try_get("recipient_kinds")?;
    let purposes: String = row.try_get("purposes")?;
    let valid_from: String = row.try_get("valid_from")?;
    let valid_until: Option<String> = row.try_get("valid_until")?;
    let evidence: Option<Vec<u8>> = row.try_get("evidence")?;
    Ok(Consent {
        id: code(T, "consent_id", &id, ConsentId::parse)?,
        case_id: code(T, "case_id", &case_id, CaseId::parse)?,
        given_by: code(T, "given_by", &given_by, ConsentGiver::from_code)?,
        method: code(T, "method", &method, ConsentMethod::from_code)?,
        recorded_by: code(T, "recorded_by", &recorded_by, AgencyId::parse)?,
        recorded_by_staff: Staff {
            name: row.try_get("staff_name")?,
            role: row.try_get("staff_role")?,
        },
        scope: ConsentScope {
            recipient_agencies: split_list(&agencies)
                .map(|a| code(T, "recipient_agencies", a, AgencyId::parse))
                .collect::<Result<_, _>>()?,
            recipient_kinds: split_list(&kinds)
                .map(|k| code(T, "recipient_kinds", k, AgencyKind::parse))
                .collect::<Result<_, _>>()?,
            purposes: split_list(&purposes)
                .map(|p| code(T, "purposes", p, Purpose::parse))
                .collect::<Result<_, _>>()?,
        },
        valid_from: parse_date(T, &valid_from)?,
        valid_until: valid_until.map(|d| parse_date(T, &d)).transpose()?,
        recorded_at: Timestamp::from_millis(row.try_get("recorded_at")?),
        withdrawn_at: timestamp(row.try_get("withdrawn_at")?),
        evidence: evidence.map(Sealed),
    })
}

/// A referral's state columns, read alike wherever a statement selects them.
pub(crate) fn referral_state_from_row(
    row: &Row,
) -> Result<crate::domain::referral::ReferralState, StoreError> {
    use crate::domain::referral::*;
    use crate::domain::*;
    use crate::store::queries::{code, optional_code, timestamp};
    const T: &str = "referrals";
    let text =
        |column: &str| -> Result<String, StoreError> { Ok(row.try_get::<String, _>(column)?) };
    let attempts: i64 = row.try_get("contact_attempts")?;
    Ok(ReferralState {
        delivery: code(T, "delivery", &text("delivery")?, DeliveryState::from_code)?,
        delivered_at: timestamp(row.try_get("delivered_at")?),
        response: code(T, "response", &text("response")?, ResponseState::from_code)?,
        responded_at: timestamp(row.try_get("responded_at")?),
        response_reason: row.try_get("response_reason")?,
        connection: code(
            T,
            "connection",
            &text("connection")?,
            ConnectionState::from_code,
        )?,
        connection_updated_at: timestamp(row.try_get("connection_updated_at")?),
        contact_attempts: u32::try_from(attempts)
            .map_err(|_| StoreError::corrupt(T, "contact_attempts"))?,
        not_connected_reason: optional_code(
            T,
            "not_connected_reason",
            row.try_get("not_connected_reason")?,
            NotConnectedReason::from_code,
        )?,
        linked_referral_id: optional_code(
            T,
            "linked_referral_id",
            row.try_get("linked_referral_id")?,
            ReferralId::parse,
        )?,
        confirmed_at: timestamp(row.try_get("confirmed_at")?),
        confirmed_by: optional_code(
            T,
            "confirmed_by",
            row.try_get("confirmed_by")?,
            AgencyId::parse,
        )?,
    })
}

pub(crate) fn referral_from_row(row: &Row) -> Result<crate::domain::records::Referral, StoreError> {
    use crate::domain::basis::LegalBasisKind;
    use crate::domain::referral::*;
    use crate::domain::*;
    use crate::store::queries::{code, optional_code, timestamp};
    const T: &str = "referrals";
    let text =
        |column: &str| -> Result<String, StoreError> { Ok(row.try_get::<String, _>(column)?) };
    let hide_sender: i64 = row.try_get("hide_sender")?;
    Ok(crate::domain::records::Referral {
        id: code(T, "referral_id", &text("referral_id")?, ReferralId::parse)?,
        case_id: code(T, "case_id", &text("case_id")?, CaseId::parse)?,
        municipality: code(
            T,
            "municipality",
            &text("municipality")?,
            Municipality::parse,
        )?,
        from_agency: code(T, "from_agency", &text("from_agency")?, AgencyId::parse)?,
        to_agency: code(T, "to_agency", &text("to_agency")?, AgencyId::parse)?,
        purpose: code(T, "purpose", &text("purpose")?, Purpose::parse)?,
        urgency: code(T, "urgency", &text("urgency")?, Urgency::from_code)?,
        basis: code(T, "basis", &text("basis")?, LegalBasisKind::from_code)?,
        consent_id: optional_code(
            T,
            "consent_id",
            row.try_get("consent_id")?,
            ConsentId::parse,
        )?,
        justification: row.try_get("justification")?,
        hide_sender: hide_sender != 0,
        body: Sealed(row.try_get("body")?),
        staff: Staff {
            name: row.try_get("staff_name")?,
            role: row.try_get("staff_role")?,
        },
        sent_at: Timestamp::from_millis(row.try_get("sent_at")?),
        deadlines: Deadlines {
            deliver_by: Timestamp::from_millis(row.try_get("deliver_by")?),
            respond_by: Timestamp::from_millis(row.try_get("respond_by")?),
            connect_by: Timestamp::from_millis(row.try_get("connect_by")?),
            confirm_by: Timestamp::from_millis(row.try_get("confirm_by")?),
        },
        deadline_terms: optional_code(
            T,
            "deadline_terms",
            row.try_get("deadline_terms")?,
            |code: &str| crate::domain::deadlines::DeadlineTerms::from_code(code),
        )?,
        state: referral_state_from_row(row)?,
        closed_with_reason: match optional_code(
            T,
            "close_reason",
            row.try_get("close_reason")?,
            CloseReason::from_code,
        )? {
            Some(reason) => Some(ClosedWithReason {
                reason,
                text: row.try_get("close_reason_text")?,
                at: timestamp(row.try_get("closed_with_reason_at")?)
                    .ok_or_else(|| StoreError::corrupt(T, "closed_with_reason_at"))?,
                by: optional_code(
                    T,
                    "closed_with_reason_by",
                    row.try_get("closed_with_reason_by")?,
                    AgencyId::parse,
                )?
                .ok_or_else(|| StoreError::corrupt(T, "closed_with_reason_by"))?,
            }),
            None => None,
        },
    })
}

pub(crate) fn event_from_row(
    row: &Row,
) -> Result<crate::domain::records::ReferralEvent, StoreError> {
    use crate::domain::referral::*;
    use crate::domain::*;
    use crate::store::queries::{code, event_kind_from_columns, optional_code};
    const T: &str = "referral_events";
    let text =
        |column: &str| -> Result<String, StoreError> { Ok(row.try_get::<String, _>(column)?) };
    let staff_name: Option<String> = row.try_get("staff_name")?;
    let staff_role: Option<String> = row.try_get("staff_role")?;
    let note: Option<Vec<u8>> = row.try_get("note")?;
    Ok(crate::domain::records::ReferralEvent {
        id: code(T, "event_id", &text("event_id")?, EventId::parse)?,
        referral_id: code(T, "referral_id", &text("referral_id")?, ReferralId::parse)?,
        case_id: code(T, "case_id", &text("case_id")?, CaseId::parse)?,
        kind: event_kind_from_columns(
            &text("kind")?,
            row.try_get("action")?,
            row.try_get("timer")?,
        )?,
        actor_agency: optional_code(
            T,
            "actor_agency",
            row.try_get("actor_agency")?,
            AgencyId::parse,
        )?,
        actor_staff: staff_name
            .zip(staff_role)
            .map(|(name, role)| Staff { name, role }),
        occurred_at: Timestamp::from_millis(row.try_get("occurred_at")?),
        recorded_at: Timestamp::from_millis(row.try_get("recorded_at")?),
        reason_code: row.try_get("reason_code")?,
        not_connected_reason: optional_code(
            T,
            "not_connected_reason",
            row.try_get("not_connected_reason")?,
            NotConnectedReason::from_code,
        )?,
        reason_text: row.try_get("reason_text")?,
        note: note.map(Sealed),
        reason_detail: row
            .try_get::<Option<Vec<u8>>, _>("reason_detail")?
            .map(Sealed),
        delivery: code(T, "delivery", &text("delivery")?, DeliveryState::from_code)?,
        response: code(T, "response", &text("response")?, ResponseState::from_code)?,
        connection: code(
            T,
            "connection",
            &text("connection")?,
            ConnectionState::from_code,
        )?,
    })
}

pub(crate) fn note_from_row(row: &Row) -> Result<crate::domain::records::Note, StoreError> {
    use crate::domain::basis::LegalBasisKind;
    use crate::domain::*;
    use crate::store::queries::{code, optional_code};
    const T: &str = "notes";
    let text =
        |column: &str| -> Result<String, StoreError> { Ok(row.try_get::<String, _>(column)?) };
    let hide_sender: i64 = row.try_get("hide_sender")?;
    Ok(crate::domain::records::Note {
        id: code(T, "note_id", &text("note_id")?, NoteId::parse)?,
        case_id: code(T, "case_id", &text("case_id")?, CaseId::parse)?,
        from_agency: code(T, "from_agency", &text("from_agency")?, AgencyId::parse)?,
        staff: Staff {
            name: row.try_get("staff_name")?,
            role: row.try_get("staff_role")?,
        },
        purpose: code(T, "purpose", &text("purpose")?, Purpose::parse)?,
        basis: code(T, "basis", &text("basis")?, LegalBasisKind::from_code)?,
        consent_id: optional_code(
            T,
            "consent_id",
            row.try_get("consent_id")?,
            ConsentId::parse,
        )?,
        justification: row.try_get("justification")?,
        hide_sender: hide_sender != 0,
        body: Sealed(row.try_get("body")?),
        sent_at: Timestamp::from_millis(row.try_get("sent_at")?),
        recipients: Vec::new(),
    })
}

/// The acknowledged cursor from its row, 0 when the agency never acknowledged.
pub(crate) fn acknowledged_from_row(row: Option<&Row>) -> Result<u64, StoreError> {
    match row {
        Some(row) => Ok(u64::try_from(row.try_get::<i64, _>("cursor")?).unwrap_or(0)),
        None => Ok(0),
    }
}

pub(crate) fn feed_from_row(
    row: &Row,
) -> Result<
    (
        crate::domain::records::FeedEvent,
        Option<crate::domain::records::ReferralEvent>,
    ),
    StoreError,
> {
    use crate::domain::records::{FeedEntry, FeedEvent, FeedEventKind};
    use crate::domain::*;
    use crate::store::queries::{code, optional_code};
    const T: &str = "feed_events";
    let cursor: i64 = row.try_get("cursor")?;
    let agency: String = row.try_get("agency_id")?;
    let event_id: String = row.try_get("feed_event_id")?;
    let kind: String = row.try_get("feed_kind")?;
    let referral_event_id: Option<String> = row.try_get("referral_event_id")?;
    let entry = FeedEntry {
        agency_id: code(T, "agency_id", &agency, AgencyId::parse)?,
        event_id: code(T, "event_id", &event_id, EventId::parse)?,
        kind: code(T, "kind", &kind, FeedEventKind::from_code)?,
        case_id: optional_code(T, "case_id", row.try_get("feed_case_id")?, CaseId::parse)?,
        referral_id: optional_code(
            T,
            "referral_id",
            row.try_get("feed_referral_id")?,
            ReferralId::parse,
        )?,
        note_id: optional_code(T, "note_id", row.try_get("note_id")?, NoteId::parse)?,
        referral_event_id: optional_code(
            T,
            "referral_event_id",
            referral_event_id.clone(),
            EventId::parse,
        )?,
        recorded_at: Timestamp::from_millis(row.try_get("feed_recorded_at")?),
    };
    let event = match row.try_get::<Option<String>, _>("event_id")? {
        Some(_) => Some(event_from_row(row)?),
        None => None,
    };
    Ok((
        FeedEvent {
            cursor: u64::try_from(cursor).map_err(|_| StoreError::corrupt(T, "cursor"))?,
            entry,
        },
        event,
    ))
}

#[async_trait::async_trait]
impl<C: Connection> crate::store::Transaction for C {
    async fn agency(
        &mut self,
        id: &crate::domain::AgencyId,
    ) -> Result<Option<crate::domain::Agency>, StoreError> {
        let rows = self.look_up(crate::store::Lookup::Agency(id)).await?;
        rows.first().map(agency_from_row).transpose()
    }

    async fn agencies(&mut self) -> Result<Vec<crate::domain::Agency>, StoreError> {
        let rows = query(format!(
            "SELECT {AGENCY_COLUMNS} FROM agencies ORDER BY agency_id"
        ))
        .fetch_all(self)
        .await?;
        rows.iter().map(agency_from_row).collect()
    }

    async fn insert_agency(
        &mut self,
        agency: &crate::domain::Agency,
        at: crate::domain::Timestamp,
    ) -> Result<(), StoreError> {
        use crate::store::queries::join_codes;
        let result = query(
            "INSERT INTO agencies (agency_id, kind, display_name, municipalities, \
                     council_memberships, coordinator_of, status, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) ON CONFLICT DO NOTHING",
        )
        .bind(agency.id.as_str())
        .bind(agency.kind.as_str())
        .bind(&agency.display_name)
        .bind(join_codes(&agency.municipalities))
        .bind(join_codes(&agency.council_memberships))
        .bind(join_codes(&agency.coordinator_of))
        .bind(agency.status.code())
        .bind(at.millis())
        .execute(self)
        .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!("agency {}", agency.id)));
        }
        Ok(())
    }

    async fn update_agency(
        &mut self,
        agency: &crate::domain::Agency,
        at: crate::domain::Timestamp,
    ) -> Result<bool, StoreError> {
        use crate::store::queries::join_codes;
        let result = query(
            "UPDATE agencies SET kind = $1, display_name = $2, municipalities = $3, \
                     council_memberships = $4, coordinator_of = $5, updated_at = $6 \
                     WHERE agency_id = $7",
        )
        .bind(agency.kind.as_str())
        .bind(&agency.display_name)
        .bind(join_codes(&agency.municipalities))
        .bind(join_codes(&agency.council_memberships))
        .bind(join_codes(&agency.coordinator_of))
        .bind(at.millis())
        .bind(agency.id.as_str())
        .execute(self)
        .await?;
        Ok(result.rows_affected() > 0)
    }

    async fn set_agency_status(
        &mut self,
        id: &crate::domain::AgencyId,
        status: crate::domain::AgencyStatus,
        at: crate::domain::Timestamp,
    ) -> Result<bool, StoreError> {
        let result = query("UPDATE agencies SET status = $1, updated_at = $2 WHERE agency_id = $3")
            .bind(status.code())
            .bind(at.millis())
            .bind(id.as_str())
            .execute(self)
            .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn revoke_certificate(
        &mut self,
        fingerprint: &str,
        reason: &str,
        at: crate::domain::Timestamp,
    ) -> Result<(), StoreError> {
        query(
            "INSERT INTO revoked_certificates (fingerprint, reason, revoked_at) \
                     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(fingerprint)
        .bind(reason)
        .bind(at.millis())
        .execute(self)
        .await?;
        Ok(())
    }

    async fn record_certificate_seen(
        &mut self,
        agency: &crate::domain::AgencyId,
        fingerprint: &str,
        not_after: i64,
        at: crate::domain::Timestamp,
    ) -> Result<(), StoreError> {
        query(
            "INSERT INTO agency_certificates (agency_id, fingerprint, not_after, \
                     first_seen_at, last_seen_at) VALUES ($1, $2, $3, $4, $4) \
                     ON CONFLICT (agency_id, fingerprint) \
                     DO UPDATE SET last_seen_at = excluded.last_seen_at",
        )
        .bind(agency.as_str())
        .bind(fingerprint)
        .bind(not_after)
        .bind(at.millis())
        .execute(self)
        .await?;
        Ok(())
    }

    async fn last_seen_certificates(
        &mut self,
    ) -> Result<Vec<crate::domain::agency::SeenCertificate>, StoreError> {
        let rows = query(
            "SELECT agency_id, fingerprint, not_after, last_seen_at \
                     FROM agency_certificates ORDER BY agency_id, last_seen_at, not_after",
        )
        .fetch_all(self)
        .await?;
        let mut last: Vec<crate::domain::agency::SeenCertificate> = Vec::new();
        for row in rows {
            let id: String = row.try_get("agency_id")?;
            let agency_id = crate::domain::AgencyId::parse(&id)
                .ok_or_else(|| StoreError::corrupt("agency_certificates", id.clone()))?;
            let seen = crate::domain::agency::SeenCertificate {
                agency_id,
                fingerprint: row.try_get("fingerprint")?,
                not_after: row.try_get("not_after")?,
                last_seen_at: crate::domain::Timestamp::from_millis(row.try_get("last_seen_at")?),
            };
            // Rows come oldest first per agency: the last one wins.
            match last.last_mut() {
                Some(previous) if previous.agency_id == seen.agency_id => *previous = seen,
                _ => last.push(seen),
            }
        }
        Ok(last)
    }

    async fn is_certificate_revoked(&mut self, fingerprint: &str) -> Result<bool, StoreError> {
        let row = query("SELECT 1 FROM revoked_certificates WHERE fingerprint = $1")
            .bind(fingerprint)
            .fetch_optional(self)
            .await?;
        Ok(row.is_some())
    }

    async fn insert_case(&mut self, case: &crate::domain::records::Case) -> Result<(), StoreError> {
        query(
                    "INSERT INTO cases (case_id, municipality, category, stage, opened_by, \
                     opened_at, header, council_registered) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(case.id.as_str())
                .bind(case.municipality.as_str())
                .bind(case.category.code())
                .bind(case.stage.code())
                .bind(case.opened_by.as_str())
                .bind(case.opened_at.millis())
                .bind(&case.header.0)
                .bind(i64::from(case.council_registered))
                .execute(self)
                .await?;
        Ok(())
    }

    async fn case(
        &mut self,
        id: &crate::domain::CaseId,
    ) -> Result<Option<crate::domain::records::Case>, StoreError> {
        use crate::store::queries::CASE_COLUMNS;
        let row = query(format!(
            "SELECT {CASE_COLUMNS} FROM cases WHERE case_id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(self)
        .await?;
        row.as_ref().map(case_from_row).transpose()
    }

    async fn case_for(
        &mut self,
        id: &crate::domain::CaseId,
        agency: &crate::domain::AgencyId,
    ) -> Result<Option<(crate::domain::records::Case, bool)>, StoreError> {
        let rows = self
            .look_up(crate::store::Lookup::CaseFor(id, agency))
            .await?;
        match rows.first() {
            Some(row) => Ok(Some((case_from_row(row)?, row.try_get("participates")?))),
            None => Ok(None),
        }
    }

    async fn participants(
        &mut self,
        case: &crate::domain::CaseId,
    ) -> Result<Vec<crate::domain::records::Participant>, StoreError> {
        let rows = query(
            "SELECT agency_id, since FROM case_participants WHERE case_id = $1 \
                     ORDER BY since, agency_id",
        )
        .bind(case.as_str())
        .fetch_all(self)
        .await?;
        rows.iter()
            .map(|row| {
                let agency: String = row.try_get("agency_id")?;
                Ok(crate::domain::records::Participant {
                    agency_id: crate::store::queries::code(
                        "case_participants",
                        "agency_id",
                        &agency,
                        crate::domain::AgencyId::parse,
                    )?,
                    since: crate::domain::Timestamp::from_millis(row.try_get("since")?),
                })
            })
            .collect()
    }

    async fn add_participants(
        &mut self,
        case: &crate::domain::CaseId,
        agencies: &[&crate::domain::AgencyId],
        since: crate::domain::Timestamp,
    ) -> Result<(), StoreError> {
        let mut unique: Vec<&crate::domain::AgencyId> = Vec::with_capacity(agencies.len());
        for agency in agencies {
            if !unique.contains(agency) {
                unique.push(agency);
            }
        }
        if unique.is_empty() {
            return Ok(());
        }
        // ($1 case, $2 since, $3.. one agency each)
        let rows: Vec<String> = (0..unique.len())
            .map(|n| format!("($1, ${}, $2)", n + 3))
            .collect();
        let sql = format!(
            "INSERT INTO case_participants (case_id, agency_id, since) VALUES {} \
                     ON CONFLICT DO NOTHING",
            rows.join(", ")
        );
        let mut params = crate::store::queries::params![case.as_str(), since.millis()];
        params.extend(unique.iter().map(|agency| agency.as_str().into()));
        db::write(self, &sql, params).await
    }

    async fn visible_cases(
        &mut self,
        agency: &crate::domain::AgencyId,
        coordinated: &[crate::domain::Municipality],
        municipality: Option<&crate::domain::Municipality>,
        after: Option<&crate::domain::CaseId>,
        limit: u32,
    ) -> Result<Vec<crate::domain::records::Case>, StoreError> {
        use crate::store::queries::{CASE_COLUMNS, join_codes};
        // Coordinated municipalities travel as one comma-joined parameter, matched with
        // a delimiter-safe containment test that both SQLite and PostgreSQL understand.
        let sql = format!(
            "SELECT {CASE_COLUMNS} FROM cases WHERE \
                     (case_id IN (SELECT case_id FROM case_participants WHERE agency_id = $1) \
                      OR (',' || $2 || ',') LIKE ('%,' || municipality || ',%')) \
                     AND ($3 = '' OR municipality = $3) \
                     AND case_id > $4 \
                     ORDER BY case_id LIMIT $5"
        );
        let rows = query(&sql)
            .bind(agency.as_str())
            .bind(join_codes(coordinated))
            .bind(municipality.map(|m| m.as_str()).unwrap_or(""))
            .bind(after.map(|id| id.as_str()).unwrap_or(""))
            .bind(i64::from(limit))
            .fetch_all(self)
            .await?;
        rows.iter().map(case_from_row).collect()
    }

    async fn insert_consent(
        &mut self,
        consent: &crate::domain::consent::Consent,
    ) -> Result<(), StoreError> {
        use crate::store::queries::{date_text, join_list, millis};
        let scope = &consent.scope;
        query(
            "INSERT INTO consents (consent_id, case_id, given_by, method, recorded_by, \
                     staff_name, staff_role, recipient_agencies, recipient_kinds, purposes, \
                     valid_from, valid_until, recorded_at, withdrawn_at, evidence) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(consent.id.as_str())
        .bind(consent.case_id.as_str())
        .bind(consent.given_by.code())
        .bind(consent.method.code())
        .bind(consent.recorded_by.as_str())
        .bind(&consent.recorded_by_staff.name)
        .bind(&consent.recorded_by_staff.role)
        .bind(join_list(
            &scope
                .recipient_agencies
                .iter()
                .map(|a| a.as_str())
                .collect::<Vec<_>>(),
        ))
        .bind(join_list(
            &scope
                .recipient_kinds
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>(),
        ))
        .bind(join_list(
            &scope
                .purposes
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>(),
        ))
        .bind(date_text(consent.valid_from))
        .bind(consent.valid_until.map(date_text))
        .bind(consent.recorded_at.millis())
        .bind(millis(consent.withdrawn_at))
        .bind(consent.evidence.as_ref().map(|e| e.0.clone()))
        .execute(self)
        .await?;
        Ok(())
    }

    async fn consent(
        &mut self,
        id: &crate::domain::ConsentId,
    ) -> Result<Option<crate::domain::consent::Consent>, StoreError> {
        let rows = self.look_up(crate::store::Lookup::Consent(id)).await?;
        rows.first().map(consent_from_row).transpose()
    }

    async fn consents(
        &mut self,
        case: &crate::domain::CaseId,
    ) -> Result<Vec<crate::domain::consent::Consent>, StoreError> {
        let rows = self.look_up(crate::store::Lookup::Consents(case)).await?;
        rows.iter().map(consent_from_row).collect()
    }

    async fn withdraw_consent(
        &mut self,
        id: &crate::domain::ConsentId,
        at: crate::domain::Timestamp,
    ) -> Result<(), StoreError> {
        query(
            "UPDATE consents SET withdrawn_at = $1 WHERE consent_id = $2 \
                     AND withdrawn_at IS NULL",
        )
        .bind(at.millis())
        .bind(id.as_str())
        .execute(self)
        .await?;
        Ok(())
    }

    async fn insert_referral(
        &mut self,
        referral: &crate::domain::records::Referral,
    ) -> Result<(), StoreError> {
        let r = referral;
        let mut params = crate::store::queries::params![
            r.id.as_str(),
            r.case_id.as_str(),
            r.municipality.as_str(),
            r.from_agency.as_str(),
            r.to_agency.as_str(),
            r.purpose.as_str(),
            r.urgency.code(),
            r.basis.code(),
            r.consent_id.as_ref().map(|c| c.as_str()),
            r.justification.clone(),
            i64::from(r.hide_sender),
            &r.body.0,
            &r.staff.name,
            &r.staff.role,
            r.sent_at.millis(),
            r.deadlines.deliver_by.millis(),
            r.deadlines.respond_by.millis(),
            r.deadlines.connect_by.millis(),
            r.deadlines.confirm_by.millis(),
        ];
        // $20..$32
        params.extend(crate::store::queries::state_params(&r.state));
        params.push(r.deadline_terms.map(|t| t.code()).into());
        db::write(
            self,
            "INSERT INTO referrals (referral_id, case_id, municipality, from_agency, \
                     to_agency, purpose, urgency, basis, consent_id, justification, hide_sender, \
                     body, staff_name, staff_role, sent_at, deliver_by, respond_by, connect_by, \
                     confirm_by, delivery, delivered_at, response, responded_at, response_reason, \
                     connection, connection_updated_at, contact_attempts, not_connected_reason, \
                     linked_referral_id, confirmed_at, confirmed_by, closed, deadline_terms) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
                     $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, \
                     $31, $32, $33)",
            params,
        )
        .await
    }

    async fn referral(
        &mut self,
        id: &crate::domain::ReferralId,
    ) -> Result<Option<crate::domain::records::Referral>, StoreError> {
        let rows = self.look_up(crate::store::Lookup::Referral(id)).await?;
        rows.first().map(referral_from_row).transpose()
    }

    async fn update_referral_state(
        &mut self,
        id: &crate::domain::ReferralId,
        s: &crate::domain::referral::ReferralState,
    ) -> Result<(), StoreError> {
        let mut params = crate::store::queries::state_params(s);
        params.push(id.as_str().into());
        db::write(
                    self,
                    "UPDATE referrals SET delivery = $1, delivered_at = $2, response = $3, \
                     responded_at = $4, response_reason = $5, connection = $6, \
                     connection_updated_at = $7, contact_attempts = $8, not_connected_reason = $9, \
                     linked_referral_id = $10, confirmed_at = $11, confirmed_by = $12, closed = $13 \
                     WHERE referral_id = $14",
                    params,
                )
                .await
    }

    async fn record_closed_with_reason(
        &mut self,
        id: &crate::domain::ReferralId,
        closed: &crate::domain::referral::ClosedWithReason,
    ) -> Result<(), StoreError> {
        db::write(
            self,
            "UPDATE referrals SET close_reason = $1, close_reason_text = $2, \
                     closed_with_reason_at = $3, closed_with_reason_by = $4 WHERE referral_id = $5",
            crate::store::queries::params![
                closed.reason.code(),
                closed.text.clone(),
                closed.at.millis(),
                closed.by.as_str(),
                id.as_str(),
            ],
        )
        .await
    }

    async fn case_referrals(
        &mut self,
        case: &crate::domain::CaseId,
    ) -> Result<Vec<crate::domain::records::Referral>, StoreError> {
        use crate::store::queries::REFERRAL_COLUMNS;
        let rows = query(format!(
            "SELECT {REFERRAL_COLUMNS} FROM referrals WHERE case_id = $1 \
                     ORDER BY sent_at, referral_id"
        ))
        .bind(case.as_str())
        .fetch_all(self)
        .await?;
        rows.iter().map(referral_from_row).collect()
    }

    async fn agency_referrals(
        &mut self,
        query: &crate::store::ReferralQuery<'_>,
    ) -> Result<Vec<crate::domain::records::Referral>, StoreError> {
        use crate::store::queries::REFERRAL_COLUMNS;
        let sql = format!(
            "SELECT {REFERRAL_COLUMNS} FROM referrals WHERE \
                     (($2 = 1 AND from_agency = $1) OR ($3 = 1 AND to_agency = $1)) \
                     AND ($4 = '' OR case_id = $4) \
                     AND ($5 = 1 OR closed = 0) \
                     AND ($6 = '' OR referral_id < $6) \
                     ORDER BY referral_id DESC LIMIT $7"
        );
        let rows = db::query(&sql)
            .bind(query.agency.as_str())
            .bind(i64::from(query.sent))
            .bind(i64::from(query.received))
            .bind(query.case.map(|c| c.as_str()).unwrap_or(""))
            .bind(i64::from(query.include_closed))
            .bind(query.before.map(|r| r.as_str()).unwrap_or(""))
            .bind(i64::from(query.limit))
            .fetch_all(self)
            .await?;
        rows.iter().map(referral_from_row).collect()
    }

    async fn open_referrals_due(
        &mut self,
        due_by: crate::domain::Timestamp,
        municipality: Option<&crate::domain::Municipality>,
    ) -> Result<Vec<crate::domain::records::Referral>, StoreError> {
        use crate::store::queries::REFERRAL_COLUMNS;
        // The deliver-by deadline is the earliest of the four, so an open referral with
        // nothing due yet is skipped by the index alone.
        let rows = query(format!(
                    "SELECT {REFERRAL_COLUMNS} FROM referrals WHERE closed = 0 \
                     AND ($2 = '' OR municipality = $2) \
                     AND (deliver_by <= $1 OR respond_by <= $1 OR connect_by <= $1 OR confirm_by <= $1) \
                     ORDER BY referral_id"
                ))
                .bind(due_by.millis())
                .bind(municipality.map(|m| m.as_str()).unwrap_or(""))
                .fetch_all(self)
                .await?;
        rows.iter().map(referral_from_row).collect()
    }

    async fn open_referrals_without_consent(
        &mut self,
        municipality: &crate::domain::Municipality,
    ) -> Result<Vec<crate::domain::records::Referral>, StoreError> {
        use crate::store::queries::REFERRAL_COLUMNS;
        let rows = query(format!(
            "SELECT {REFERRAL_COLUMNS} FROM referrals WHERE closed = 0 \
                     AND municipality = $1 AND basis <> 'consent' ORDER BY referral_id"
        ))
        .bind(municipality.as_str())
        .fetch_all(self)
        .await?;
        rows.iter().map(referral_from_row).collect()
    }

    async fn not_connected_without_next_step(
        &mut self,
        municipality: Option<&crate::domain::Municipality>,
        from_agency: Option<&crate::domain::AgencyId>,
    ) -> Result<Vec<crate::domain::records::Referral>, StoreError> {
        use crate::store::queries::REFERRAL_COLUMNS;
        let rows = query(format!(
            "SELECT {REFERRAL_COLUMNS} FROM referrals r WHERE r.closed = 1 \
                     AND r.connection = 'not_connected' AND r.confirmed_at IS NOT NULL \
                     AND r.not_connected_reason <> 'referred_elsewhere' AND r.close_reason IS NULL \
                     AND ($1 = '' OR r.municipality = $1) AND ($2 = '' OR r.from_agency = $2) \
                     AND NOT EXISTS (SELECT 1 FROM referrals later WHERE later.case_id = r.case_id \
                     AND later.sent_at > r.confirmed_at) \
                     ORDER BY r.referral_id"
        ))
        .bind(municipality.map(|m| m.as_str()).unwrap_or(""))
        .bind(from_agency.map(|a| a.as_str()).unwrap_or(""))
        .fetch_all(self)
        .await?;
        rows.iter().map(referral_from_row).collect()
    }

    async fn insert_referral_event(
        &mut self,
        event: &crate::domain::records::ReferralEvent,
    ) -> Result<(), StoreError> {
        let (kind, action, timer) = crate::store::queries::event_kind_columns(&event.kind);
        db::write(
            self,
            "INSERT INTO referral_events (event_id, referral_id, case_id, kind, action, \
                     timer, actor_agency, staff_name, staff_role, occurred_at, recorded_at, \
                     reason_code, not_connected_reason, note, delivery, response, connection, \
                     reason_text, reason_detail) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
                     $16, $17, $18, $19)",
            crate::store::queries::params![
                event.id.as_str(),
                event.referral_id.as_str(),
                event.case_id.as_str(),
                kind,
                action,
                timer,
                event.actor_agency.as_ref().map(|a| a.as_str().to_owned()),
                event.actor_staff.as_ref().map(|s| s.name.clone()),
                event.actor_staff.as_ref().map(|s| s.role.clone()),
                event.occurred_at.millis(),
                event.recorded_at.millis(),
                event.reason_code.clone(),
                event.not_connected_reason.map(|r| r.code()),
                event.note.as_ref().map(|n| n.0.clone()),
                event.delivery.code(),
                event.response.code(),
                event.connection.code(),
                event.reason_text.clone(),
                event.reason_detail.as_ref().map(|n| n.0.clone()),
            ],
        )
        .await?;
        // The step times outcomes count are kept on the referral by the same transaction
        // (migration 0008): the earliest of each, as its events would say.
        let step = match action {
            Some("accept") => Some("accepted_at"),
            Some("record_contact_attempt" | "report_connected") => Some("first_contact_at"),
            _ => None,
        };
        if let Some(column) = step {
            db::write(
                self,
                &format!(
                    "UPDATE referrals SET {column} = $1 WHERE referral_id = $2 \
                             AND ({column} IS NULL OR {column} > $1)"
                ),
                crate::store::queries::params![
                    event.occurred_at.millis(),
                    event.referral_id.as_str(),
                ],
            )
            .await?;
        }
        Ok(())
    }

    async fn referral_events(
        &mut self,
        referral: &crate::domain::ReferralId,
    ) -> Result<Vec<crate::domain::records::ReferralEvent>, StoreError> {
        use crate::store::queries::EVENT_COLUMNS;
        let rows = query(format!(
            "SELECT {EVENT_COLUMNS} FROM referral_events WHERE referral_id = $1 \
                     ORDER BY recorded_at, event_id"
        ))
        .bind(referral.as_str())
        .fetch_all(self)
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    async fn case_referral_events(
        &mut self,
        case: &crate::domain::CaseId,
        since: Option<crate::domain::Timestamp>,
    ) -> Result<Vec<crate::domain::records::ReferralEvent>, StoreError> {
        use crate::store::queries::EVENT_COLUMNS;
        let rows = query(format!(
            "SELECT {EVENT_COLUMNS} FROM referral_events WHERE case_id = $1 \
                     AND recorded_at >= $2 ORDER BY recorded_at, event_id"
        ))
        .bind(case.as_str())
        .bind(since.map(|s| s.millis()).unwrap_or(i64::MIN))
        .fetch_all(self)
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    async fn record_escalation(
        &mut self,
        referral: &crate::domain::ReferralId,
        timer: crate::domain::referral::TimerKind,
        tier: crate::domain::records::EscalationTier,
        at: crate::domain::Timestamp,
    ) -> Result<bool, StoreError> {
        let result = query(
            "INSERT INTO escalations (referral_id, timer, tier, raised_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(referral.as_str())
        .bind(timer.code())
        .bind(tier.code())
        .bind(at.millis())
        .execute(self)
        .await?;
        let raised = result.rows_affected() == 1;
        if raised {
            // Kept on the referral for outcomes (migration 0008), in this transaction.
            db::write(
                self,
                "UPDATE referrals SET escalated = escalated | $1 WHERE referral_id = $2",
                crate::store::queries::params![
                    crate::domain::outcomes::escalation_bit(timer, tier),
                    referral.as_str(),
                ],
            )
            .await?;
        }
        Ok(raised)
    }

    async fn insert_note(&mut self, note: &crate::domain::records::Note) -> Result<(), StoreError> {
        query(
            "INSERT INTO notes (note_id, case_id, from_agency, staff_name, staff_role, \
                     purpose, basis, consent_id, justification, hide_sender, body, sent_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(note.id.as_str())
        .bind(note.case_id.as_str())
        .bind(note.from_agency.as_str())
        .bind(&note.staff.name)
        .bind(&note.staff.role)
        .bind(note.purpose.as_str())
        .bind(note.basis.code())
        .bind(note.consent_id.as_ref().map(|c| c.as_str().to_owned()))
        .bind(note.justification.clone())
        .bind(i64::from(note.hide_sender))
        .bind(&note.body.0)
        .bind(note.sent_at.millis())
        .execute(self)
        .await?;
        for recipient in &note.recipients {
            query(
                "INSERT INTO note_recipients (note_id, agency_id, acknowledged_at) \
                         VALUES ($1, $2, $3)",
            )
            .bind(note.id.as_str())
            .bind(recipient.agency_id.as_str())
            .bind(crate::store::queries::millis(recipient.acknowledged_at))
            .execute(self)
            .await?;
        }
        Ok(())
    }

    async fn note(
        &mut self,
        id: &crate::domain::NoteId,
    ) -> Result<Option<crate::domain::records::Note>, StoreError> {
        use crate::store::queries::NOTE_COLUMNS;
        let row = query(format!(
            "SELECT {NOTE_COLUMNS} FROM notes WHERE note_id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(self)
        .await?;
        let Some(mut note) = row.as_ref().map(note_from_row).transpose()? else {
            return Ok(None);
        };
        note.recipients = note_recipients(self, &note.id).await?;
        Ok(Some(note))
    }

    async fn case_notes(
        &mut self,
        case: &crate::domain::CaseId,
        since: Option<crate::domain::Timestamp>,
    ) -> Result<Vec<crate::domain::records::Note>, StoreError> {
        use crate::store::queries::NOTE_COLUMNS;
        let rows = query(format!(
            "SELECT {NOTE_COLUMNS} FROM notes WHERE case_id = $1 AND sent_at >= $2 \
                     ORDER BY sent_at, note_id"
        ))
        .bind(case.as_str())
        .bind(since.map(|s| s.millis()).unwrap_or(i64::MIN))
        .fetch_all(self)
        .await?;
        let mut notes = rows
            .iter()
            .map(note_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        for note in &mut notes {
            note.recipients = note_recipients(self, &note.id).await?;
        }
        Ok(notes)
    }

    async fn acknowledge_note(
        &mut self,
        note: &crate::domain::NoteId,
        agency: &crate::domain::AgencyId,
        at: crate::domain::Timestamp,
    ) -> Result<(), StoreError> {
        query(
            "UPDATE note_recipients SET acknowledged_at = $1 WHERE note_id = $2 \
                     AND agency_id = $3 AND acknowledged_at IS NULL",
        )
        .bind(at.millis())
        .bind(note.as_str())
        .bind(agency.as_str())
        .execute(self)
        .await?;
        Ok(())
    }

    async fn append_feed(
        &mut self,
        entry: &crate::domain::records::FeedEntry,
    ) -> Result<(), StoreError> {
        if !self.touched().contains(&entry.agency_id) {
            self.touched().push(entry.agency_id.clone());
        }
        if self.defer_feed(entry) {
            // Written with the commit, under the agency's feed lock.
            return Ok(());
        }
        db::write(
            self,
            "INSERT INTO feed_events (agency_id, event_id, kind, case_id, referral_id, \
                     note_id, referral_event_id, recorded_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            crate::store::queries::params![
                entry.agency_id.as_str(),
                entry.event_id.as_str(),
                entry.kind.code(),
                entry.case_id.as_ref().map(|c| c.as_str()),
                entry.referral_id.as_ref().map(|r| r.as_str()),
                entry.note_id.as_ref().map(|n| n.as_str()),
                entry.referral_event_id.as_ref().map(|e| e.as_str()),
                entry.recorded_at.millis(),
            ],
        )
        .await?;
        Ok(())
    }

    async fn feed_end(&mut self, agency: &crate::domain::AgencyId) -> Result<u64, StoreError> {
        let row =
            query("SELECT COALESCE(MAX(cursor), 0) AS last FROM feed_events WHERE agency_id = $1")
                .bind(agency.as_str())
                .fetch_one(self)
                .await?;
        let last: i64 = row.try_get("last")?;
        Ok(u64::try_from(last).unwrap_or(0))
    }

    async fn feed_acknowledged(
        &mut self,
        agency: &crate::domain::AgencyId,
    ) -> Result<u64, StoreError> {
        let row = query(crate::store::queries::FEED_ACKNOWLEDGED)
            .bind(agency.as_str())
            .fetch_optional(self)
            .await?;
        acknowledged_from_row(row.as_ref())
    }

    async fn acknowledge_feed(
        &mut self,
        agency: &crate::domain::AgencyId,
        cursor: u64,
        at: crate::domain::Timestamp,
    ) -> Result<(), StoreError> {
        query(
            "INSERT INTO feed_acknowledgements (agency_id, cursor, acknowledged_at) \
                     VALUES ($1, $2, $3) ON CONFLICT (agency_id) DO UPDATE \
                     SET cursor = excluded.cursor, acknowledged_at = excluded.acknowledged_at \
                     WHERE feed_acknowledgements.cursor < excluded.cursor",
        )
        .bind(agency.as_str())
        .bind(i64::try_from(cursor).unwrap_or(i64::MAX))
        .bind(at.millis())
        .execute(self)
        .await?;
        Ok(())
    }

    async fn idempotent_response(
        &mut self,
        agency: &crate::domain::AgencyId,
        operation: &str,
        key: &str,
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>, StoreError> {
        let rows = self
            .look_up(crate::store::Lookup::IdempotentResponse {
                agency,
                operation,
                key,
            })
            .await?;
        match rows.first() {
            Some(row) => Ok(Some((
                row.try_get("request_digest")?,
                row.try_get("response")?,
            ))),
            None => Ok(None),
        }
    }

    async fn record_idempotent_response(
        &mut self,
        agency: &crate::domain::AgencyId,
        operation: &str,
        key: &str,
        digest: &[u8],
        response: &[u8],
        at: crate::domain::Timestamp,
    ) -> Result<(), StoreError> {
        db::write(
            self,
            "INSERT INTO idempotency_keys (agency_id, operation, idempotency_key, \
                     request_digest, response, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            crate::store::queries::params![
                agency.as_str(),
                operation,
                key,
                digest,
                response,
                at.millis(),
            ],
        )
        .await?;
        Ok(())
    }
}

pub(crate) async fn note_recipients<C: Connection + ?Sized>(
    db: &mut C,
    note: &crate::domain::NoteId,
) -> Result<Vec<crate::domain::records::NoteRecipient>, StoreError> {
    let rows = query(
        "SELECT agency_id, acknowledged_at FROM note_recipients WHERE note_id = $1 \
                     ORDER BY agency_id",
    )
    .bind(note.as_str())
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|row| {
            let agency: String = row.try_get("agency_id")?;
            Ok(crate::domain::records::NoteRecipient {
                agency_id: crate::store::queries::code(
                    "note_recipients",
                    "agency_id",
                    &agency,
                    crate::domain::AgencyId::parse,
                )?,
                acknowledged_at: crate::store::queries::timestamp(row.try_get("acknowledged_at")?),
            })
        })
        .collect()
}

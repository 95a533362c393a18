//! Every RPC's request as the hub gets it off the wire: bytes decoded with prost into the
//! request type the first byte picks, then checked by the same parsers the handler runs at the
//! boundary (`api::convert`, the council's request parsing, the domain's id and key parsers).
//! Nothing may panic, and every refusal is INVALID_ARGUMENT or RESOURCE_EXHAUSTED naming a
//! field of the request. The handlers stop at their first refusal; this runs every parser, a
//! superset. Checks that need the database (who may see what) are not reached here.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use tsunagu_hub::api::{council, convert};
use tsunagu_hub::domain::keys::{AgeRecipient, KeyFingerprint};
use tsunagu_hub::domain::{AgencyKind, CaseId, ConsentId, MeetingId, Municipality, NoteId, ReferralId};
use tsunagu_hub::error::Error;
use tsunagu_proto::v1 as pb;

/// The hub's default sealed-field limit.
const MAX_SEALED: usize = 1024 * 1024;

/// A refusal must be a bad-input one, naming a field.
fn refusal<T>(result: Result<T, Error>) {
    match result {
        Ok(_) => {}
        Err(Error::InvalidArgument { field, reason }) => {
            assert!(!field.is_empty() && !reason.is_empty());
        }
        Err(Error::ResourceExhausted { field, .. } | Error::LimitReached { field, .. }) => {
            assert!(!field.is_empty());
        }
        Err(other) => panic!("a request was refused with {:?}: {other}", other.code()),
    }
}

fn decode<M: Message + Default + PartialEq + std::fmt::Debug>(bytes: &[u8]) -> Option<M> {
    let message = M::decode(bytes).ok()?;
    // What decodes encodes again and decodes to the same message.
    let again = M::decode(message.encode_to_vec().as_slice()).expect("re-encoded message decodes");
    assert_eq!(message, again);
    Some(message)
}

fn text_id<T>(field: &str, text: &str, parse: fn(&str) -> Option<T>) {
    refusal(convert::required_id(field, text, parse));
    refusal(convert::optional_id(field, text, parse));
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    match which % 32 {
        // AuditService
        0 => {
            let Some(q) = decode::<pb::ListAuditRecordsRequest>(bytes) else { return };
            refusal(convert::parse_timestamp("from", q.from.as_ref()));
            refusal(convert::parse_timestamp("until", q.until.as_ref()));
            refusal(convert::optional_id("case_id", &q.case_id, CaseId::parse));
            refusal(convert::optional_municipality("municipality", &q.municipality));
            refusal(convert::limit("limit", q.limit, 100, 1000));
        }
        1 => {
            let _ = decode::<pb::GetAuditHeadRequest>(bytes);
        }
        // CaseService
        2 => {
            let Some(b) = decode::<pb::OpenCaseRequest>(bytes) else { return };
            refusal(convert::idempotency_key(&b.idempotency_key));
            refusal(convert::municipality("municipality", &b.municipality));
            refusal(convert::category("category", b.category));
            refusal(convert::stage("stage", b.stage));
            refusal(convert::sealed("header", b.header.as_ref(), MAX_SEALED));
            refusal(convert::staff(b.staff.as_ref()));
        }
        3 => {
            let Some(b) = decode::<pb::GetCaseRequest>(bytes) else { return };
            text_id("case_id", &b.case_id, CaseId::parse);
        }
        4 => {
            let Some(q) = decode::<pb::ListCasesRequest>(bytes) else { return };
            refusal(convert::optional_municipality("municipality", &q.municipality));
            refusal(convert::limit("limit", q.limit, 100, 500));
            refusal(convert::optional_id("page_token", &q.page_token, CaseId::parse));
        }
        5 => {
            let Some(b) = decode::<pb::RecordConsentRequest>(bytes) else { return };
            refusal(convert::idempotency_key(&b.idempotency_key));
            text_id("case_id", &b.case_id, CaseId::parse);
            refusal(convert::consent_giver("given_by", b.given_by));
            refusal(convert::consent_method("method", b.method));
            refusal(convert::consent_scope(b.scope.as_ref()));
            refusal(convert::optional_date("valid_from", &b.valid_from));
            refusal(convert::optional_date("valid_until", &b.valid_until));
            refusal(convert::optional_sealed("evidence", b.evidence.as_ref(), MAX_SEALED));
            refusal(convert::staff(b.staff.as_ref()));
        }
        6 => {
            let Some(b) = decode::<pb::WithdrawConsentRequest>(bytes) else { return };
            text_id("consent_id", &b.consent_id, ConsentId::parse);
            refusal(convert::staff(b.staff.as_ref()));
            refusal(convert::parse_timestamp("withdrawn_at", b.withdrawn_at.as_ref()));
        }
        7 => {
            let Some(b) = decode::<pb::ListConsentsRequest>(bytes) else { return };
            text_id("case_id", &b.case_id, CaseId::parse);
        }
        8 => {
            let Some(b) = decode::<pb::GetCaseThreadRequest>(bytes) else { return };
            text_id("case_id", &b.case_id, CaseId::parse);
            refusal(convert::parse_timestamp("since", b.since.as_ref()));
        }
        // CouncilService
        9 => {
            let Some(b) = decode::<pb::RegisterCaseRequest>(bytes) else { return };
            text_id("case_id", &b.case_id, CaseId::parse);
            refusal(council::council_category("category", b.category));
            refusal(convert::optional_date("registered_on", &b.registered_on));
            refusal(convert::agency_id("lead_agency", &b.lead_agency));
            refusal(convert::optional_sealed("key_person", b.key_person.as_ref(), MAX_SEALED));
            let _ = council::optional_days(b.review_interval_days);
            refusal(convert::optional_date("next_review_on", &b.next_review_on));
            refusal(council::justification(&b.justification));
            refusal(convert::staff(b.staff.as_ref()));
            refusal(convert::idempotency_key(&b.idempotency_key));
        }
        10 => {
            let Some(b) = decode::<pb::UpdateRegistrationRequest>(bytes) else { return };
            text_id("case_id", &b.case_id, CaseId::parse);
            if b.category != 0 {
                refusal(council::council_category("category", b.category));
            }
            if !b.lead_agency.is_empty() {
                refusal(convert::agency_id("lead_agency", &b.lead_agency));
            }
            refusal(convert::optional_sealed("key_person", b.key_person.as_ref(), MAX_SEALED));
            refusal(convert::optional_date("next_review_on", &b.next_review_on));
            refusal(convert::staff(b.staff.as_ref()));
        }
        11 => {
            let Some(b) = decode::<pb::EndRegistrationRequest>(bytes) else { return };
            text_id("case_id", &b.case_id, CaseId::parse);
            refusal(council::ending(&b));
            refusal(convert::optional_date("ended_on", &b.ended_on));
            refusal(convert::staff(b.staff.as_ref()));
            refusal(convert::idempotency_key(&b.idempotency_key));
        }
        12 => {
            let Some(q) = decode::<pb::ListRegistrationsRequest>(bytes) else { return };
            refusal(convert::municipality("municipality", &q.municipality));
        }
        13 => {
            let Some(b) = decode::<pb::ScheduleMeetingRequest>(bytes) else { return };
            refusal(convert::municipality("municipality", &b.municipality));
            refusal(council::meeting_kind(b.kind));
            refusal(convert::date("held_on", &b.held_on));
            refusal(council::case_ids(&b.case_ids));
            refusal(convert::staff(b.staff.as_ref()));
            refusal(convert::idempotency_key(&b.idempotency_key));
        }
        14 => {
            let Some(q) = decode::<pb::ListMeetingsRequest>(bytes) else { return };
            refusal(convert::municipality("municipality", &q.municipality));
        }
        15 => {
            let Some(b) = decode::<pb::GetMeetingPackRequest>(bytes) else { return };
            text_id("meeting_id", &b.meeting_id, MeetingId::parse);
        }
        16 => {
            let Some(b) = decode::<pb::RecordDecisionRequest>(bytes) else { return };
            text_id("meeting_id", &b.meeting_id, MeetingId::parse);
            text_id("case_id", &b.case_id, CaseId::parse);
            refusal(council::outcome_kind(b.outcome));
            refusal(council::reason(&b.close_reason));
            refusal(convert::optional_municipality("transfer_to", &b.transfer_to));
            if !b.lead_agency.is_empty() {
                refusal(convert::agency_id("lead_agency", &b.lead_agency));
            }
            refusal(convert::optional_sealed("plan", b.plan.as_ref(), MAX_SEALED));
            refusal(convert::optional_date("next_review_on", &b.next_review_on));
            refusal(convert::staff(b.staff.as_ref()));
            refusal(convert::idempotency_key(&b.idempotency_key));
        }
        // DirectoryService
        17 => {
            let _ = decode::<pb::WhoAmIRequest>(bytes);
        }
        18 => {
            let Some(q) = decode::<pb::ListAgenciesRequest>(bytes) else { return };
            let _ = Municipality::parse(&q.municipality);
            let _ = AgencyKind::parse(&q.kind);
        }
        19 => {
            let Some(b) = decode::<pb::PublishKeyRequest>(bytes) else { return };
            if let Err(reason) = AgeRecipient::parse(&b.recipient) {
                assert!(!reason.to_string().is_empty());
            }
            refusal(convert::staff(b.staff.as_ref()));
        }
        20 => {
            let Some(b) = decode::<pb::RetireKeyRequest>(bytes) else { return };
            let _ = KeyFingerprint::parse(b.fingerprint.trim());
            refusal(convert::staff(b.staff.as_ref()));
        }
        21 => {
            let Some(b) = decode::<pb::ListKeysRequest>(bytes) else { return };
            for (i, text) in b.agency_ids.iter().enumerate().take(100) {
                refusal(convert::agency_id(&format!("agency_ids[{i}]"), text.trim()));
            }
        }
        // EventService
        22 => {
            let Some(q) = decode::<pb::ListEventsRequest>(bytes) else { return };
            refusal(convert::limit("limit", q.limit, 100, 1000));
        }
        23 => {
            let _ = decode::<pb::SubscribeRequest>(bytes);
        }
        24 => {
            let _ = decode::<pb::AckEventsRequest>(bytes);
        }
        // ReferralService
        25 => {
            let Some(b) = decode::<pb::SendReferralRequest>(bytes) else { return };
            text_id("case_id", &b.case_id, CaseId::parse);
            refusal(convert::agency_id("to_agency", &b.to_agency));
            refusal(convert::purpose("purpose", &b.purpose));
            refusal(convert::urgency("urgency", b.urgency));
            refusal(convert::basis(b.basis.as_ref()));
            refusal(convert::sealed("body", b.body.as_ref(), MAX_SEALED));
            refusal(convert::deadline_overrides(b.deadlines.as_ref()));
            refusal(convert::staff(b.staff.as_ref()));
            refusal(convert::idempotency_key(&b.idempotency_key));
        }
        26 => {
            let Some(b) = decode::<pb::GetReferralRequest>(bytes) else { return };
            text_id("referral_id", &b.referral_id, ReferralId::parse);
        }
        27 => {
            let Some(q) = decode::<pb::ListReferralsRequest>(bytes) else { return };
            refusal(convert::optional_id("case_id", &q.case_id, CaseId::parse));
            refusal(convert::optional_id("page_token", &q.page_token, ReferralId::parse));
            refusal(convert::limit("limit", q.limit, 100, 500));
        }
        28 => {
            let Some(b) = decode::<pb::RecordReferralActionRequest>(bytes) else { return };
            text_id("referral_id", &b.referral_id, ReferralId::parse);
            refusal(convert::action("action", b.action));
            refusal(convert::reason_code("reason_code", &b.reason_code));
            refusal(convert::not_connected_reason("not_connected_reason", b.not_connected_reason));
            refusal(convert::optional_id("linked_referral_id", &b.linked_referral_id, ReferralId::parse));
            refusal(convert::optional_sealed("note", b.note.as_ref(), MAX_SEALED));
            refusal(convert::staff(b.staff.as_ref()));
            refusal(convert::parse_timestamp("occurred_at", b.occurred_at.as_ref()));
            refusal(convert::idempotency_key(&b.idempotency_key));
        }
        29 => {
            let Some(b) = decode::<pb::SendNoteRequest>(bytes) else { return };
            for id in b.to_agencies.iter().take(100) {
                refusal(convert::agency_id("to_agencies", id));
            }
            text_id("case_id", &b.case_id, CaseId::parse);
            refusal(convert::purpose("purpose", &b.purpose));
            refusal(convert::basis(b.basis.as_ref()));
            refusal(convert::sealed("body", b.body.as_ref(), MAX_SEALED));
            refusal(convert::staff(b.staff.as_ref()));
            refusal(convert::idempotency_key(&b.idempotency_key));
        }
        30 => {
            let Some(b) = decode::<pb::AcknowledgeNoteRequest>(bytes) else { return };
            text_id("note_id", &b.note_id, NoteId::parse);
            refusal(convert::staff(b.staff.as_ref()));
            refusal(convert::idempotency_key(&b.idempotency_key));
        }
        _ => {
            let Some(q) = decode::<pb::FollowUpsRequest>(bytes) else { return };
            refusal(convert::optional_municipality("municipality", &q.municipality));
        }
    }
});

//! ReferralService: referrals and their three layers, notes, and the follow-up worklists.

use tonic::{Request, Response, Status};
use tsunagu_proto::v1 as pb;
use tsunagu_proto::v1::referral_service_server::ReferralService;

use super::{Hub, convert};
use crate::casework::audit::AuditTarget;
use crate::casework::followups::{FollowUpStatus, follow_ups};
use crate::casework::notes::{self, SendNote};
use crate::casework::referrals::{
    self, RecordAction, SendReferral, consent_withdrawn, referral_with_events,
};
use crate::domain::referral::ActionInput;
use crate::domain::{Agency, CaseId, NoteId, ReferralId, Timestamp};
use crate::error::Error;
use crate::identity::caller;
use crate::store::{ReferralQuery, Transaction};

/// A referral for its viewer, with whether its consent was withdrawn since.
async fn referral_out(
    tx: &mut dyn Transaction,
    referral: &crate::domain::records::Referral,
    viewer: &Agency,
    now: Timestamp,
) -> Result<pb::Referral, Error> {
    let withdrawn = consent_withdrawn(tx, referral).await?;
    let mut out = convert::referral(referral, &viewer.id, now, withdrawn);
    out.next_step_needed = referrals::awaits_next_step(tx, referral).await?;
    Ok(out)
}

#[tonic::async_trait]
impl ReferralService for Hub {
    async fn send_referral(
        &self,
        request: Request<pb::SendReferralRequest>,
    ) -> Result<Response<pb::SendReferralResponse>, Status> {
        const OPERATION: &str = "SendReferral";
        let agency = caller(&request)?.agency.clone();
        let body = request.into_inner();
        let audit = self
            .audit(&agency, "ReferralService/SendReferral")
            .case(&body.case_id)
            .basis(body.basis.as_ref())
            .staff(body.staff.as_ref());
        let result = async {
            let send = SendReferral {
                case_id: convert::required_id("case_id", &body.case_id, CaseId::parse)?,
                to_agency: convert::agency_id("to_agency", &body.to_agency)?,
                purpose: convert::purpose("purpose", &body.purpose)?,
                urgency: convert::urgency("urgency", body.urgency)?,
                basis: convert::basis(body.basis.as_ref())?,
                body: convert::sealed("body", body.body.as_ref(), self.max_sealed())?,
                overrides: convert::deadline_overrides(body.deadlines.as_ref())?,
                staff: convert::staff(body.staff.as_ref())?,
            };
            let key = convert::idempotency_key(&body.idempotency_key)?;
            let (agency, settings) = (agency.clone(), std::sync::Arc::clone(&self.settings));
            self.write(OPERATION, key, &body, &audit, move |tx, now| {
                Box::pin(async move {
                    let (referral, _) =
                        referrals::send_referral(tx, &agency, send, &settings.deadlines, now)
                            .await?;
                    let response = pb::SendReferralResponse {
                        referral: Some(convert::referral(&referral, &agency.id, now, false)),
                    };
                    Ok((response, AuditTarget::referral(&referral)))
                })
            })
            .await
        }
        .await;
        audit.finish(self, result).await
    }

    async fn get_referral(
        &self,
        request: Request<pb::GetReferralRequest>,
    ) -> Result<Response<pb::GetReferralResponse>, Status> {
        let agency = caller(&request)?.agency.clone();
        let referral_id = &request.get_ref().referral_id;
        let audit = self
            .audit(&agency, "ReferralService/GetReferral")
            .referral(referral_id);
        let result = async {
            let id = convert::required_id("referral_id", referral_id, ReferralId::parse)?;
            let now = self.clock.now();
            let mut tx = self.store.read().await?;
            let (referral, events) = referral_with_events(&mut *tx, &agency, &id).await?;
            let response = pb::GetReferralResponse {
                referral: Some(referral_out(&mut *tx, &referral, &agency, now).await?),
                events: events
                    .iter()
                    .map(|event| {
                        let hide = convert::hides_actor(event, &referral, &agency.id);
                        convert::referral_event(event, hide)
                    })
                    .collect(),
            };
            drop(tx);
            audit.read(self, &AuditTarget::referral(&referral)).await?;
            Ok(response)
        }
        .await;
        audit.finish(self, result).await
    }

    async fn list_referrals(
        &self,
        request: Request<pb::ListReferralsRequest>,
    ) -> Result<Response<pb::ListReferralsResponse>, Status> {
        let agency = caller(&request)?.agency.clone();
        let query = request.get_ref();
        let audit = self
            .audit(&agency, "ReferralService/ListReferrals")
            .case(&query.case_id);
        let result = async {
            let direction =
                convert::optional_enum::<pb::ReferralDirection>("direction", query.direction)?
                    .unwrap_or(pb::ReferralDirection::Received);
            let (sent, received) = match direction {
                pb::ReferralDirection::Sent => (true, false),
                pb::ReferralDirection::All => (true, true),
                pb::ReferralDirection::Received | pb::ReferralDirection::Unspecified => {
                    (false, true)
                }
            };
            let case_id = convert::optional_id("case_id", &query.case_id, CaseId::parse)?;
            let before = convert::optional_id("page_token", &query.page_token, ReferralId::parse)?;
            let limit = convert::limit("limit", query.limit, 100, 500)?;
            let now = self.clock.now();
            let mut tx = self.store.read().await?;
            let found = referrals::list_referrals(
                &mut *tx,
                &ReferralQuery {
                    agency: &agency.id,
                    sent,
                    received,
                    case: case_id.as_ref(),
                    include_closed: query.include_closed,
                    before: before.as_ref(),
                    limit,
                },
            )
            .await?;
            let next_page_token = if found.len() == limit as usize {
                found.last().map(|r| r.id.to_string()).unwrap_or_default()
            } else {
                String::new()
            };
            let mut out = Vec::with_capacity(found.len());
            for referral in &found {
                out.push(referral_out(&mut *tx, referral, &agency, now).await?);
            }
            drop(tx);
            audit.read(self, audit.named()).await?;
            Ok(pb::ListReferralsResponse {
                referrals: out,
                next_page_token,
            })
        }
        .await;
        audit.finish(self, result).await
    }

    async fn record_referral_action(
        &self,
        request: Request<pb::RecordReferralActionRequest>,
    ) -> Result<Response<pb::RecordReferralActionResponse>, Status> {
        const OPERATION: &str = "RecordReferralAction";
        let agency = caller(&request)?.agency.clone();
        let body = request.into_inner();
        let audit = self
            .audit(&agency, "ReferralService/RecordReferralAction")
            .referral(&body.referral_id)
            .staff(body.staff.as_ref());
        let result = async {
            let record = RecordAction {
                referral_id: convert::required_id(
                    "referral_id",
                    &body.referral_id,
                    ReferralId::parse,
                )?,
                input: ActionInput {
                    action: convert::action("action", body.action)?,
                    reason_code: convert::reason_code("reason_code", &body.reason_code)?,
                    not_connected_reason: convert::not_connected_reason(
                        "not_connected_reason",
                        body.not_connected_reason,
                    )?,
                    linked_referral_id: convert::optional_id(
                        "linked_referral_id",
                        &body.linked_referral_id,
                        ReferralId::parse,
                    )?,
                    reason_text: convert::clear_reason_text("reason_text", &body.reason_text)?,
                },
                note: convert::optional_sealed("note", body.note.as_ref(), self.max_sealed())?,
                reason_detail: convert::optional_sealed(
                    "reason_detail",
                    body.reason_detail.as_ref(),
                    self.max_sealed(),
                )?,
                staff: convert::staff(body.staff.as_ref())?,
                occurred_at: convert::parse_timestamp("occurred_at", body.occurred_at.as_ref())?,
            };
            let key = convert::idempotency_key(&body.idempotency_key)?;
            let agency = agency.clone();
            self.write(OPERATION, key, &body, &audit, move |tx, now| {
                Box::pin(async move {
                    let (referral, event) =
                        referrals::record_action(tx, &agency, record, now).await?;
                    let response = pb::RecordReferralActionResponse {
                        referral: Some(referral_out(tx, &referral, &agency, now).await?),
                        event: Some(convert::referral_event(
                            &event,
                            convert::hides_actor(&event, &referral, &agency.id),
                        )),
                    };
                    Ok((response, AuditTarget::referral(&referral)))
                })
            })
            .await
        }
        .await;
        audit.finish(self, result).await
    }

    async fn send_note(
        &self,
        request: Request<pb::SendNoteRequest>,
    ) -> Result<Response<pb::SendNoteResponse>, Status> {
        const OPERATION: &str = "SendNote";
        let agency = caller(&request)?.agency.clone();
        let body = request.into_inner();
        let audit = self
            .audit(&agency, "ReferralService/SendNote")
            .case(&body.case_id)
            .basis(body.basis.as_ref())
            .staff(body.staff.as_ref());
        let result = async {
            if body.to_agencies.is_empty() {
                return Err(Error::missing("to_agencies"));
            }
            if body.to_agencies.len() > convert::MAX_NOTE_RECIPIENTS {
                return Err(Error::invalid(
                    "to_agencies",
                    format!("may name at most {} agencies", convert::MAX_NOTE_RECIPIENTS),
                ));
            }
            let mut to_agencies = Vec::with_capacity(body.to_agencies.len());
            for id in &body.to_agencies {
                let id = convert::agency_id("to_agencies", id)?;
                if !to_agencies.contains(&id) {
                    to_agencies.push(id);
                }
            }
            let send = SendNote {
                case_id: convert::required_id("case_id", &body.case_id, CaseId::parse)?,
                to_agencies,
                purpose: convert::purpose("purpose", &body.purpose)?,
                basis: convert::basis(body.basis.as_ref())?,
                body: convert::sealed("body", body.body.as_ref(), self.max_sealed())?,
                staff: convert::staff(body.staff.as_ref())?,
            };
            let key = convert::idempotency_key(&body.idempotency_key)?;
            let agency = agency.clone();
            self.write(OPERATION, key, &body, &audit, move |tx, now| {
                Box::pin(async move {
                    let note = notes::send_note(tx, &agency, send, now).await?;
                    let response = pb::SendNoteResponse {
                        note: Some(convert::note(&note, &agency.id)),
                    };
                    Ok((response, AuditTarget::note(&note)))
                })
            })
            .await
        }
        .await;
        audit.finish(self, result).await
    }

    async fn acknowledge_note(
        &self,
        request: Request<pb::AcknowledgeNoteRequest>,
    ) -> Result<Response<pb::AcknowledgeNoteResponse>, Status> {
        const OPERATION: &str = "AcknowledgeNote";
        let agency = caller(&request)?.agency.clone();
        let body = request.into_inner();
        let audit = self
            .audit(&agency, "ReferralService/AcknowledgeNote")
            .note(&body.note_id)
            .staff(body.staff.as_ref());
        let result = async {
            let note_id = convert::required_id("note_id", &body.note_id, NoteId::parse)?;
            convert::staff(body.staff.as_ref())?;
            let key = convert::idempotency_key(&body.idempotency_key)?;
            let agency = agency.clone();
            self.write(OPERATION, key, &body, &audit, move |tx, now| {
                Box::pin(async move {
                    let note = notes::acknowledge_note(tx, &agency, &note_id, now).await?;
                    let response = pb::AcknowledgeNoteResponse {
                        note: Some(convert::note(&note, &agency.id)),
                    };
                    Ok((response, AuditTarget::note(&note)))
                })
            })
            .await
        }
        .await;
        audit.finish(self, result).await
    }

    async fn follow_ups(
        &self,
        request: Request<pb::FollowUpsRequest>,
    ) -> Result<Response<pb::FollowUpsResponse>, Status> {
        let agency = caller(&request)?.agency.clone();
        let query = request.get_ref();
        let audit = self
            .audit(&agency, "ReferralService/FollowUps")
            .municipality(&query.municipality);
        let result = async {
            let municipality = convert::optional_municipality("municipality", &query.municipality)?;
            let hours = match query.due_within_hours {
                0 => 48,
                hours if hours > 24 * 90 => {
                    return Err(Error::invalid(
                        "due_within_hours",
                        "must be at most 2160 (90 days)",
                    ));
                }
                hours => hours,
            };
            let now = self.clock.now();
            let mut tx = self.store.read().await?;
            let items = follow_ups(
                &mut *tx,
                &agency,
                municipality.as_ref(),
                time::Duration::hours(i64::from(hours)),
                &self.settings.deadlines,
                now,
            )
            .await?;
            let mut out = Vec::with_capacity(items.len());
            for item in &items {
                out.push(pb::FollowUpItem {
                    status: match item.status {
                        FollowUpStatus::Overdue => pb::FollowUpStatus::Overdue,
                        FollowUpStatus::DueSoon => pb::FollowUpStatus::DueSoon,
                        FollowUpStatus::BasisReview => pb::FollowUpStatus::BasisReview,
                        FollowUpStatus::NextStepNeeded => pb::FollowUpStatus::NextStepNeeded,
                    } as i32,
                    referral: Some(referral_out(&mut *tx, &item.referral, &agency, now).await?),
                    timer: item
                        .timer
                        .map(|t| convert::timer_out(t) as i32)
                        .unwrap_or_default(),
                    due_at: item.due_at.map(convert::timestamp),
                    responsible_agency: item
                        .responsible
                        .as_ref()
                        .filter(|responsible| {
                            crate::casework::sender_visible(&item.referral, &agency.id)
                                || **responsible != item.referral.from_agency
                        })
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                    justification: if item.status == FollowUpStatus::BasisReview {
                        item.referral.justification.clone().unwrap_or_default()
                    } else {
                        String::new()
                    },
                    escalated: item.escalated,
                });
            }
            drop(tx);
            audit.read(self, audit.named()).await?;
            Ok(pb::FollowUpsResponse { items: out })
        }
        .await;
        audit.finish(self, result).await
    }
}

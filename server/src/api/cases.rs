//! CaseService: cases, participants, consent records and the case thread.

use std::collections::HashMap;

use tonic::{Request, Response, Status};
use tsunagu_proto::v1 as pb;
use tsunagu_proto::v1::case_service_server::CaseService;

use super::views::{case_out, thread_entry};
use super::{Hub, convert};
use crate::casework::audit::AuditTarget;
use crate::casework::cases::{self, OpenCase, RecordConsent};
use crate::domain::{CaseId, ConsentId};
use crate::error::Error;
use crate::identity::caller;

use crate::casework::directory;

#[tonic::async_trait]
impl CaseService for Hub {
    async fn open_case(
        &self,
        request: Request<pb::OpenCaseRequest>,
    ) -> Result<Response<pb::OpenCaseResponse>, Status> {
        const OPERATION: &str = "OpenCase";
        let agency = caller(&request)?.agency.clone();
        let body = request.into_inner();
        let audit = self
            .audit(&agency, "CaseService/OpenCase")
            .municipality(&body.municipality)
            .staff(body.staff.as_ref());
        let result = async {
            let key = convert::idempotency_key(&body.idempotency_key)?;
            let open = OpenCase {
                municipality: convert::municipality("municipality", &body.municipality)?,
                category: convert::category("category", body.category)?,
                stage: convert::stage("stage", body.stage)?,
                header: convert::sealed("header", body.header.as_ref(), self.max_sealed())?,
                staff: convert::staff(body.staff.as_ref())?,
            };
            let agency = agency.clone();
            self.write(OPERATION, key, &body, &audit, move |tx, now| {
                Box::pin(async move {
                    let view = cases::open_case(tx, &agency, open, now).await?;
                    let agencies = directory(tx).await?;
                    let response = pb::OpenCaseResponse {
                        case: Some(case_out(&view, &agencies)),
                    };
                    Ok((response, AuditTarget::case(&view.case)))
                })
            })
            .await
        }
        .await;
        audit.finish(self, result).await
    }

    async fn get_case(
        &self,
        request: Request<pb::GetCaseRequest>,
    ) -> Result<Response<pb::GetCaseResponse>, Status> {
        let agency = caller(&request)?.agency.clone();
        let case_id = &request.get_ref().case_id;
        let audit = self.audit(&agency, "CaseService/GetCase").case(case_id);
        let result = async {
            let case_id = convert::required_id("case_id", case_id, CaseId::parse)?;
            let mut tx = self.store.read().await?;
            let view = cases::case_view(&mut *tx, &agency, &case_id).await?;
            let agencies = directory(&mut *tx).await?;
            drop(tx);
            audit.read(self, &AuditTarget::case(&view.case)).await?;
            Ok(pb::GetCaseResponse {
                case: Some(case_out(&view, &agencies)),
            })
        }
        .await;
        audit.finish(self, result).await
    }

    async fn list_cases(
        &self,
        request: Request<pb::ListCasesRequest>,
    ) -> Result<Response<pb::ListCasesResponse>, Status> {
        let agency = caller(&request)?.agency.clone();
        let query = request.get_ref();
        let audit = self
            .audit(&agency, "CaseService/ListCases")
            .municipality(&query.municipality);
        let result = async {
            let municipality = convert::optional_municipality("municipality", &query.municipality)?;
            let limit = convert::limit("limit", query.limit, 100, 500)?;
            let after = convert::optional_id("page_token", &query.page_token, CaseId::parse)?;
            let mut tx = self.store.read().await?;
            let views = cases::list_cases(
                &mut *tx,
                &agency,
                municipality.as_ref(),
                after.as_ref(),
                limit,
            )
            .await?;
            let agencies = directory(&mut *tx).await?;
            drop(tx);
            audit.read(self, audit.named()).await?;
            let next_page_token = if views.len() == limit as usize {
                views
                    .last()
                    .map(|v| v.case.id.to_string())
                    .unwrap_or_default()
            } else {
                String::new()
            };
            Ok(pb::ListCasesResponse {
                cases: views.iter().map(|v| case_out(v, &agencies)).collect(),
                next_page_token,
            })
        }
        .await;
        audit.finish(self, result).await
    }

    async fn record_consent(
        &self,
        request: Request<pb::RecordConsentRequest>,
    ) -> Result<Response<pb::RecordConsentResponse>, Status> {
        const OPERATION: &str = "RecordConsent";
        let agency = caller(&request)?.agency.clone();
        let body = request.into_inner();
        let audit = self
            .audit(&agency, "CaseService/RecordConsent")
            .case(&body.case_id)
            .staff(body.staff.as_ref());
        let result = async {
            let key = convert::idempotency_key(&body.idempotency_key)?;
            let today = self.clock.now().date_in_japan();
            let record = RecordConsent {
                case_id: convert::required_id("case_id", &body.case_id, CaseId::parse)?,
                given_by: convert::consent_giver("given_by", body.given_by)?,
                method: convert::consent_method("method", body.method)?,
                scope: convert::consent_scope(body.scope.as_ref())?,
                valid_from: convert::optional_date("valid_from", &body.valid_from)?
                    .unwrap_or(today),
                valid_until: convert::optional_date("valid_until", &body.valid_until)?,
                evidence: convert::optional_sealed(
                    "evidence",
                    body.evidence.as_ref(),
                    self.max_sealed(),
                )?,
                staff: convert::staff(body.staff.as_ref())?,
            };
            let agency = agency.clone();
            self.write(OPERATION, key, &body, &audit, move |tx, now| {
                Box::pin(async move {
                    let consent = cases::record_consent(tx, &agency, record, now).await?;
                    let response = pb::RecordConsentResponse {
                        consent: Some(convert::consent(&consent)),
                    };
                    Ok((response, AuditTarget::consent(&consent)))
                })
            })
            .await
        }
        .await;
        audit.finish(self, result).await
    }

    async fn withdraw_consent(
        &self,
        request: Request<pb::WithdrawConsentRequest>,
    ) -> Result<Response<pb::WithdrawConsentResponse>, Status> {
        let agency = caller(&request)?.agency.clone();
        let body = request.get_ref();
        let audit = self
            .audit(&agency, "CaseService/WithdrawConsent")
            .consent(&body.consent_id)
            .staff(body.staff.as_ref());
        let result = async {
            let consent_id =
                convert::required_id("consent_id", &body.consent_id, ConsentId::parse)?;
            convert::staff(body.staff.as_ref())?;
            let now = self.clock.now();
            let at = convert::parse_timestamp("withdrawn_at", body.withdrawn_at.as_ref())?
                .unwrap_or(now);
            if at > now {
                return Err(Error::invalid("withdrawn_at", "is in the future"));
            }
            let agency = agency.clone();
            self.write_audited(&audit, now, move |tx| {
                Box::pin(async move {
                    let consent = cases::withdraw_consent(tx, &agency, &consent_id, at).await?;
                    let target = AuditTarget::consent(&consent);
                    let response = pb::WithdrawConsentResponse {
                        consent: Some(convert::consent(&consent)),
                    };
                    Ok((response, target))
                })
            })
            .await
        }
        .await;
        audit.finish(self, result).await
    }

    async fn list_consents(
        &self,
        request: Request<pb::ListConsentsRequest>,
    ) -> Result<Response<pb::ListConsentsResponse>, Status> {
        let agency = caller(&request)?.agency.clone();
        let case_id = &request.get_ref().case_id;
        let audit = self
            .audit(&agency, "CaseService/ListConsents")
            .case(case_id);
        let result = async {
            let case_id = convert::required_id("case_id", case_id, CaseId::parse)?;
            let mut tx = self.store.read().await?;
            let consents = cases::consents(&mut *tx, &agency, &case_id).await?;
            drop(tx);
            audit.read(self, audit.named()).await?;
            Ok(pb::ListConsentsResponse {
                consents: consents.iter().map(convert::consent).collect(),
            })
        }
        .await;
        audit.finish(self, result).await
    }

    async fn get_case_thread(
        &self,
        request: Request<pb::GetCaseThreadRequest>,
    ) -> Result<Response<pb::GetCaseThreadResponse>, Status> {
        let agency = caller(&request)?.agency.clone();
        let body = request.get_ref();
        let audit = self
            .audit(&agency, "CaseService/GetCaseThread")
            .case(&body.case_id);
        let result = async {
            let case_id = convert::required_id("case_id", &body.case_id, CaseId::parse)?;
            let since = convert::parse_timestamp("since", body.since.as_ref())?;
            let mut tx = self.store.read().await?;
            let thread = cases::thread(&mut *tx, &agency, &case_id, since).await?;
            let agencies = directory(&mut *tx).await?;
            drop(tx);
            audit
                .read(self, &AuditTarget::case(&thread.view.case))
                .await?;
            let referrals: HashMap<_, _> = thread.referrals.iter().map(|r| (&r.id, r)).collect();
            let entries = thread
                .items
                .iter()
                .filter_map(|item| thread_entry(item, &referrals, &agency.id))
                .collect();
            Ok(pb::GetCaseThreadResponse {
                case: Some(case_out(&thread.view, &agencies)),
                entries,
            })
        }
        .await;
        audit.finish(self, result).await
    }
}

//! TransferService: 移管 of a case between municipalities (propose, acknowledge, accept, decline,
//! withdraw, read, and the coordinators' worklist).

use tonic::{Request, Response, Status};
use tsunagu_proto::v1 as pb;
use tsunagu_proto::v1::transfer_service_server::TransferService;

use super::views::{case_out, state_out, text};
use super::{Hub, convert};
use crate::casework::directory;
use crate::casework::transfers::{self, AcceptTransfer, ListView, ProposeTransfer, TransferView};
use crate::domain::transfer::{DeclineReason, TransferTimer};
use crate::domain::{CaseId, Timestamp, TransferId};
use crate::error::Error;
use crate::identity::caller;

fn timer_out(timer: TransferTimer) -> i32 {
    (match timer {
        TransferTimer::Deliver => pb::TransferTimer::Deliver,
        TransferTimer::Respond => pb::TransferTimer::Respond,
        TransferTimer::Accept => pb::TransferTimer::Accept,
    }) as i32
}

/// A transfer as the proto shows it, with the timers overdue at `now`.
pub fn transfer_out(view: &TransferView, now: Timestamp) -> pb::Transfer {
    let t = &view.transfer;
    let at = |at: Option<Timestamp>| at.map(convert::timestamp);
    pb::Transfer {
        transfer_id: t.id.to_string(),
        case_id: t.case_id.to_string(),
        from_municipality: t.from_municipality.to_string(),
        to_municipality: t.to_municipality.to_string(),
        proposed_by: t.proposed_by.to_string(),
        proposed_staff: Some(convert::staff_out(&t.proposed_staff)),
        basis: convert::basis_out(t.basis) as i32,
        consent_id: text(t.consent_id.as_ref()),
        justification: t.justification.clone().unwrap_or_default(),
        note: t.note.as_ref().map(convert::sealed_out),
        state: state_out(t.state) as i32,
        proposed_at: Some(convert::timestamp(t.proposed_at)),
        acknowledged_at: at(t.acknowledged_at),
        acknowledged_by: text(t.acknowledged_by.as_ref()),
        responded_at: at(t.responded_at),
        responded_by: text(t.responded_by.as_ref()),
        responded_staff: t.responded_staff.as_ref().map(convert::staff_out),
        lead_agency: text(t.lead_agency.as_ref()),
        receiving_case_id: text(t.receiving_case.as_ref()),
        receiving_case_opened: t.receiving_case_opened,
        decline_reason: t
            .decline_reason
            .map(|r| r.code().to_owned())
            .unwrap_or_default(),
        decline_text: t.decline_text.clone().unwrap_or_default(),
        withdrawn_at: at(t.withdrawn_at),
        deliver_by: Some(convert::timestamp(t.deadlines.deliver_by)),
        respond_by: Some(convert::timestamp(t.deadlines.respond_by)),
        accept_by: Some(convert::timestamp(t.deadlines.accept_by)),
        overdue: if view.on_worklist {
            t.overdue(now).into_iter().map(timer_out).collect()
        } else {
            Vec::new()
        },
        escalated: view.escalated.iter().copied().map(timer_out).collect(),
        on_worklist: view.on_worklist,
    }
}

fn transfer_id(text: &str) -> Result<TransferId, Error> {
    convert::required_id("transfer_id", text, TransferId::parse)
}

fn decline_reason(code: &str) -> Result<DeclineReason, Error> {
    if code.is_empty() {
        return Err(Error::missing("reason_code"));
    }
    DeclineReason::from_code(code).ok_or_else(|| {
        Error::invalid(
            "reason_code",
            format!(
                "{code:?} is not a reason; use one of {}",
                DeclineReason::codes()
            ),
        )
    })
}

fn list_view(value: i32) -> Result<ListView, Error> {
    Ok(
        match convert::optional_enum::<pb::TransferView>("view", value)? {
            None | Some(pb::TransferView::Unspecified | pb::TransferView::All) => ListView::All,
            Some(pb::TransferView::Open) => ListView::Open,
            Some(pb::TransferView::Overdue) => ListView::Overdue,
        },
    )
}

#[tonic::async_trait]
impl TransferService for Hub {
    async fn propose_transfer(
        &self,
        request: Request<pb::ProposeTransferRequest>,
    ) -> Result<Response<pb::ProposeTransferResponse>, Status> {
        const OPERATION: &str = "ProposeTransfer";
        let agency = caller(&request)?.agency.clone();
        let body = request.into_inner();
        let audit = self
            .audit(&agency, "TransferService/ProposeTransfer")
            .case(&body.case_id)
            .basis(body.basis.as_ref())
            .staff(body.staff.as_ref());
        let result = async {
            let propose = ProposeTransfer {
                case_id: convert::required_id("case_id", &body.case_id, CaseId::parse)?,
                to_municipality: convert::municipality("to_municipality", &body.to_municipality)?,
                basis: convert::basis(body.basis.as_ref())?,
                note: convert::optional_sealed("note", body.note.as_ref(), self.max_sealed())?,
                staff: convert::staff(body.staff.as_ref())?,
            };
            let key = convert::idempotency_key(&body.idempotency_key)?;
            let (agency, settings) = (agency.clone(), std::sync::Arc::clone(&self.settings));
            self.write(OPERATION, key, &body, &audit, move |tx, now| {
                Box::pin(async move {
                    let view =
                        transfers::propose(tx, &agency, propose, &settings.deadlines.calendar, now)
                            .await?;
                    let response = pb::ProposeTransferResponse {
                        transfer: Some(transfer_out(&view, now)),
                    };
                    let target = transfers::audit_target(&view.transfer);
                    Ok((response, target))
                })
            })
            .await
        }
        .await;
        audit.finish(self, result).await
    }

    async fn acknowledge_transfer(
        &self,
        request: Request<pb::AcknowledgeTransferRequest>,
    ) -> Result<Response<pb::AcknowledgeTransferResponse>, Status> {
        const OPERATION: &str = "AcknowledgeTransfer";
        let agency = caller(&request)?.agency.clone();
        let body = request.into_inner();
        let audit = self
            .audit(&agency, "TransferService/AcknowledgeTransfer")
            .staff(body.staff.as_ref());
        let result = async {
            let id = transfer_id(&body.transfer_id)?;
            convert::staff(body.staff.as_ref())?;
            let key = convert::idempotency_key(&body.idempotency_key)?;
            let agency = agency.clone();
            self.write(OPERATION, key, &body, &audit, move |tx, now| {
                Box::pin(async move {
                    let view = transfers::acknowledge(tx, &agency, &id, now).await?;
                    let response = pb::AcknowledgeTransferResponse {
                        transfer: Some(transfer_out(&view, now)),
                    };
                    let target = transfers::audit_target(&view.transfer);
                    Ok((response, target))
                })
            })
            .await
        }
        .await;
        audit.finish(self, result).await
    }

    async fn accept_transfer(
        &self,
        request: Request<pb::AcceptTransferRequest>,
    ) -> Result<Response<pb::AcceptTransferResponse>, Status> {
        const OPERATION: &str = "AcceptTransfer";
        let agency = caller(&request)?.agency.clone();
        let body = request.into_inner();
        let audit = self
            .audit(&agency, "TransferService/AcceptTransfer")
            .staff(body.staff.as_ref());
        let result = async {
            let accept = AcceptTransfer {
                id: transfer_id(&body.transfer_id)?,
                lead_agency: convert::agency_id("lead_agency", &body.lead_agency)?,
                receiving_case: convert::optional_id(
                    "receiving_case_id",
                    &body.receiving_case_id,
                    CaseId::parse,
                )?,
                header: convert::optional_sealed(
                    "header",
                    body.header.as_ref(),
                    self.max_sealed(),
                )?,
                staff: convert::staff(body.staff.as_ref())?,
            };
            let key = convert::idempotency_key(&body.idempotency_key)?;
            let agency = agency.clone();
            self.write(OPERATION, key, &body, &audit, move |tx, now| {
                Box::pin(async move {
                    let (view, case) = transfers::accept(tx, &agency, accept, now).await?;
                    let agencies = directory(tx).await?;
                    let response = pb::AcceptTransferResponse {
                        transfer: Some(transfer_out(&view, now)),
                        receiving_case: Some(case_out(&case, &agencies)),
                    };
                    let target = transfers::audit_target(&view.transfer);
                    Ok((response, target))
                })
            })
            .await
        }
        .await;
        audit.finish(self, result).await
    }

    async fn decline_transfer(
        &self,
        request: Request<pb::DeclineTransferRequest>,
    ) -> Result<Response<pb::DeclineTransferResponse>, Status> {
        const OPERATION: &str = "DeclineTransfer";
        let agency = caller(&request)?.agency.clone();
        let body = request.into_inner();
        let audit = self
            .audit(&agency, "TransferService/DeclineTransfer")
            .staff(body.staff.as_ref());
        let result = async {
            let id = transfer_id(&body.transfer_id)?;
            let reason = decline_reason(&body.reason_code)?;
            let text = convert::clear_reason_text("reason_text", &body.reason_text)?;
            let staff = convert::staff(body.staff.as_ref())?;
            let key = convert::idempotency_key(&body.idempotency_key)?;
            let agency = agency.clone();
            self.write(OPERATION, key, &body, &audit, move |tx, now| {
                Box::pin(async move {
                    let view =
                        transfers::decline(tx, &agency, &id, reason, text, staff, now).await?;
                    let response = pb::DeclineTransferResponse {
                        transfer: Some(transfer_out(&view, now)),
                    };
                    let target = transfers::audit_target(&view.transfer);
                    Ok((response, target))
                })
            })
            .await
        }
        .await;
        audit.finish(self, result).await
    }

    async fn withdraw_transfer(
        &self,
        request: Request<pb::WithdrawTransferRequest>,
    ) -> Result<Response<pb::WithdrawTransferResponse>, Status> {
        const OPERATION: &str = "WithdrawTransfer";
        let agency = caller(&request)?.agency.clone();
        let body = request.into_inner();
        let audit = self
            .audit(&agency, "TransferService/WithdrawTransfer")
            .staff(body.staff.as_ref());
        let result = async {
            let id = transfer_id(&body.transfer_id)?;
            convert::staff(body.staff.as_ref())?;
            let key = convert::idempotency_key(&body.idempotency_key)?;
            let agency = agency.clone();
            self.write(OPERATION, key, &body, &audit, move |tx, now| {
                Box::pin(async move {
                    let view = transfers::withdraw(tx, &agency, &id, now).await?;
                    let response = pb::WithdrawTransferResponse {
                        transfer: Some(transfer_out(&view, now)),
                    };
                    let target = transfers::audit_target(&view.transfer);
                    Ok((response, target))
                })
            })
            .await
        }
        .await;
        audit.finish(self, result).await
    }

    async fn get_transfer(
        &self,
        request: Request<pb::GetTransferRequest>,
    ) -> Result<Response<pb::GetTransferResponse>, Status> {
        let agency = caller(&request)?.agency.clone();
        let body = request.get_ref();
        let audit = self.audit(&agency, "TransferService/GetTransfer");
        let result = async {
            let id = transfer_id(&body.transfer_id)?;
            let mut tx = self.store.read().await?;
            let view = transfers::get(&mut *tx, &agency, &id).await?;
            drop(tx);
            audit
                .read(self, &transfers::audit_target(&view.transfer))
                .await?;
            Ok(pb::GetTransferResponse {
                transfer: Some(transfer_out(&view, self.clock.now())),
            })
        }
        .await;
        audit.finish(self, result).await
    }

    async fn list_transfers(
        &self,
        request: Request<pb::ListTransfersRequest>,
    ) -> Result<Response<pb::ListTransfersResponse>, Status> {
        let agency = caller(&request)?.agency.clone();
        let body = request.get_ref();
        let audit = self
            .audit(&agency, "TransferService/ListTransfers")
            .municipality(&body.municipality)
            .case(&body.case_id);
        let result = async {
            let municipality = convert::optional_municipality("municipality", &body.municipality)?;
            let case = convert::optional_id("case_id", &body.case_id, CaseId::parse)?;
            let view = list_view(body.view)?;
            let now = self.clock.now();
            let mut tx = self.store.read().await?;
            let views = transfers::list(
                &mut *tx,
                &agency,
                municipality.as_ref(),
                case.as_ref(),
                view,
                now,
            )
            .await?;
            drop(tx);
            audit.read(self, audit.named()).await?;
            Ok(pb::ListTransfersResponse {
                transfers: views.iter().map(|v| transfer_out(v, now)).collect(),
            })
        }
        .await;
        audit.finish(self, result).await
    }
}

//! SealingService: who can open each sealed field of a case, and re-sealing a field to new
//! readers with a ciphertext made on the caller's own machine.

use std::collections::HashMap;

use tonic::{Request, Response, Status};
use tsunagu_proto::v1 as pb;
use tsunagu_proto::v1::sealing_service_server::SealingService;

use super::views::{field_out, record_out};
use super::{Hub, convert};
use crate::casework::audit::AuditTarget;
use crate::casework::directory;
use crate::casework::sealing::{self, Reseal, SealedFieldView};
use crate::domain::records::Case;
use crate::domain::sealing::{SealedFieldKind, SealedFieldRef};
use crate::domain::{Agency, AgencyId, CaseId, NoteId, ReferralId};
use crate::error::Error;
use crate::identity::caller;

/// The most readers one re-seal may add.
const MAX_ADDED_READERS: usize = 20;

fn field_in(field: Option<&pb::SealedFieldRef>) -> Result<SealedFieldRef, Error> {
    let field = field.ok_or_else(|| Error::invalid("field", "is required"))?;
    let kind = match pb::SealedFieldKind::try_from(field.kind) {
        Ok(pb::SealedFieldKind::CaseHeader) => SealedFieldKind::CaseHeader,
        Ok(pb::SealedFieldKind::ReferralBody) => SealedFieldKind::ReferralBody,
        Ok(pb::SealedFieldKind::NoteBody) => SealedFieldKind::NoteBody,
        _ => {
            return Err(Error::invalid(
                "field.kind",
                "must be CASE_HEADER, REFERRAL_BODY or NOTE_BODY",
            ));
        }
    };
    let id = match kind {
        SealedFieldKind::CaseHeader => {
            convert::required_id("field.id", &field.id, CaseId::parse)?.to_string()
        }
        SealedFieldKind::ReferralBody => {
            convert::required_id("field.id", &field.id, ReferralId::parse)?.to_string()
        }
        SealedFieldKind::NoteBody => {
            convert::required_id("field.id", &field.id, NoteId::parse)?.to_string()
        }
    };
    Ok(SealedFieldRef { kind, id })
}

fn agency_ids(field: &str, texts: &[String], max: usize) -> Result<Vec<AgencyId>, Error> {
    if texts.len() > max {
        return Err(Error::invalid(
            field,
            format!("at most {max} agencies, got {}", texts.len()),
        ));
    }
    let mut ids: Vec<AgencyId> = Vec::with_capacity(texts.len());
    for text in texts {
        let id = convert::agency_id(field, text)?;
        if ids.contains(&id) {
            return Err(Error::invalid(
                field,
                format!("agency {id} is listed twice"),
            ));
        }
        ids.push(id);
    }
    Ok(ids)
}

/// A sealed field's readers as the caller may see them (a hidden reporter left out).
fn view_out(
    view: &SealedFieldView,
    agencies: &HashMap<AgencyId, Agency>,
) -> pb::SealedFieldReaders {
    let shown = |agency: &AgencyId| !view.hidden.contains(agency);
    pb::SealedFieldReaders {
        field: Some(field_out(&view.readers.field)),
        case_id: view.readers.case_id.to_string(),
        readers: view
            .readers
            .readers
            .iter()
            .filter(|a| shown(a))
            .map(ToString::to_string)
            .collect(),
        caller_can_open: view.caller_can_open,
        could_add: view
            .readers
            .could_add()
            .into_iter()
            .filter(|(agency, _)| shown(agency))
            .map(|(agency, basis)| pb::PossibleReader {
                display_name: agencies
                    .get(&agency)
                    .map(|a| a.display_name.clone())
                    .unwrap_or_default(),
                agency_id: agency.to_string(),
                basis: basis.code().to_owned(),
            })
            .collect(),
        sealed: view.sealed.as_ref().map(convert::sealed_out),
        caller_may_reseal: view.caller_may_reseal,
    }
}

/// The audit target of a re-seal: the case, and the referral or note whose body it was.
fn target(case: &Case, field: &SealedFieldRef) -> AuditTarget {
    let mut target = AuditTarget::case(case);
    match field.kind {
        SealedFieldKind::CaseHeader => {}
        SealedFieldKind::ReferralBody => target.referral_id = ReferralId::parse(&field.id),
        SealedFieldKind::NoteBody => target.note_id = NoteId::parse(&field.id),
    }
    target
}

#[tonic::async_trait]
impl SealingService for Hub {
    async fn list_sealed_fields(
        &self,
        request: Request<pb::ListSealedFieldsRequest>,
    ) -> Result<Response<pb::ListSealedFieldsResponse>, Status> {
        let agency = caller(&request)?.agency.clone();
        let case_id = &request.get_ref().case_id;
        let audit = self
            .audit(&agency, "SealingService/ListSealedFields")
            .case(case_id);
        let result = async {
            let case_id = convert::required_id("case_id", case_id, CaseId::parse)?;
            let mut tx = self.store.read().await?;
            let (case, fields) = sealing::sealed_fields(&mut *tx, &agency, &case_id).await?;
            let agencies = directory(&mut *tx).await?;
            drop(tx);
            audit.read(self, &AuditTarget::case(&case)).await?;
            Ok(pb::ListSealedFieldsResponse {
                fields: fields.iter().map(|f| view_out(f, &agencies)).collect(),
            })
        }
        .await;
        audit.finish(self, result).await
    }

    async fn reseal(
        &self,
        request: Request<pb::ResealRequest>,
    ) -> Result<Response<pb::ResealResponse>, Status> {
        const OPERATION: &str = "Reseal";
        let agency = caller(&request)?.agency.clone();
        let body = request.into_inner();
        let mut audit = self
            .audit(&agency, "SealingService/Reseal")
            .staff(body.staff.as_ref());
        if let Some(field) = &body.field
            && field.kind == pb::SealedFieldKind::CaseHeader as i32
        {
            audit = audit.case(&field.id);
        }
        let result = async {
            let key = convert::idempotency_key(&body.idempotency_key)?;
            let add_readers = agency_ids("add_readers", &body.add_readers, MAX_ADDED_READERS)?;
            if add_readers.is_empty() {
                return Err(Error::invalid(
                    "add_readers",
                    "name at least one agency to give the field to",
                ));
            }
            let reseal = Reseal {
                field: field_in(body.field.as_ref())?,
                add_readers,
                current_readers: agency_ids("current_readers", &body.current_readers, 1000)?,
                sealed: convert::sealed("sealed", body.sealed.as_ref(), self.max_sealed())?,
                staff: convert::staff(body.staff.as_ref())?,
            };
            let agency = agency.clone();
            self.write(OPERATION, key, &body, &audit, move |tx, now| {
                Box::pin(async move {
                    let (view, record) = sealing::reseal(tx, &agency, reseal, now).await?;
                    let agencies = directory(tx).await?;
                    let case = tx
                        .case(&record.case_id)
                        .await?
                        .ok_or_else(|| Error::NotFound {
                            what: "case",
                            id: record.case_id.to_string(),
                        })?;
                    // The response is kept for retries: without the ciphertext, which the caller has.
                    let mut field = view_out(&view, &agencies);
                    field.sealed = None;
                    let response = pb::ResealResponse {
                        field: Some(field),
                        record: Some(record_out(&record)),
                    };
                    Ok((response, target(&case, &record.field)))
                })
            })
            .await
        }
        .await;
        audit.finish(self, result).await
    }
}

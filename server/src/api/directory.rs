//! DirectoryService: who the caller is and which agencies take part.

use tonic::{Request, Response, Status};
use tsunagu_proto::v1 as pb;
use tsunagu_proto::v1::directory_service_server::DirectoryService;

use super::Hub;
use super::convert;
use crate::domain::{AgencyKind, Municipality, Timestamp};
use crate::error::Error;
use crate::identity::caller;

#[tonic::async_trait]
impl DirectoryService for Hub {
    async fn who_am_i(
        &self,
        request: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::WhoAmIResponse>, Status> {
        let caller = caller(&request)?;
        Ok(Response::new(pb::WhoAmIResponse {
            agency: Some(convert::agency(&caller.agency, &self.settings.trust_domain)),
            certificate_fingerprint: caller.certificate.fingerprint.clone(),
            certificate_not_after: Some(convert::timestamp(Timestamp::from_millis(
                caller.certificate.not_after.saturating_mul(1000),
            ))),
        }))
    }

    async fn list_agencies(
        &self,
        request: Request<pb::ListAgenciesRequest>,
    ) -> Result<Response<pb::ListAgenciesResponse>, Status> {
        caller(&request)?;
        let filter = request.get_ref();
        let municipality = match filter.municipality.as_str() {
            "" => None,
            code => Some(Municipality::parse(code).ok_or_else(|| {
                Error::invalid(
                    "municipality",
                    "must be a six-digit municipality code such as 141178",
                )
            })?),
        };
        let kind = match filter.kind.as_str() {
            "" => None,
            kind => Some(AgencyKind::parse(kind).ok_or_else(|| {
                Error::invalid("kind", "must be an agency kind such as health_centre")
            })?),
        };
        let mut tx = self.store.read().await.map_err(Error::from)?;
        let agencies = tx.agencies().await.map_err(Error::from)?;
        let agencies = agencies
            .iter()
            .filter(|a| municipality.as_ref().is_none_or(|m| a.serves(m)))
            .filter(|a| kind.as_ref().is_none_or(|k| &a.kind == k))
            .map(|a| convert::agency(a, &self.settings.trust_domain))
            .collect();
        Ok(Response::new(pb::ListAgenciesResponse { agencies }))
    }

    async fn publish_key(
        &self,
        _request: Request<pb::PublishKeyRequest>,
    ) -> Result<Response<pb::PublishKeyResponse>, Status> {
        Err(Status::unimplemented(
            "key publication arrives with end-to-end sealing",
        ))
    }

    async fn retire_key(
        &self,
        _request: Request<pb::RetireKeyRequest>,
    ) -> Result<Response<pb::RetireKeyResponse>, Status> {
        Err(Status::unimplemented(
            "key publication arrives with end-to-end sealing",
        ))
    }

    async fn list_keys(
        &self,
        _request: Request<pb::ListKeysRequest>,
    ) -> Result<Response<pb::ListKeysResponse>, Status> {
        Err(Status::unimplemented(
            "key publication arrives with end-to-end sealing",
        ))
    }
}

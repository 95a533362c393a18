//! DirectoryService: who the caller is, which agencies take part, and the agencies' age keys.
//!
//! Key RPCs act on the caller's own agency only (PublishKey and RetireKey have no field naming an
//! agency: it is the one of the mTLS certificate); any registered agency may list any agency's
//! keys. The hub stores public recipients only and never decrypts.

use tonic::{Request, Response, Status};
use tsunagu_proto::v1 as pb;
use tsunagu_proto::v1::directory_service_server::DirectoryService;

use super::Hub;
use super::convert;
use crate::casework::keys;
use crate::domain::keys::{AgeRecipient, AgencyKey, KeyFingerprint};
use crate::domain::{AgencyId, AgencyKind, Municipality, Timestamp};
use crate::error::Error;
use crate::identity::caller;
use crate::store::Locking;

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
        let agencies = crate::casework::agencies(&mut *tx, municipality.as_ref(), kind.as_ref())
            .await?
            .iter()
            .map(|a| convert::agency(a, &self.settings.trust_domain))
            .collect();
        Ok(Response::new(pb::ListAgenciesResponse { agencies }))
    }

    async fn publish_key(
        &self,
        request: Request<pb::PublishKeyRequest>,
    ) -> Result<Response<pb::PublishKeyResponse>, Status> {
        let caller = caller(&request)?;
        let key = self.publish(&caller.agency.id, request.get_ref()).await?;
        Ok(Response::new(pb::PublishKeyResponse {
            key: Some(key_out(&key)),
        }))
    }

    async fn retire_key(
        &self,
        request: Request<pb::RetireKeyRequest>,
    ) -> Result<Response<pb::RetireKeyResponse>, Status> {
        let caller = caller(&request)?;
        let key = self.retire(&caller.agency.id, request.get_ref()).await?;
        Ok(Response::new(pb::RetireKeyResponse {
            key: Some(key_out(&key)),
        }))
    }

    async fn list_keys(
        &self,
        request: Request<pb::ListKeysRequest>,
    ) -> Result<Response<pb::ListKeysResponse>, Status> {
        let caller = caller(&request)?;
        let body = request.get_ref();
        let agencies = if body.agency_ids.is_empty() {
            vec![caller.agency.id.clone()]
        } else {
            if body.agency_ids.len() > MAX_LISTED_AGENCIES {
                return Err(Error::invalid(
                    "agency_ids",
                    format!("name at most {MAX_LISTED_AGENCIES} agencies per call"),
                )
                .into());
            }
            let mut agencies: Vec<AgencyId> = Vec::with_capacity(body.agency_ids.len());
            for (i, text) in body.agency_ids.iter().enumerate() {
                let id = convert::agency_id(&format!("agency_ids[{i}]"), text.trim())?;
                if !agencies.contains(&id) {
                    agencies.push(id);
                }
            }
            agencies
        };
        let mut tx = self.store.read().await.map_err(Error::from)?;
        let keys = keys::keys_of(&mut *tx, &agencies, body.include_retired).await?;
        Ok(Response::new(pb::ListKeysResponse {
            keys: keys.iter().map(key_out).collect(),
        }))
    }
}

/// Most agencies one ListKeys call may name.
const MAX_LISTED_AGENCIES: usize = 200;

impl Hub {
    /// Publishes a recipient for the caller's own agency: there is no field naming another one.
    async fn publish(
        &self,
        agency: &AgencyId,
        body: &pb::PublishKeyRequest,
    ) -> Result<AgencyKey, Error> {
        let staff = convert::staff(body.staff.as_ref())?;
        // The error never repeats the input: it may be a secret key pasted by mistake.
        let recipient = AgeRecipient::parse(&body.recipient)
            .map_err(|reason| Error::invalid("recipient", reason.to_string()))?;
        let (agency, now) = (agency.clone(), self.clock.now());
        self.store
            .write(Locking::Exclusive, move |tx| {
                Box::pin(async move { keys::publish_key(tx, &agency, recipient, staff, now).await })
            })
            .await
    }

    /// Retires one of the caller's own keys; retiring a retired key again changes nothing.
    async fn retire(
        &self,
        agency: &AgencyId,
        body: &pb::RetireKeyRequest,
    ) -> Result<AgencyKey, Error> {
        let fingerprint = match body.fingerprint.trim() {
            "" => return Err(Error::missing("fingerprint")),
            text => KeyFingerprint::parse(text).ok_or_else(|| {
                Error::invalid(
                    "fingerprint",
                    "must be the 64 hex digits of a key's SHA-256 fingerprint, as `tsunagu keys \
                     list` shows it",
                )
            })?,
        };
        let staff = convert::staff(body.staff.as_ref())?;
        let (agency, now) = (agency.clone(), self.clock.now());
        self.store
            .write(Locking::Exclusive, move |tx| {
                Box::pin(
                    async move { keys::retire_key(tx, &agency, &fingerprint, staff, now).await },
                )
            })
            .await
    }
}

/// A key as the directory shows it: public data only.
fn key_out(key: &AgencyKey) -> pb::AgencyKey {
    pb::AgencyKey {
        agency_id: key.agency_id.to_string(),
        recipient: key.recipient.to_string(),
        fingerprint: key.fingerprint.to_string(),
        status: if key.is_active() {
            pb::KeyStatus::Active
        } else {
            pb::KeyStatus::Retired
        } as i32,
        published_at: Some(convert::timestamp(key.published_at)),
        retired_at: key.retired_at.map(convert::timestamp),
    }
}

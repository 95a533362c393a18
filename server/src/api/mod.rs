//! The gRPC services: thin handlers that parse requests into domain types, call the domain and
//! the store, and map errors through `crate::error::Error`.

pub mod audit;
pub mod cases;
pub mod convert;
pub mod council;
pub mod directory;
pub mod events;
pub mod referrals;

use std::sync::Arc;

use prost::Message;
use sha2::{Digest as _, Sha256};

use crate::domain::{AgencyId, Clock};
use crate::error::Error;
use crate::settings::Settings;
use crate::store::{Store, Transaction};

/// What every handler shares.
#[derive(Clone)]
pub struct Hub {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub settings: Arc<Settings>,
    /// Set when the hub begins to shut down: open subscriptions end, so that draining finishes.
    pub stopping: Arc<tokio::sync::watch::Sender<bool>>,
    /// The audit log's writer: always on, except in the benchmark that measures its cost.
    pub audit: crate::casework::audit::Auditor,
}

impl Hub {
    pub fn max_sealed(&self) -> usize {
        self.settings.limits.max_sealed_bytes
    }
}

/// The fingerprint of a request, to tell a retry from a different request under the same key.
pub fn request_digest(request: &impl Message) -> Vec<u8> {
    Sha256::digest(request.encode_to_vec()).to_vec()
}

/// The response first sent for this idempotency key, when the request is the same; a different
/// request under a used key is refused.
pub async fn replay<R: Message + Default>(
    tx: &mut dyn Transaction,
    agency: &AgencyId,
    operation: &str,
    key: &str,
    digest: &[u8],
) -> Result<Option<R>, Error> {
    let Some((first_digest, response)) = tx.idempotent_response(agency, operation, key).await?
    else {
        return Ok(None);
    };
    if first_digest != digest {
        return Err(Error::AlreadyExists(format!(
            "idempotency_key {key:?} was already used for a different {operation} request; \
             use a new key for a new request"
        )));
    }
    R::decode(response.as_slice())
        .map(Some)
        .map_err(Error::internal)
}

/// Keeps the response of a write under its idempotency key, in the write's transaction.
pub async fn remember(
    tx: &mut dyn Transaction,
    agency: &AgencyId,
    operation: &str,
    key: &str,
    digest: &[u8],
    response: &impl Message,
    at: crate::domain::Timestamp,
) -> Result<(), Error> {
    tx.record_idempotent_response(
        agency,
        operation,
        key,
        digest,
        &response.encode_to_vec(),
        at,
    )
    .await?;
    Ok(())
}

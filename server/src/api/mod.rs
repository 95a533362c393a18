//! The gRPC services: thin handlers that parse requests into domain types, call the domain and
//! the store, and map errors through `crate::error::Error`.

pub mod audit;
pub mod cases;
pub mod convert;
pub mod council;
pub mod directory;
pub mod events;
pub mod feed_cache;
pub mod outcomes;
pub mod referrals;
pub mod sealing;
pub mod transfers;
pub mod views;

use std::sync::Arc;

use prost::Message;
use sha2::{Digest as _, Sha256};

use futures::future::BoxFuture;

use crate::casework::audit::AuditTarget;
use crate::domain::{AgencyId, Clock, Timestamp};
use crate::error::Error;
use crate::settings::Settings;
use crate::store::{Locking, Store, Transaction};

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
    /// Signs the audit chain's head for clients to remember (`GetAuditHead`).
    pub audit_signer: Arc<crate::signing::AuditSigner>,
    /// Feed entries already read, served again without the database.
    pub feed_cache: Arc<feed_cache::FeedCache>,
}

impl Hub {
    pub fn max_sealed(&self) -> usize {
        self.settings.limits.max_sealed_bytes
    }
}

/// The fingerprint of a request, to tell a retry from a different request under the same key.
fn request_digest(request: &impl Message) -> Vec<u8> {
    Sha256::digest(request.encode_to_vec()).to_vec()
}

/// The response first sent for this idempotency key, when the request is the same; a different
/// request under a used key is refused.
async fn replay<R: Message + Default>(
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
async fn remember(
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

/// The writes checked to read-then-write only rows that the store's narrower locks guard (the
/// cases they read, their idempotency key, the feeds they append to, the audit chain): on
/// PostgreSQL they run side by side when about different cases; every other write runs alone
/// (see `store::Locking`). A use case joins this list only once each of its reads that it
/// writes after is of a case it locks first (through `case_for`, `consents`, `referral` or
/// `consent`).
const NARROW_WRITES: &[&str] = &[
    "OpenCase",
    "RecordConsent",
    "SendReferral",
    "RecordReferralAction",
    "SendNote",
];

impl Hub {
    /// Makes an audited, idempotent write of `request` by the audited caller to `operation` (the
    /// RPC's name in the idempotency table) under `key`, already checked, as one job of the
    /// store's writer. When the key was used for the same request it answers the first response
    /// (recording the call); otherwise it runs `use_case` at the write's instant, keeps the
    /// response under the key, and records the call about the target the use case names. The
    /// answer comes once the write is durable.
    pub async fn write<R, F>(
        &self,
        operation: &'static str,
        key: String,
        request: &impl Message,
        audit: &self::audit::Audit,
        use_case: F,
    ) -> Result<R, Error>
    where
        R: Message + Default + 'static,
        F: for<'t> FnOnce(
                &'t mut dyn Transaction,
                Timestamp,
            ) -> BoxFuture<'t, Result<(R, AuditTarget), Error>>
            + Send
            + 'static,
    {
        let digest = request_digest(request);
        let now = self.clock.now();
        let (agency, audit) = (audit.agency().clone(), audit.clone());
        let locking = if NARROW_WRITES.contains(&operation) {
            Locking::Narrow
        } else {
            Locking::Exclusive
        };
        self.store
            .write(locking, move |tx| {
                Box::pin(async move {
                    if let Some(first) = replay::<R>(tx, &agency, operation, &key, &digest).await? {
                        audit.write(tx, audit.named(), now).await?;
                        return Ok(first);
                    }
                    let (response, target) = use_case(tx, now).await?;
                    remember(tx, &agency, operation, &key, &digest, &response, now).await?;
                    audit.write(tx, &target, now).await?;
                    Ok(response)
                })
            })
            .await
    }
}

impl Hub {
    /// Makes an audited write that has no idempotency key (a retry finds the state it left and
    /// answers from that): runs `use_case` as one job of the store's writer and records the call
    /// about the target it names, at `now`.
    pub async fn write_audited<R, F>(
        &self,
        audit: &self::audit::Audit,
        now: Timestamp,
        use_case: F,
    ) -> Result<R, Error>
    where
        R: Send + 'static,
        F: for<'t> FnOnce(
                &'t mut dyn Transaction,
            ) -> BoxFuture<'t, Result<(R, AuditTarget), Error>>
            + Send
            + 'static,
    {
        let audit = audit.clone();
        self.store
            .write(Locking::Exclusive, move |tx| {
                Box::pin(async move {
                    let (response, target) = use_case(tx).await?;
                    audit.write(tx, &target, now).await?;
                    Ok(response)
                })
            })
            .await
    }
}

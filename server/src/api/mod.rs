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

use crate::domain::{AgencyId, Clock, Timestamp};
use crate::error::Error;
use crate::settings::Settings;
use crate::store::{Lookup, Store, Transaction};

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
/// (see `Store::begin_narrow`). A use case joins this list only once each of its reads that it
/// writes after is of a case it locks first (through `case_for`, `consents`, `referral` or
/// `consent`).
const NARROW_WRITES: &[&str] = &[
    "OpenCase",
    "RecordConsent",
    "SendReferral",
    "RecordReferralAction",
    "SendNote",
];

/// A write RPC that began: either the first response again, or a new write to make.
pub enum Began<'a, R> {
    /// The key was used for this same request: its first response, with the call recorded.
    Replayed(R),
    Fresh(Write<'a>),
}

/// A write in progress: its transaction and the instant it happens at.
pub struct Write<'a> {
    pub tx: Box<dyn Transaction>,
    pub now: Timestamp,
    agency: &'a AgencyId,
    operation: &'static str,
    key: &'a str,
    digest: Vec<u8>,
}

impl Hub {
    /// Begins an audited, idempotent write of `request` by `agency` to `operation` (the RPC's
    /// name in the idempotency table) under `key`, already checked. When the key was used for
    /// the same request it answers the first response (recording the call); otherwise the caller
    /// makes the write in `tx` and ends with [`Write::finish`]. `reads` are the reads the write
    /// will make first, fetched together with the key's lookup (see [`Transaction::prefetch`]).
    pub async fn begin_write<'a, R: Message + Default>(
        &self,
        agency: &'a AgencyId,
        operation: &'static str,
        key: &'a str,
        request: &impl Message,
        audit: &self::audit::Audit,
        reads: &[Lookup<'_>],
    ) -> Result<Began<'a, R>, Error> {
        let digest = request_digest(request);
        let now = self.clock.now();
        let mut lookups = Vec::with_capacity(reads.len() + 1);
        lookups.push(Lookup::IdempotentResponse {
            agency,
            operation,
            key,
        });
        if self.audit.mode() != crate::casework::audit::AuditMode::Off {
            // The call's audit record then goes in with the commit.
            lookups.push(Lookup::AuditHead);
        }
        lookups.extend_from_slice(reads);
        let mut tx = if NARROW_WRITES.contains(&operation) {
            self.store.begin_narrow(&lookups).await?
        } else {
            self.store.begin_with(&lookups).await?
        };
        if let Some(first) = replay(&mut *tx, agency, operation, key, &digest).await? {
            audit.write(&mut *tx, audit.named(), now).await?;
            tx.commit().await?;
            return Ok(Began::Replayed(first));
        }
        Ok(Began::Fresh(Write {
            tx,
            now,
            agency,
            operation,
            key,
            digest,
        }))
    }
}

impl Write<'_> {
    /// Keeps `response` under the key, appends the call's audit record about `target`, and
    /// commits; returns the response once the commit is durable.
    pub async fn finish<R: Message>(
        mut self,
        audit: &self::audit::Audit,
        response: R,
        target: &crate::casework::audit::AuditTarget,
    ) -> Result<R, Error> {
        remember(
            &mut *self.tx,
            self.agency,
            self.operation,
            self.key,
            &self.digest,
            &response,
            self.now,
        )
        .await?;
        audit.write(&mut *self.tx, target, self.now).await?;
        self.tx.commit().await?;
        Ok(response)
    }
}

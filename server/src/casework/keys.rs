//! Age keys: an agency publishes the recipients it is sealed to and retires them, for its own
//! agency only. The hub keeps public recipients, never a secret key.

use crate::domain::keys::{
    AgeRecipient, AgencyKey, KeyFingerprint, Publication, PublishRefused, decide_publication,
};
use crate::domain::{AgencyId, Staff, Timestamp};
use crate::error::Error;
use crate::store::{StoreError, Transaction};

/// The keys of `agencies` (retired ones too when `include_retired`), in the order named; an
/// agency that is not registered is refused.
pub async fn keys_of(
    tx: &mut dyn Transaction,
    agencies: &[AgencyId],
    include_retired: bool,
) -> Result<Vec<AgencyKey>, Error> {
    let mut keys = Vec::new();
    for agency in agencies {
        if tx.agency(agency).await?.is_none() {
            return Err(Error::NotFound {
                what: "agency",
                id: agency.to_string(),
            });
        }
        keys.extend(tx.agency_keys(agency, include_retired).await?);
    }
    Ok(keys)
}

/// Publishes `recipient` for `agency`; publishing an active key again answers it as it is.
pub async fn publish_key(
    tx: &mut dyn Transaction,
    agency: &AgencyId,
    recipient: AgeRecipient,
    staff: Staff,
    now: Timestamp,
) -> Result<AgencyKey, Error> {
    let existing = tx.key_by_fingerprint(&recipient.fingerprint()).await?;
    let active = tx.agency_keys(agency, false).await?.len();
    match decide_publication(agency, existing, active) {
        Ok(Publication::AlreadyActive(key)) => Ok(*key),
        Ok(Publication::New) => {
            let key = AgencyKey::publish(agency.clone(), recipient, now, staff);
            tx.insert_key(&key).await?;
            tracing::info!(%agency, fingerprint = %key.fingerprint, "age key published");
            Ok(key)
        }
        Err(refused @ PublishRefused::Retired(_)) => {
            Err(Error::FailedPrecondition(format!("recipient: {refused}")))
        }
        Err(refused @ PublishRefused::OtherAgency) => {
            Err(Error::AlreadyExists(format!("recipient: {refused}")))
        }
        Err(refused @ PublishRefused::TooMany) => Err(Error::LimitReached {
            field: "recipient".to_owned(),
            reason: refused.to_string(),
        }),
    }
}

/// Retires one of `agency`'s own keys; retiring a retired key again changes nothing.
pub async fn retire_key(
    tx: &mut dyn Transaction,
    agency: &AgencyId,
    fingerprint: &KeyFingerprint,
    staff: Staff,
    now: Timestamp,
) -> Result<AgencyKey, Error> {
    let key = tx
        .key_by_fingerprint(fingerprint)
        .await?
        .filter(|key| &key.agency_id == agency)
        .ok_or_else(|| Error::NotFound {
            what: "age key",
            id: format!("{fingerprint} of agency {agency}"),
        })?;
    if !key.is_active() {
        return Ok(key);
    }
    if !tx.retire_key(agency, fingerprint, now, &staff).await? {
        return Err(Error::internal(StoreError::corrupt(
            "agency_keys",
            "an active key could not be retired",
        )));
    }
    tracing::info!(%agency, %fingerprint, "age key retired");
    Ok(AgencyKey {
        retired_at: Some(now),
        retired_by: Some(staff),
        ..key
    })
}

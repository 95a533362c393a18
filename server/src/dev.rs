//! The development directory: registers the certs-dev sample agencies on first start, so that
//! `tsunagu-hub serve` works with no set-up at all.

use crate::domain::{Agency, AgencyId, AgencyKind, AgencyStatus, Municipality, Timestamp};
use crate::pki::{DEV_AGENCIES, DevAgency};
use crate::store::{Store, StoreError};

/// The domain agency for a certs-dev sample.
pub fn dev_agency(sample: &DevAgency) -> Result<Agency, StoreError> {
    let bad = |what: &str| StoreError::corrupt("dev agencies", what.to_owned());
    let codes = |list: &[&str]| {
        list.iter()
            .map(|code| Municipality::parse(code).ok_or_else(|| bad("municipality")))
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(Agency {
        id: AgencyId::parse(sample.agency_id).ok_or_else(|| bad("agency_id"))?,
        kind: AgencyKind::parse(sample.kind).ok_or_else(|| bad("kind"))?,
        display_name: sample.display_name.to_owned(),
        municipalities: codes(sample.municipalities)?,
        council_memberships: codes(sample.council_memberships)?,
        coordinator_of: codes(sample.coordinator_of)?,
        status: AgencyStatus::Active,
    })
}

/// Registers every sample agency when the directory is empty; does nothing otherwise, so an
/// operator's changes (a suspension, say) survive restarts.
pub async fn register_dev_agencies(store: &dyn Store, at: Timestamp) -> Result<(), StoreError> {
    let mut tx = store.begin().await?;
    if !tx.agencies().await?.is_empty() {
        return Ok(());
    }
    for sample in DEV_AGENCIES {
        tx.insert_agency(&dev_agency(sample)?, at).await?;
    }
    tx.commit().await?;
    tracing::info!(
        count = DEV_AGENCIES.len(),
        "registered the development agencies"
    );
    Ok(())
}

//! The agency key directory: each agency's published age recipients (public keys only).

use super::StoreError;
use super::db::{Connection, Row, query};
use async_trait::async_trait;

use crate::domain::keys::{AgencyKey, KeyFingerprint};
use crate::domain::{AgencyId, Staff, Timestamp};

/// The columns of `agency_keys`, in the order `key_from_row` reads them.
pub(crate) const KEY_COLUMNS: &str = "agency_id, fingerprint, recipient, published_at, \
     published_by_name, published_by_role, retired_at, retired_by_name, retired_by_role";

/// Store operations of this area, part of every `Transaction`.
#[async_trait]
pub trait KeyQueries: Send {
    /// The keys of one agency, oldest first; retired ones only when asked for.
    async fn agency_keys(
        &mut self,
        agency: &AgencyId,
        include_retired: bool,
    ) -> Result<Vec<AgencyKey>, StoreError>;

    /// The key with this fingerprint, whichever agency published it.
    async fn key_by_fingerprint(
        &mut self,
        fingerprint: &KeyFingerprint,
    ) -> Result<Option<AgencyKey>, StoreError>;

    /// Stores a newly published key. Fails with `Conflict` when the fingerprint is taken.
    async fn insert_key(&mut self, key: &AgencyKey) -> Result<(), StoreError>;

    /// Marks an active key of `agency` retired; false when it has no such active key.
    async fn retire_key(
        &mut self,
        agency: &AgencyId,
        fingerprint: &KeyFingerprint,
        at: Timestamp,
        by: &Staff,
    ) -> Result<bool, StoreError>;
}

pub(crate) fn key_from_row(row: &Row) -> Result<crate::domain::keys::AgencyKey, StoreError> {
    use crate::domain::keys::{AgeRecipient, AgencyKey, KeyFingerprint};
    use crate::domain::{AgencyId, Staff};
    use crate::store::queries::{code, timestamp};
    const T: &str = "agency_keys";
    let agency: String = row.try_get("agency_id")?;
    let fingerprint: String = row.try_get("fingerprint")?;
    let recipient: String = row.try_get("recipient")?;
    let recipient =
        AgeRecipient::parse(&recipient).map_err(|_| StoreError::corrupt(T, "recipient"))?;
    let fingerprint = code(T, "fingerprint", &fingerprint, KeyFingerprint::parse)?;
    if recipient.fingerprint() != fingerprint {
        return Err(StoreError::corrupt(
            T,
            format!("fingerprint {fingerprint} does not match its recipient"),
        ));
    }
    let retired_name: Option<String> = row.try_get("retired_by_name")?;
    let retired_role: Option<String> = row.try_get("retired_by_role")?;
    Ok(AgencyKey {
        agency_id: code(T, "agency_id", &agency, AgencyId::parse)?,
        recipient,
        fingerprint,
        published_at: crate::domain::Timestamp::from_millis(row.try_get("published_at")?),
        published_by: Staff {
            name: row.try_get("published_by_name")?,
            role: row.try_get("published_by_role")?,
        },
        retired_at: timestamp(row.try_get("retired_at")?),
        retired_by: retired_name
            .zip(retired_role)
            .map(|(name, role)| Staff { name, role }),
    })
}

#[async_trait::async_trait]
impl<C: Connection> crate::store::keys::KeyQueries for C {
    async fn agency_keys(
        &mut self,
        agency: &crate::domain::AgencyId,
        include_retired: bool,
    ) -> Result<Vec<crate::domain::keys::AgencyKey>, StoreError> {
        use crate::store::keys::KEY_COLUMNS;
        let rows = query(format!(
            "SELECT {KEY_COLUMNS} FROM agency_keys WHERE agency_id = $1 \
                     AND (retired_at IS NULL OR $2 = 1) ORDER BY published_at, fingerprint"
        ))
        .bind(agency.as_str())
        .bind(i64::from(include_retired))
        .fetch_all(self)
        .await?;
        rows.iter().map(key_from_row).collect()
    }

    async fn key_by_fingerprint(
        &mut self,
        fingerprint: &crate::domain::keys::KeyFingerprint,
    ) -> Result<Option<crate::domain::keys::AgencyKey>, StoreError> {
        use crate::store::keys::KEY_COLUMNS;
        let row = query(format!(
            "SELECT {KEY_COLUMNS} FROM agency_keys WHERE fingerprint = $1"
        ))
        .bind(fingerprint.as_str())
        .fetch_optional(self)
        .await?;
        row.as_ref().map(key_from_row).transpose()
    }

    async fn insert_key(&mut self, key: &crate::domain::keys::AgencyKey) -> Result<(), StoreError> {
        let result = query(
            "INSERT INTO agency_keys (agency_id, fingerprint, recipient, published_at, \
                     published_by_name, published_by_role, retired_at, retired_by_name, \
                     retired_by_role) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                     ON CONFLICT DO NOTHING",
        )
        .bind(key.agency_id.as_str())
        .bind(key.fingerprint.as_str())
        .bind(key.recipient.as_str())
        .bind(key.published_at.millis())
        .bind(&key.published_by.name)
        .bind(&key.published_by.role)
        .bind(crate::store::queries::millis(key.retired_at))
        .bind(key.retired_by.as_ref().map(|s| s.name.clone()))
        .bind(key.retired_by.as_ref().map(|s| s.role.clone()))
        .execute(self)
        .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!("age key {}", key.fingerprint)));
        }
        Ok(())
    }

    async fn retire_key(
        &mut self,
        agency: &crate::domain::AgencyId,
        fingerprint: &crate::domain::keys::KeyFingerprint,
        at: crate::domain::Timestamp,
        by: &crate::domain::Staff,
    ) -> Result<bool, StoreError> {
        let result = query(
            "UPDATE agency_keys SET retired_at = $1, retired_by_name = $2, \
                     retired_by_role = $3 WHERE agency_id = $4 AND fingerprint = $5 \
                     AND retired_at IS NULL",
        )
        .bind(at.millis())
        .bind(&by.name)
        .bind(&by.role)
        .bind(agency.as_str())
        .bind(fingerprint.as_str())
        .execute(self)
        .await?;
        Ok(result.rows_affected() == 1)
    }
}

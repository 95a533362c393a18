//! The SQL shared by every backend. Runtime queries with `$1` placeholders work on SQLite and
//! PostgreSQL alike, so one body is stamped out per backend by `transaction_queries!`.

/// Joins municipality codes for a comma-separated column.
pub(crate) fn join_codes<T: std::fmt::Display>(codes: &[T]) -> String {
    codes
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Implements `Transaction` for a backend's transaction wrapper `$tx` (a struct with a field
/// `tx: sqlx::Transaction<'static, DB>`), using `$row` as the backend's row type.
macro_rules! transaction_queries {
    ($tx:ty, $row:ty) => {
        fn parse_codes(
            table: &'static str,
            text: &str,
        ) -> Result<Vec<$crate::domain::Municipality>, $crate::store::StoreError> {
            text.split(',')
                .filter(|code| !code.is_empty())
                .map(|code| {
                    $crate::domain::Municipality::parse(code).ok_or_else(|| {
                        $crate::store::StoreError::corrupt(table, format!("municipality {code:?}"))
                    })
                })
                .collect()
        }

        fn agency_from_row(
            row: &$row,
        ) -> Result<$crate::domain::Agency, $crate::store::StoreError> {
            use sqlx::Row as _;
            use $crate::domain::{AgencyId, AgencyKind, AgencyStatus};
            use $crate::store::StoreError;
            let id: String = row.try_get("agency_id")?;
            let kind: String = row.try_get("kind")?;
            let status: String = row.try_get("status")?;
            Ok($crate::domain::Agency {
                id: AgencyId::parse(&id)
                    .ok_or_else(|| StoreError::corrupt("agencies", "agency_id"))?,
                kind: AgencyKind::parse(&kind)
                    .ok_or_else(|| StoreError::corrupt("agencies", "kind"))?,
                display_name: row.try_get("display_name")?,
                municipalities: parse_codes("agencies", row.try_get("municipalities")?)?,
                council_memberships: parse_codes("agencies", row.try_get("council_memberships")?)?,
                coordinator_of: parse_codes("agencies", row.try_get("coordinator_of")?)?,
                status: AgencyStatus::from_code(&status)
                    .ok_or_else(|| StoreError::corrupt("agencies", "status"))?,
            })
        }

        const AGENCY_COLUMNS: &str = "agency_id, kind, display_name, municipalities, \
             council_memberships, coordinator_of, status";

        #[async_trait::async_trait]
        impl $crate::store::Transaction for $tx {
            async fn commit(self: Box<Self>) -> Result<(), $crate::store::StoreError> {
                self.tx.commit().await?;
                Ok(())
            }

            async fn agency(
                &mut self,
                id: &$crate::domain::AgencyId,
            ) -> Result<Option<$crate::domain::Agency>, $crate::store::StoreError> {
                let row = sqlx::query(&format!(
                    "SELECT {AGENCY_COLUMNS} FROM agencies WHERE agency_id = $1"
                ))
                .bind(id.as_str())
                .fetch_optional(&mut *self.tx)
                .await?;
                row.as_ref().map(agency_from_row).transpose()
            }

            async fn agencies(
                &mut self,
            ) -> Result<Vec<$crate::domain::Agency>, $crate::store::StoreError> {
                let rows = sqlx::query(&format!(
                    "SELECT {AGENCY_COLUMNS} FROM agencies ORDER BY agency_id"
                ))
                .fetch_all(&mut *self.tx)
                .await?;
                rows.iter().map(agency_from_row).collect()
            }

            async fn insert_agency(
                &mut self,
                agency: &$crate::domain::Agency,
                at: $crate::domain::Timestamp,
            ) -> Result<(), $crate::store::StoreError> {
                use $crate::store::queries::join_codes;
                let result = sqlx::query(
                    "INSERT INTO agencies (agency_id, kind, display_name, municipalities, \
                     council_memberships, coordinator_of, status, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) ON CONFLICT DO NOTHING",
                )
                .bind(agency.id.as_str())
                .bind(agency.kind.as_str())
                .bind(&agency.display_name)
                .bind(join_codes(&agency.municipalities))
                .bind(join_codes(&agency.council_memberships))
                .bind(join_codes(&agency.coordinator_of))
                .bind(agency.status.code())
                .bind(at.millis())
                .execute(&mut *self.tx)
                .await?;
                if result.rows_affected() == 0 {
                    return Err($crate::store::StoreError::Conflict(format!(
                        "agency {}",
                        agency.id
                    )));
                }
                Ok(())
            }

            async fn set_agency_status(
                &mut self,
                id: &$crate::domain::AgencyId,
                status: $crate::domain::AgencyStatus,
                at: $crate::domain::Timestamp,
            ) -> Result<bool, $crate::store::StoreError> {
                let result = sqlx::query(
                    "UPDATE agencies SET status = $1, updated_at = $2 WHERE agency_id = $3",
                )
                .bind(status.code())
                .bind(at.millis())
                .bind(id.as_str())
                .execute(&mut *self.tx)
                .await?;
                Ok(result.rows_affected() == 1)
            }

            async fn revoke_certificate(
                &mut self,
                fingerprint: &str,
                reason: &str,
                at: $crate::domain::Timestamp,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO revoked_certificates (fingerprint, reason, revoked_at) \
                     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                )
                .bind(fingerprint)
                .bind(reason)
                .bind(at.millis())
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn is_certificate_revoked(
                &mut self,
                fingerprint: &str,
            ) -> Result<bool, $crate::store::StoreError> {
                let row = sqlx::query("SELECT 1 FROM revoked_certificates WHERE fingerprint = $1")
                    .bind(fingerprint)
                    .fetch_optional(&mut *self.tx)
                    .await?;
                Ok(row.is_some())
            }
        }
    };
}

pub(crate) use transaction_queries;

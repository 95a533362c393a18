//! The tamper-evident audit log: appending records to the hash chain and reading them back.

use async_trait::async_trait;

/// Store operations of this area, part of every `Transaction`.
#[async_trait]
pub trait AuditQueries: Send {}

/// Implements `AuditQueries` for a backend's transaction wrapper `$tx` (with a field
/// `tx: sqlx::Transaction<'static, DB>`), using `$row` as the backend's row type.
macro_rules! audit_queries {
    ($tx:ty, $row:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::audit::AuditQueries for $tx {}
    };
}

pub(crate) use audit_queries;

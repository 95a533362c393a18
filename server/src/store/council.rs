//! The 要対協: council registrations, meetings and decisions.

use async_trait::async_trait;

/// Store operations of this area, part of every `Transaction`.
#[async_trait]
pub trait CouncilQueries: Send {}

/// Implements `CouncilQueries` for a backend's transaction wrapper `$tx` (with a field
/// `tx: sqlx::Transaction<'static, DB>`), using `$row` as the backend's row type.
macro_rules! council_queries {
    ($tx:ty, $row:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::council::CouncilQueries for $tx {}
    };
}

pub(crate) use council_queries;

//! The agency key directory: each agency's published age recipients.

use async_trait::async_trait;

/// Store operations of this area, part of every `Transaction`.
#[async_trait]
pub trait KeyQueries: Send {}

/// Implements `KeyQueries` for a backend's transaction wrapper `$tx` (with a field
/// `tx: sqlx::Transaction<'static, DB>`), using `$row` as the backend's row type.
macro_rules! keys_queries {
    ($tx:ty, $row:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::keys::KeyQueries for $tx {}
    };
}

pub(crate) use keys_queries;

//! The gRPC services: thin handlers that parse requests into domain types, call the domain and
//! the store, and map errors through `crate::error::Error`.

pub mod convert;
pub mod directory;

use std::sync::Arc;

use crate::domain::Clock;
use crate::settings::Settings;
use crate::store::Store;

/// What every handler shares.
#[derive(Clone)]
pub struct Hub {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub settings: Arc<Settings>,
}

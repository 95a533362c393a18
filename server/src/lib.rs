//! The Tsunagu hub: a gRPC server over mutual TLS that carries consent-gated referrals between
//! child and maternal support agencies and tracks every handoff until the family connected.

pub mod access;
pub mod api;
pub mod casework;
pub mod certificates;
pub mod dev;
pub mod dev_pki;
pub mod domain;
pub mod error;
pub mod identity;
pub mod ops;
pub mod pki;
pub mod settings;
pub mod signing;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod traces;

pub use settings::Settings;
pub use startup::{Application, StartupError};

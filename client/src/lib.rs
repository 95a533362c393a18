//! Typed client library for agencies connecting to a Tsunagu hub over mutual TLS.
//!
//! ```no_run
//! # async fn example() -> Result<(), tsunagu_client::ClientError> {
//! use tsunagu_client::profile::{Credentials, Environment, Selection};
//! use tsunagu_client::{DEFAULT_TIMEOUT, Hub};
//! use tsunagu_proto::v1::WhoAmIRequest;
//!
//! let selection = Selection { agency: Some("aoba-kodomo".into()), ..Selection::default() };
//! let credentials = Credentials::resolve(&selection, &Environment::from_process())?;
//! let hub = Hub::connect(&credentials.connect_options(DEFAULT_TIMEOUT)?).await?;
//! let me = hub.directory().who_am_i(WhoAmIRequest {}).await?.into_inner();
//! # let _ = me;
//! # Ok(())
//! # }
//! ```

pub mod audit_head;
pub mod console;
pub mod council;
pub mod error;
pub mod hub;
pub mod keys;
pub mod outcomes;
pub mod pack;
pub mod profile;
pub mod render;
pub mod reseal;
pub mod seal;
pub mod sealing;
pub mod trust;

pub use error::{ClientError, code_phrase, describe_status};
pub use hub::{ConnectOptions, DEFAULT_HUB, DEFAULT_SERVER_NAME, DEFAULT_TIMEOUT, Hub};

//! The hub's error type and its one mapping to gRPC status codes.

use tonic::{Code, Status};

use crate::store::StoreError;

/// Everything a call can fail with. Handlers return it; `From<Error> for Status` is the only place
/// gRPC codes are chosen.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Malformed or missing input; the message names the field.
    #[error("{field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    #[error("{0}")]
    Unauthenticated(String),
    /// Not a participant, or the wrong role for this action.
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    /// No legal basis, an invalid transition, a withdrawn consent.
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    AlreadyExists(String),
    /// A size or rate limit; the message names the field and the limit.
    #[error("{field}: {size} bytes is over the limit of {limit} bytes")]
    ResourceExhausted {
        field: String,
        size: usize,
        limit: usize,
    },
    /// A count limit (for example the most active keys an agency may hold); the message names
    /// the field and what to do.
    #[error("{field}: {reason}")]
    LimitReached { field: String, reason: String },
    /// The database cannot be reached; nothing was written and retrying is safe.
    #[error(
        "the hub's database is unavailable right now; retrying with the same idempotency key is \
         safe and never writes twice"
    )]
    Unavailable(#[source] StoreError),
    /// A bug or an unexpected failure; logged with its cause chain, never shown to the peer.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn missing(field: impl Into<String>) -> Self {
        Self::invalid(field, "is required")
    }

    /// The one refusal for an id the caller may not see, whether or not it exists: the same code
    /// and message either way, so that probing ids tells a non-participant nothing (no
    /// existence oracle). The id is not repeated: the caller knows what it asked for.
    pub fn not_visible(what: &'static str, caller: &crate::domain::AgencyId) -> Self {
        let why = if what == "meeting" {
            "your agency does not sit on its 要対協 (only the council's members and its \
             coordinator see its meetings and packs)"
        } else {
            "your agency takes no part in it"
        };
        Self::PermissionDenied(format!(
            "no {what} with this id that agency {caller} may see: it does not exist, or {why}; \
             check the id, or ask a participant or the municipality's coordinator (調整機関)"
        ))
    }

    pub fn internal(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(error))
    }

    /// The gRPC code this error maps to, for the audit log's outcome.
    pub fn code(&self) -> Code {
        match self {
            Self::InvalidArgument { .. } => Code::InvalidArgument,
            Self::Unauthenticated(_) => Code::Unauthenticated,
            Self::PermissionDenied(_) => Code::PermissionDenied,
            Self::NotFound { .. } => Code::NotFound,
            Self::FailedPrecondition(_) => Code::FailedPrecondition,
            Self::AlreadyExists(_) => Code::AlreadyExists,
            Self::ResourceExhausted { .. } | Self::LimitReached { .. } => Code::ResourceExhausted,
            Self::Unavailable(_) => Code::Unavailable,
            Self::Internal(_) => Code::Internal,
        }
    }
}

impl From<StoreError> for Error {
    fn from(error: StoreError) -> Self {
        if error.is_unavailable() {
            Self::Unavailable(error)
        } else {
            Self::internal(error)
        }
    }
}

/// Renders an error and every cause below it on one line, for logs.
pub fn cause_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        let code = error.code();
        match &error {
            Error::Internal(_) => {
                tracing::error!(error = %cause_chain(&error), "internal error");
            }
            Error::Unavailable(_) => {
                tracing::warn!(error = %cause_chain(&error), "database unavailable");
            }
            _ => {}
        }
        Status::new(code, error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_show_the_peer_no_internals() {
        let io = std::io::Error::other("disk /var/secret is full");
        let status = Status::from(Error::internal(io));
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "internal error");
    }

    #[test]
    fn invalid_arguments_name_the_field() {
        let status = Status::from(Error::invalid("referral.purpose", "is not a purpose code"));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().starts_with("referral.purpose:"));
    }

    #[test]
    fn cause_chains_include_every_source() {
        let io = std::io::Error::other("root cause");
        let error = Error::internal(io);
        assert_eq!(cause_chain(&error), "internal error: root cause");
    }
}

//! The typed errors of the client library, with short human phrases for gRPC status codes.

use std::path::PathBuf;

use thiserror::Error;

/// Everything that can go wrong while finding credentials, connecting to a hub or calling it.
#[derive(Debug, Error)]
pub enum ClientError {
    /// A credential or configuration file does not exist.
    #[error("{what} file {} not found: {hint}", path.display())]
    MissingFile {
        /// What the file is for: "CA certificate", "certificate", "private key", ….
        what: &'static str,
        path: PathBuf,
        /// What to do about it.
        hint: String,
    },

    /// A file exists but could not be read.
    #[error("cannot read {what} file {}: {source}", path.display())]
    ReadFile {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A file was read but does not hold what it should (for example no PEM certificate).
    #[error("{what} file {} is not usable: {reason}", path.display())]
    InvalidFile {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },

    /// In-memory credentials are not usable (for example a certificate without its key).
    #[error("invalid credentials: {0}")]
    InvalidCredentials(String),

    /// The configuration file is not valid TOML or does not follow the expected shape.
    #[error("configuration file {} is invalid: {reason}", path.display())]
    InvalidConfig { path: PathBuf, reason: String },

    /// The chosen profile is not in the configuration file.
    #[error("profile `{name}` is not defined in {}{}", path.display(), available_profiles(available))]
    UnknownProfile {
        name: String,
        path: PathBuf,
        available: Vec<String>,
    },

    /// Neither `--as`, `--profile` nor a `default_profile` chose whose credentials to use.
    #[error(
        "no agency chosen: pick a development agency with --as <agency-id> \
         (certificates under {certs_dev}) or a profile with --profile <name> \
         (configuration file {config})"
    )]
    NoAgencyChosen { certs_dev: String, config: String },

    /// The selection of credentials contradicts itself (for example `--as` with `--profile`).
    #[error("{0}")]
    ConflictingSelection(String),

    /// An agency id given on the command line is not a valid agency id.
    #[error(
        "`{0}` is not an agency id: use 2 to 63 lower-case ASCII letters, digits and '-' \
         (for example aoba-kodomo)"
    )]
    InvalidAgencyId(String),

    /// The hub address cannot be used.
    #[error("invalid hub address `{endpoint}`: {reason}")]
    InvalidEndpoint { endpoint: String, reason: String },

    /// The TLS settings (CA, certificate, key, server name) were refused.
    #[error("TLS settings for {endpoint} are not usable: {detail}")]
    Tls { endpoint: String, detail: String },

    /// The hub could not be reached or the TLS handshake failed.
    #[error("cannot connect to the hub at {endpoint}: {detail}")]
    Connect { endpoint: String, detail: String },

    /// A payload could not be sealed (no recipients, an unusable recipient).
    #[error("cannot seal the payload: {0}")]
    Seal(String),

    /// A sealed payload was not sealed to this agency's age identity.
    #[error("the sealed payload is not readable by this agency")]
    NotARecipient,

    /// A sealed payload is not a well-formed age file, or it was altered.
    #[error("cannot open the sealed payload: {0}")]
    Open(String),

    /// A file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    WriteFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// `keys init` would overwrite an existing identity file.
    #[error(
        "age identity file {} already exists: `tsunagu keys rotate` replaces its key and keeps \
         the old one so that earlier items still open; `tsunagu keys publish` publishes it as it \
         is; `tsunagu keys init --force` makes a new one (the old file is kept beside it)",
        path.display()
    )]
    IdentityFileExists { path: PathBuf },

    /// An agency to seal to has no active key in the directory.
    #[error("agency {agency} has published no age key; ask it to run `tsunagu keys init`")]
    NoAgeKey { agency: String },

    /// A key of an agency that this profile verified out of band is no longer active.
    #[error(
        "the key set of agency {agency} changed: the key you verified ({}) is no longer among \
         its active keys ({}). Check the new fingerprint with {agency} out of band (by phone, \
         not through the hub) and pin it with `tsunagu keys verify {agency} <FINGERPRINT>`, or \
         pass --accept-key-change to seal to its current keys anyway",
        list_or(.verified, "none"),
        list_or(.active, "none")
    )]
    KeyChanged {
        agency: String,
        verified: Vec<String>,
        active: Vec<String>,
    },

    /// A fingerprint to verify is not among the agency's active keys.
    #[error(
        "{fingerprint} is not among the active keys of agency {agency} ({}): do not trust the \
         key you were given or the directory until you know why; `tsunagu keys list {agency}` \
         shows what the hub publishes",
        list_or(.active, "it has none")
    )]
    UnknownFingerprint {
        agency: String,
        fingerprint: String,
        active: Vec<String>,
    },

    /// The hub's audit log no longer holds the newest head this profile saw: records were cut off
    /// its end, or an older copy of its database was restored.
    #[error(
        "the hub's audit log was rolled back: this profile saw record {remembered} ({}) as its \
         newest, but {served}. Records of who read or changed case data were deleted, or an older \
         copy of the hub's database was restored. Stop and contact the hub operator; once the \
         operator has explained it, `tsunagu audit forget-hub` (with this profile's --as or \
         --profile) removes {} to start checking afresh. \
         (ハブの監査ログが巻き戻されています。以前に確認した記録が消えています。作業を止めて、\
         ハブの運用者に連絡してください。)",
        crate::audit_head::short(.remembered_hash),
        .file.display()
    )]
    AuditRollback {
        remembered: u64,
        remembered_hash: String,
        /// What the hub serves now, in words.
        served: String,
        /// The remembered-head file.
        file: PathBuf,
    },

    /// The hub signs its audit head with another key than the one this profile pinned.
    #[error(
        "the hub's audit signing key changed: this profile pinned {pinned}, the hub now signs \
         with {served}. Contact the hub operator and compare the key `tsunagu-hub audit head` \
         prints; only if it matches, `tsunagu audit forget-hub` (with this profile's --as or \
         --profile) removes {} and the next command pins the new key. \
         (ハブの監査署名鍵が変わりました。ハブの運用者に連絡して確認してください。)",
        .file.display()
    )]
    AuditKeyChanged {
        pinned: String,
        served: String,
        file: PathBuf,
    },

    /// The hub's audit head does not carry a valid signature by the key it names.
    #[error(
        "the hub's audit head is not validly signed: contact the hub operator \
         (ハブの監査ログの署名が正しくありません。ハブの運用者に連絡してください)"
    )]
    AuditHeadUnsigned,

    /// The hub's signed audit head is not well formed.
    #[error(
        "the hub's signed audit head is malformed ({0}): contact the hub operator \
         (ハブの運用者に連絡してください)"
    )]
    AuditHeadMalformed(String),

    /// The hub answered a call with an error status. The status is shown as
    /// `<phrase>: <message>` and deliberately not exposed as an error source, so that a report
    /// of the error chain does not repeat it in tonic's own wording.
    #[error("{}", describe_status(.0))]
    Rpc(tonic::Status),
}

impl From<tonic::Status> for ClientError {
    fn from(status: tonic::Status) -> Self {
        ClientError::Rpc(status)
    }
}

impl ClientError {
    /// A suggestion of what to do next, when there is an obvious one.
    pub fn hint(&self) -> Option<String> {
        match self {
            ClientError::Connect { detail, .. } => Some(connect_hint(detail).to_owned()),
            ClientError::Rpc(status) => status_hint(status),
            ClientError::AuditKeyChanged { file, .. } | ClientError::AuditRollback { file, .. }
                if file
                    .file_name()
                    .is_some_and(|name| name.to_string_lossy().starts_with("dev-")) =>
            {
                Some(
                    "a development hub whose ./data was wiped starts a new audit log with a new \
                     signing key: that is expected there, so `tsunagu --as <AGENCY> audit \
                     forget-hub` for each agency you use, and carry on"
                        .to_owned(),
                )
            }
            _ => None,
        }
    }

    /// The gRPC status code, when the hub answered with an error.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            ClientError::Rpc(status) => Some(status.code()),
            _ => None,
        }
    }
}

/// What to suggest when the hub cannot be reached.
pub const START_HUB_HINT: &str = "is the hub running? start it with `cargo run -p tsunagu-hub -- serve`, or point at another hub with --hub <URL>";

/// What to suggest for a failed connection, from the words of the failure.
fn connect_hint(detail: &str) -> &'static str {
    let lower = detail.to_ascii_lowercase();
    if lower.contains("certificaterequired") {
        return "the hub requires a client certificate: pick an agency with --as, or give `cert` \
                and `key` in the profile";
    }
    let tls_words = [
        "certificate",
        "alert",
        "issuer",
        "handshake",
        "notvalidforname",
    ];
    if tls_words.iter().any(|word| lower.contains(word)) {
        "the TLS handshake failed: check that the CA file is this hub's CA, that the agency \
         certificate is current and not revoked, and that the server name matches the hub's certificate"
    } else if lower.contains("connection closed") || lower.contains("reset by peer") {
        "the hub closed the connection: it may have refused the client certificate (none, \
         from another CA, expired or revoked); check --as / --profile, or whether the hub is up"
    } else {
        START_HUB_HINT
    }
}

/// A suggestion for a status the hub (or the transport underneath) returned, if there is one.
pub fn status_hint(status: &tonic::Status) -> Option<String> {
    match status.code() {
        // A status made on this side of the wire (it carries its cause) is a transport failure.
        tonic::Code::Unavailable if std::error::Error::source(status).is_some() => {
            Some(START_HUB_HINT.to_owned())
        }
        tonic::Code::Unavailable => {
            Some("the hub is temporarily unavailable; it is safe to retry".to_owned())
        }
        tonic::Code::Unauthenticated => Some(
            "the hub did not accept the certificate: check --as / --profile and that the \
             certificate was issued by this hub's CA and is not expired or revoked"
                .to_owned(),
        ),
        tonic::Code::DeadlineExceeded => {
            Some("the hub did not answer in time: retry, or raise --timeout".to_owned())
        }
        _ => None,
    }
}

/// A short human phrase for a gRPC status code, for example "permission denied".
pub fn code_phrase(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown error",
        Code::InvalidArgument => "invalid argument",
        Code::DeadlineExceeded => "timed out",
        Code::NotFound => "not found",
        Code::AlreadyExists => "already exists",
        Code::PermissionDenied => "permission denied",
        Code::ResourceExhausted => "limit reached",
        Code::FailedPrecondition => "not allowed now",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out of range",
        Code::Unimplemented => "not supported by this hub",
        Code::Internal => "hub internal error",
        Code::Unavailable => "hub unavailable",
        Code::DataLoss => "data loss",
        Code::Unauthenticated => "not authenticated",
    }
}

/// `<phrase>: <message>` for a status, or only the phrase when the hub sent no message.
pub fn describe_status(status: &tonic::Status) -> String {
    let phrase = code_phrase(status.code());
    let message = status.message().trim();
    if message.is_empty() {
        phrase.to_owned()
    } else {
        format!("{phrase}: {message}")
    }
}

/// Every message in an error's source chain, joined with ": ", skipping repeats.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(err) = current {
        let text = err.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = err.source();
    }
    parts.join(": ")
}

/// Items joined with ", ", or `none` when there are none.
fn list_or(items: &[String], none: &str) -> String {
    if items.is_empty() {
        none.to_owned()
    } else {
        items.join(", ")
    }
}

fn available_profiles(available: &[String]) -> String {
    if available.is_empty() {
        " (it defines no profiles)".to_owned()
    } else {
        format!(" (available: {})", available.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_denied_reads_as_a_short_phrase() {
        let status = tonic::Status::permission_denied("agency x is suspended");
        assert_eq!(
            ClientError::from(status).to_string(),
            "permission denied: agency x is suspended"
        );
    }

    #[test]
    fn a_status_without_message_shows_only_the_phrase() {
        let status = tonic::Status::not_found("");
        assert_eq!(describe_status(&status), "not found");
    }

    #[test]
    fn a_refused_handshake_suggests_checking_the_certificates() {
        let error = ClientError::Connect {
            endpoint: "https://127.0.0.1:7443".into(),
            detail: "invalid peer certificate: UnknownIssuer".into(),
        };
        assert!(error.hint().is_some_and(|h| h.contains("TLS handshake")));
    }

    #[test]
    fn an_unreachable_hub_suggests_starting_it() {
        let error = ClientError::Connect {
            endpoint: "https://127.0.0.1:7443".into(),
            detail: "connection refused".into(),
        };
        assert!(
            error
                .hint()
                .is_some_and(|h| h.contains("tsunagu-hub -- serve"))
        );
    }
}

//! `tsunagu console`: a local web console in Japanese for the agency's staff, served by the
//! agency's own process. It holds the agency's certificate and age identity, talks to the hub
//! over mutual TLS as the CLI does, and opens sealed fields in memory on this machine; the hub
//! never gets a way to read them. Nothing opened is written to disk, logged or cached.
//!
//! `Console::build` binds (port 0 in tests) and makes the one-time login URL;
//! `run_until_stopped` serves until the future given resolves.

mod actions;
mod charts;
mod form;
mod guard;
mod live;
mod pages;
mod session;
mod state;
mod tls;
mod view;

use std::net::SocketAddr;
use std::path::PathBuf;

use age::x25519::Identity;
use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tsunagu_proto::v1::Staff;

use self::guard::Origins;
use self::session::{Sessions, random_token};
use self::state::{AppState, StateParts};
use crate::{ClientError, ConnectOptions, Hub};

/// Where the console listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7480";

/// A certificate and key (PEM files) for serving the console over https.
#[derive(Clone, Debug)]
pub struct ConsoleTls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Everything the console needs.
pub struct ConsoleSettings {
    /// The address to listen on; loopback unless `allow_remote` with `tls`.
    pub listen: SocketAddr,
    /// Whether a non-loopback address may be used (needs `tls`).
    pub allow_remote: bool,
    pub tls: Option<ConsoleTls>,
    /// How to reach the hub with the agency's certificate.
    pub connect: ConnectOptions,
    /// The agency's age identities, the current one first.
    pub identities: Vec<Identity>,
    /// The profile's known-keys file (the trust store the CLI uses).
    pub known_keys: Option<PathBuf>,
    /// Who acts until the person changes it on the 担当者 page.
    pub staff: Staff,
    /// Extra host names the console is reached by (besides 127.0.0.1 and localhost).
    pub host_names: Vec<String>,
}

/// Why the console could not start.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error(
        "the console listens on loopback only ({0} is not): to serve other machines pass \
         --allow-remote together with --tls-cert and --tls-key"
    )]
    NotLoopback(SocketAddr),
    #[error(
        "cannot listen on {address}: {source} (is another console running? pick another port with --listen)"
    )]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the console's TLS certificate or key is not usable: {0}")]
    Tls(String),
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// A console bound to its address, ready to serve.
pub struct Console {
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: AppState,
    login_url: String,
    address: SocketAddr,
}

impl Console {
    /// Binds the console's address and prepares the hub connection (made on first use, so the
    /// console starts and says what is wrong even while the hub is down).
    pub async fn build(settings: ConsoleSettings) -> Result<Console, ConsoleError> {
        let loopback = settings.listen.ip().is_loopback();
        let remote_allowed = settings.allow_remote && settings.tls.is_some();
        if !(loopback || remote_allowed) {
            return Err(ConsoleError::NotLoopback(settings.listen));
        }
        let tls = settings.tls.as_ref().map(tls::acceptor).transpose()?;
        let listener =
            TcpListener::bind(settings.listen)
                .await
                .map_err(|source| ConsoleError::Bind {
                    address: settings.listen,
                    source,
                })?;
        let address = listener.local_addr().map_err(|source| ConsoleError::Bind {
            address: settings.listen,
            source,
        })?;
        let hub = Hub::connect_lazy(&settings.connect)?;
        let mut names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
        if !loopback {
            names.push(address.ip().to_string());
        }
        names.extend(settings.host_names.iter().cloned());
        let token = random_token();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let host = if loopback {
            "127.0.0.1".to_owned()
        } else {
            settings
                .host_names
                .first()
                .cloned()
                .unwrap_or_else(|| address.ip().to_string())
        };
        let login_url = format!("{scheme}://{host}:{}/login?token={token}", address.port());
        let state = AppState::new(StateParts {
            hub,
            identities: settings.identities,
            known_keys: settings.known_keys,
            origins: Origins::new(&names, address.port(), tls.is_some()),
            sessions: Sessions::new(token, settings.staff),
            tls: tls.is_some(),
        });
        Ok(Console {
            listener,
            tls,
            state,
            login_url,
            address,
        })
    }

    /// The URL to open once: it signs the browser in.
    pub fn login_url(&self) -> &str {
        &self.login_url
    }

    /// The address the console listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// Serves until `stop` resolves.
    pub async fn run_until_stopped(self, stop: impl Future<Output = ()>) -> std::io::Result<()> {
        tokio::spawn(live::follow(self.state.clone()));
        let app = router(self.state);
        let served = async move {
            match self.tls {
                Some(acceptor) => {
                    axum::serve(tls::TlsListener::new(self.listener, acceptor), app).await
                }
                None => axum::serve(self.listener, app).await,
            }
        };
        tokio::select! {
            result = served => result,
            () = stop => Ok(()),
        }
    }
}

/// Every route of the console, behind the guard.
fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(pages::worklist::show))
        .route("/login", get(pages::session::login))
        .route("/logout", post(pages::session::logout))
        .route(
            "/staff",
            get(pages::session::staff_form).post(pages::session::set_staff),
        )
        .route("/inbox", get(pages::lists::inbox))
        .route("/sent", get(pages::lists::sent))
        .route("/referrals/{id}", get(pages::referral::show))
        .route("/referrals/{id}/actions", post(pages::referral::act))
        .route("/cases", get(pages::case::list).post(pages::case::open))
        .route("/cases/{id}", get(pages::case::show))
        .route("/cases/{id}/consents", post(pages::case::record_consent))
        .route("/cases/{id}/referrals", post(pages::case::refer))
        .route("/cases/{id}/notes", post(pages::case::note))
        .route("/cases/{id}/reseal", post(pages::reseal::reseal))
        .route("/council", get(pages::council::show))
        .route("/council/meetings", post(pages::council::schedule))
        .route("/council/meetings/{id}", get(pages::council::meeting))
        .route("/council/meetings/{id}/pack", get(pages::council::pack))
        .route(
            "/council/meetings/{id}/decisions",
            post(pages::council::decide),
        )
        .route("/transfers", get(pages::transfers::show))
        .route("/transfers/{id}/actions", post(pages::transfers::act))
        .route("/outcomes", get(pages::outcomes::show))
        .route("/live", get(live::events))
        .route("/assets/console.css", get(stylesheet))
        .route("/assets/console.js", get(script))
        .fallback(|| async { pages::PageError::NotFound })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard,
        ))
        .with_state(state)
}

async fn stylesheet() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/css; charset=utf-8"),
        )],
        include_str!("assets/console.css"),
    )
}

async fn script() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/javascript; charset=utf-8"),
        )],
        include_str!("assets/console.js"),
    )
}

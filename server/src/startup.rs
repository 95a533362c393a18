//! Building and running the hub: `Application::build` binds the port first (port 0 works in
//! tests), then `run_until_stopped` serves until SIGINT or SIGTERM. Tests use the same path.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tonic::transport::Server;
use tsunagu_proto::served::event_service_server::EventServiceServer;
use tsunagu_proto::v1::audit_service_server::AuditServiceServer;
use tsunagu_proto::v1::case_service_server::CaseServiceServer;
use tsunagu_proto::v1::council_service_server::CouncilServiceServer;
use tsunagu_proto::v1::directory_service_server::DirectoryServiceServer;
use tsunagu_proto::v1::outcome_service_server::OutcomeServiceServer;
use tsunagu_proto::v1::referral_service_server::ReferralServiceServer;
use tsunagu_proto::v1::sealing_service_server::SealingServiceServer;
use tsunagu_proto::v1::transfer_service_server::TransferServiceServer;

use crate::api::Hub;
use crate::api::feed_cache::FeedCache;
use crate::casework::audit::{AuditMode, Auditor};
use crate::domain::{Clock, SystemClock};
use crate::identity::IdentityLayer;
use crate::settings::Settings;
use crate::signing::AuditSigner;
use crate::store::{self, Store, StoreError};
use crate::tls::{self, TlsError, TlsState};

/// Why the hub could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot listen on {address}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot load the TLS configuration")]
    Tls(#[from] TlsError),
    #[error("cannot open the database")]
    Store(#[from] StoreError),
    #[error("cannot build the reflection service")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("cannot load the audit signing key")]
    SigningKey(#[from] crate::signing::SigningKeyError),
    #[error("the gRPC server failed")]
    Serve(#[from] tonic::transport::Error),
}

/// A hub bound to its port, with its database open, ready to serve.
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    /// The Prometheus endpoint's listener, when enabled and bound.
    metrics: Option<TcpListener>,
    hub: Hub,
    tls: Arc<TlsState>,
}

impl Application {
    /// Binds, loads TLS material and opens (and migrates) the database.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        Self::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    /// As `build`, with the clock the hub reads time from (tests move a manual clock).
    pub async fn build_with_clock(
        settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartupError> {
        Self::build_with(settings, clock, AuditMode::On).await
    }

    /// As `build_with_clock`, choosing whether calls are audited. For the benchmark that
    /// measures what auditing costs, only: a hub that serves agencies always audits, and no
    /// setting turns it off.
    #[doc(hidden)]
    pub async fn build_with(
        settings: Settings,
        clock: Arc<dyn Clock>,
        audit: AuditMode,
    ) -> Result<Self, StartupError> {
        let tls = TlsState::load(&settings.tls)?;
        let audit_signer = Arc::new(AuditSigner::load_or_create(
            &settings.audit_signing_key_path(),
        )?);
        let store = store::connect(&settings.database_url).await?;
        if settings.register_dev_agencies {
            crate::dev::register_dev_agencies(
                store.as_ref(),
                &crate::dev::dev_keys_dir(&settings),
                clock.now(),
            )
            .await?;
        }
        let listener =
            TcpListener::bind(settings.listen)
                .await
                .map_err(|source| StartupError::Bind {
                    address: settings.listen,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| StartupError::Bind {
            address: settings.listen,
            source,
        })?;
        let metrics = if settings.metrics.enabled {
            crate::telemetry::handle();
            crate::telemetry::bind(settings.metrics.listen).await
        } else {
            None
        };
        let feed_cache = Arc::new(FeedCache::new(settings.limits.feed_cache_bytes));
        let hub = Hub {
            store,
            clock,
            settings: Arc::new(settings),
            stopping: Arc::new(tokio::sync::watch::Sender::new(false)),
            audit: Auditor::new(audit),
            audit_signer,
            feed_cache,
        };
        Ok(Self {
            listener,
            local_addr,
            metrics,
            hub,
            tls,
        })
    }

    /// The address the hub listens on (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address of the metrics endpoint, when it is served.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The hub's database, for operator commands and tests.
    pub fn store(&self) -> Arc<dyn Store> {
        Arc::clone(&self.hub.store)
    }

    /// Serves until SIGINT or SIGTERM, then drains open calls and closes the database.
    pub async fn run_until_stopped(self) -> Result<(), StartupError> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `shutdown` completes.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), StartupError> {
        let Self {
            listener,
            local_addr,
            metrics,
            hub,
            tls,
        } = self;
        let settings = Arc::clone(&hub.settings);
        let store = Arc::clone(&hub.store);
        let limits = &settings.limits;

        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        health_reporter
            .set_serving::<DirectoryServiceServer<Hub>>()
            .await;
        health_reporter
            .set_serving::<CaseServiceServer<Hub>>()
            .await;
        health_reporter
            .set_serving::<ReferralServiceServer<Hub>>()
            .await;
        health_reporter
            .set_serving::<EventServiceServer<Hub>>()
            .await;
        health_reporter
            .set_serving::<CouncilServiceServer<Hub>>()
            .await;
        health_reporter
            .set_serving::<AuditServiceServer<Hub>>()
            .await;
        health_reporter
            .set_serving::<OutcomeServiceServer<Hub>>()
            .await;
        health_reporter
            .set_serving::<SealingServiceServer<Hub>>()
            .await;
        health_reporter
            .set_serving::<TransferServiceServer<Hub>>()
            .await;

        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(tsunagu_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(tsunagu_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;

        let identity = IdentityLayer::new(
            Arc::clone(&hub.store),
            Arc::clone(&tls),
            &settings.trust_domain,
            Arc::clone(&hub.clock),
            hub.audit.clone(),
        );
        let metrics_server = metrics.map(|listener| {
            if let Ok(addr) = listener.local_addr() {
                tracing::info!(%addr, "metrics at http://{addr}/metrics");
            }
            crate::telemetry::serve(listener)
        });
        let expiry_watch = crate::certificates::spawn_expiry_watch(hub.clone());
        let reloader = tls.spawn_reloader();
        let timers = spawn_timers(hub.clone());
        let change_listener = store.spawn_change_listener();
        let health_watch = spawn_health_watch(Arc::clone(&store), health_reporter.clone());
        let incoming = tls::incoming(listener, Arc::clone(&tls), settings.tls.handshake_timeout);

        tracing::info!(%local_addr, "tsunagu hub listening");
        warn_if_holidays_run_out(hub.clock.now());
        let result = Server::builder()
            .max_concurrent_streams(limits.max_concurrent_streams)
            .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
            // Outermost first: metrics count every call by the code the caller finally gets,
            // and the access log sees every call, refused ones included.
            .layer(crate::telemetry::MetricsLayer)
            .layer(crate::access::AccessLayer::new(
                limits.max_message_bytes,
                limits.max_sealed_bytes,
            ))
            .layer(identity)
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(
                DirectoryServiceServer::new(hub.clone())
                    .max_decoding_message_size(limits.max_message_bytes),
            )
            .add_service(
                CaseServiceServer::new(hub.clone())
                    .max_decoding_message_size(limits.max_message_bytes),
            )
            .add_service(
                ReferralServiceServer::new(hub.clone())
                    .max_decoding_message_size(limits.max_message_bytes),
            )
            .add_service(
                EventServiceServer::new(hub.clone())
                    .max_decoding_message_size(limits.max_message_bytes),
            )
            .add_service(
                CouncilServiceServer::new(hub.clone())
                    .max_decoding_message_size(limits.max_message_bytes),
            )
            .add_service(
                AuditServiceServer::new(hub.clone())
                    .max_decoding_message_size(limits.max_message_bytes),
            )
            .add_service(
                OutcomeServiceServer::new(hub.clone())
                    .max_decoding_message_size(limits.max_message_bytes),
            )
            .add_service(
                SealingServiceServer::new(hub.clone())
                    .max_decoding_message_size(limits.max_message_bytes),
            )
            .add_service(
                TransferServiceServer::new(hub.clone())
                    .max_decoding_message_size(limits.max_message_bytes),
            )
            .serve_with_incoming_shutdown(incoming, {
                let stopping = Arc::clone(&hub.stopping);
                async move {
                    shutdown.await;
                    // Streams never end by themselves; end them so that draining can finish.
                    stopping.send_replace(true);
                }
            })
            .await;
        reloader.abort();
        expiry_watch.abort();
        if let Some(server) = metrics_server {
            server.abort();
        }
        timers.abort();
        health_watch.abort();
        if let Some(listener) = change_listener {
            listener.abort();
        }
        store.close().await;
        tracing::info!("tsunagu hub stopped");
        result.map_err(StartupError::from)
    }
}

/// The services whose health follows the database's.
const SERVICES: [&str; 6] = [
    "tsunagu.v1.DirectoryService",
    "tsunagu.v1.CaseService",
    "tsunagu.v1.ReferralService",
    "tsunagu.v1.EventService",
    "tsunagu.v1.CouncilService",
    "tsunagu.v1.AuditService",
];

/// Pings the database every second and reports NOT_SERVING while it does not answer, so that a
/// load balancer sends callers elsewhere; SERVING again as soon as it does.
fn spawn_health_watch(
    store: Arc<dyn Store>,
    reporter: tonic_health::server::HealthReporter,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut serving = true;
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let ping = tokio::time::timeout(std::time::Duration::from_secs(3), store.ping()).await;
            let healthy = matches!(ping, Ok(Ok(())));
            metrics::gauge!(crate::telemetry::names::DATABASE_UP).set(if healthy {
                1.0
            } else {
                0.0
            });
            if healthy == serving {
                continue;
            }
            serving = healthy;
            let status = if healthy {
                tracing::info!("database reachable again: SERVING");
                tonic_health::ServingStatus::Serving
            } else {
                tracing::warn!("database unreachable: NOT_SERVING");
                tonic_health::ServingStatus::NotServing
            };
            reporter.set_service_status("", status).await;
            for service in SERVICES {
                reporter.set_service_status(service, status).await;
            }
        }
    })
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("SIGINT received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}

/// Business-day deadlines after the last year of the shipped holiday list skip only weekends
/// and closure days; the Cabinet Office publishes the next year's list each February, so warn
/// once the list does not reach into next year.
fn warn_if_holidays_run_out(now: crate::domain::Timestamp) {
    let last = crate::domain::calendar::HolidayList::official().last_year();
    let next = now.date_in_japan().year() + 1;
    if last < next {
        tracing::warn!(
            last_year = last,
            "the holiday list (server/data/syukujitsu.csv) ends in {last}: business-day deadlines \
             after it do not skip national holidays; update it as the README says"
        );
    }
}

/// Runs the timers' use case (`casework::timers::escalate_due`) every `timer_interval` until
/// aborted. A failed round is logged and retried at the next tick: passed timers stay passed, so
/// nothing is lost by waiting.
fn spawn_timers(hub: Hub) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(hub.settings.timer_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match escalate_round(&hub).await {
                Ok(0) => {}
                Ok(raised) => {
                    tracing::info!(raised, "escalations raised");
                }
                Err(error) => {
                    tracing::warn!(
                        error = %crate::error::cause_chain(&error),
                        "escalation round failed; retrying at the next tick"
                    );
                }
            }
        }
    })
}

/// One round of the timers, in one write transaction.
async fn escalate_round(hub: &Hub) -> Result<usize, crate::error::Error> {
    let now = hub.clock.now();
    let (settings, auditor) = (Arc::clone(&hub.settings), hub.audit.clone());
    hub.store
        .write(crate::store::Locking::Exclusive, move |tx| {
            Box::pin(async move {
                crate::casework::timers::escalate_due(tx, &settings.deadlines, &auditor, now).await
            })
        })
        .await
}

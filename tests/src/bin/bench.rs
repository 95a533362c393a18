//! `tsunagu-bench`: measures the hub against this machine's own limits in one run — the mTLS
//! transport (a bare unary echo), the durable-write limit of the database (a single-row
//! insert-and-commit loop with the hub's settings), and the hub itself (durable sends, delivery
//! acknowledgements, feed pages, live delivery to 1,000 subscribed agencies), with the hub's CPU
//! time and peak RSS. With `--database`, the write scenarios on SQLite, on PostgreSQL and on
//! PostgreSQL through several hub instances, side by side (`--full`: the whole run on PostgreSQL).

#[path = "bench/compare.rs"]
mod compare;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use futures::StreamExt as _;
use tokio::sync::Mutex;
use tsunagu_client::Hub;
use tsunagu_hub::domain::{Clock as _, SystemClock};
use tsunagu_proto::served::ListEventsPage;
use tsunagu_proto::v1 as pb;
use tsunagu_tests::fixtures::{sealed_bytes, staff};
use tsunagu_tests::{AGENCIES, TRUST_DOMAIN, TestDatabase, TestPki, test_agency, workspace_binary};

/// Measure the Tsunagu hub on this machine.
#[derive(Debug, Parser)]
#[command(
    name = "tsunagu-bench",
    after_help = "Examples:\n  cargo run --release -p tsunagu-tests --bin tsunagu-bench\n  \
                  cargo run --release -p tsunagu-tests --bin tsunagu-bench -- --seconds 3 --subscribers 200\n  \
                  cargo run --release -p tsunagu-tests --bin tsunagu-bench -- --database postgres://postgres@127.0.0.1/test\n  \
                  cargo run --release -p tsunagu-tests --bin tsunagu-bench -- --database postgres://postgres@127.0.0.1/test --instances 2\n  \
                  cargo run --release -p tsunagu-tests --bin tsunagu-bench -- --database postgres://postgres@127.0.0.1/test --full"
)]
struct Args {
    /// Seconds each closed-loop scenario runs.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Client connections in closed-loop scenarios.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Requests in flight per connection in closed-loop scenarios.
    #[arg(long, default_value_t = 16)]
    in_flight: usize,
    /// Agencies subscribed (each with its own certificate) in the live-delivery scenario.
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// Sends per second in the open-loop live-delivery scenario.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// PostgreSQL server (a database is created there for each run): sends, acknowledgements
    /// and ListEvents on SQLite, on PostgreSQL with one hub instance and with `--instances`,
    /// side by side.
    #[arg(long)]
    database: Option<String>,
    /// Hub instances sharing the PostgreSQL database in the last of the compared runs.
    #[arg(long, default_value_t = 2)]
    instances: usize,
    /// With `--database`: the whole run on PostgreSQL instead of the comparison.
    #[arg(long)]
    full: bool,
    /// Only the JSON lines, no table.
    #[arg(long)]
    json: bool,
}

/// Latencies of one scenario.
#[derive(Default)]
struct Latencies(Vec<Duration>);

impl Latencies {
    fn percentile(&mut self, p: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        self.0.sort_unstable();
        let rank = ((p / 100.0) * (self.0.len() as f64 - 1.0)).round() as usize;
        self.0[rank.min(self.0.len() - 1)]
    }
}

/// What one scenario measured.
struct Outcome {
    scenario: String,
    mode: &'static str,
    operations: usize,
    errors: usize,
    elapsed: Duration,
    latencies: Latencies,
    hub_cpu: Option<Duration>,
    hub_peak_rss_mb: Option<f64>,
}

impl Outcome {
    fn per_second(&self) -> f64 {
        self.operations as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn json(&mut self) -> serde_json::Value {
        let ms = |d: Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
        serde_json::json!({
            "scenario": self.scenario,
            "mode": self.mode,
            "operations": self.operations,
            "errors": self.errors,
            "seconds": (self.elapsed.as_secs_f64() * 1e3).round() / 1e3,
            "per_second": self.per_second().round(),
            "p50_ms": ms(self.latencies.percentile(50.0)),
            "p90_ms": ms(self.latencies.percentile(90.0)),
            "p99_ms": ms(self.latencies.percentile(99.0)),
            "p999_ms": ms(self.latencies.percentile(99.9)),
            "hub_cpu_seconds": self.hub_cpu.map(|d| (d.as_secs_f64() * 1e3).round() / 1e3),
            "hub_peak_rss_mb": self.hub_peak_rss_mb.map(|mb| (mb * 10.0).round() / 10.0),
        })
    }
}

/// The hub under test: the real binary as a child process, so its CPU and memory are its own.
struct HubProcess {
    child: Child,
    addr: SocketAddr,
}

impl HubProcess {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// User plus system CPU time so far.
    fn cpu(&self) -> Option<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).ok()?;
        let after_name = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        // Linux reports CPU time in clock ticks of 1/100 s on every common configuration.
        Some(Duration::from_millis(ticks * 10))
    }

    /// Peak resident set size so far (VmHWM), in MB.
    fn peak_rss_mb(&self) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb / 1024.0)
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Registers the standard test agencies plus `extra` bench agencies (support hubs).
async fn register_agencies(database_url: &str, extra: usize) -> anyhow::Result<()> {
    let store = tsunagu_hub::store::connect(database_url).await?;
    let now = SystemClock.now();
    let mut agencies: Vec<_> = AGENCIES.iter().map(test_agency).collect();
    for index in 0..extra {
        let mut agency = test_agency(&AGENCIES[4]);
        agency.id = tsunagu_hub::domain::AgencyId::parse(&bench_agency(index))
            .context("bench agency id")?;
        agency.display_name = format!("ベンチ拠点 {index}");
        agencies.push(agency);
    }
    tsunagu_tests::insert_agencies(&*store, agencies, now).await;
    store.close().await;
    Ok(())
}

fn bench_agency(index: usize) -> String {
    format!("bench-{index:04}")
}

async fn start_hub(dir: &Path, pki: &TestPki, database_url: &str) -> anyhow::Result<HubProcess> {
    let binary = workspace_binary_release_aware();
    let port = free_port()?;
    let child = Command::new(binary)
        .current_dir(dir)
        .env("TSUNAGU_LISTEN", format!("127.0.0.1:{port}"))
        .env("TSUNAGU_DATABASE_URL", database_url)
        .env("TSUNAGU_TLS_DIR", &pki.dir)
        .env("TSUNAGU_TRUST_DOMAIN", TRUST_DOMAIN)
        .env("TSUNAGU_REGISTER_DEV_AGENCIES", "false")
        .env("RUST_LOG", "warn")
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting tsunagu-hub")?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(addr).is_err() {
        if Instant::now() > deadline {
            bail!("the hub did not start listening on {addr}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(HubProcess { child, addr })
}

/// The hub binary of the same profile as this bench: the one built beside it when there is
/// one (so a run never rebuilds the hub with other features while measuring), else built now.
fn workspace_binary_release_aware() -> PathBuf {
    if cfg!(debug_assertions) {
        return workspace_binary("tsunagu-hub", "tsunagu-hub");
    }
    if let Some(beside) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("tsunagu-hub")))
        .filter(|path| path.is_file())
    {
        return beside;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_owned)
        .unwrap_or_default();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let _ = Command::new(cargo)
        .current_dir(&root)
        .args([
            "build",
            "--quiet",
            "--release",
            "-p",
            "tsunagu-hub",
            "--bin",
            "tsunagu-hub",
        ])
        .status();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    target.join("release").join("tsunagu-hub")
}

async fn connect(pki: &TestPki, addr: SocketAddr, agency: &str) -> anyhow::Result<Hub> {
    let certificate = pki.agency_certificate(agency);
    Ok(Hub::connect(&pki.connect_options(addr, Some(&certificate))).await?)
}

/// Runs `operation` closed-loop: `connections` × `in_flight` workers, each issuing the next
/// request as soon as the previous one answered, for `seconds` or until the operation says
/// there is no more work (`None`). `Some(false)` counts an error.
async fn closed_loop<F, Fut>(
    scenario: &str,
    clients: &[Hub],
    in_flight: usize,
    seconds: u64,
    hub: Option<&HubProcess>,
    operation: F,
) -> Outcome
where
    F: Fn(Hub, usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Option<bool>> + Send,
{
    let cpu_before = hub.and_then(HubProcess::cpu);
    let started = Instant::now();
    let stop_at = started + Duration::from_secs(seconds);
    let mut workers = Vec::new();
    for (c, client) in clients.iter().enumerate() {
        for w in 0..in_flight {
            let client = client.clone();
            let operation = operation.clone();
            let worker = c * in_flight + w;
            workers.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0;
                let mut n = 0;
                while Instant::now() < stop_at {
                    let t0 = Instant::now();
                    match operation(client.clone(), worker * 1_000_000 + n).await {
                        Some(true) => latencies.push(t0.elapsed()),
                        Some(false) => errors += 1,
                        // Out of work (every referral acknowledged): this worker is done.
                        None => break,
                    }
                    n += 1;
                }
                (latencies, errors)
            }));
        }
    }
    let mut latencies = Latencies::default();
    let mut errors = 0;
    for worker in workers {
        if let Ok((mut l, e)) = worker.await {
            latencies.0.append(&mut l);
            errors += e;
        }
    }
    let elapsed = started.elapsed();
    Outcome {
        scenario: scenario.to_owned(),
        mode: "closed",
        operations: latencies.0.len(),
        errors,
        elapsed,
        latencies,
        hub_cpu: cpu_before
            .zip(hub.and_then(HubProcess::cpu))
            .map(|(a, b)| b.saturating_sub(a)),
        hub_peak_rss_mb: hub.and_then(HubProcess::peak_rss_mb),
    }
}

/// (a) The transport limit: a bare unary call (grpc.health Check) over the same mTLS set-up,
/// served by tonic through the hub's own TLS acceptor, with no identity lookup and no database.
async fn echo(args: &Args, pki: &TestPki) -> anyhow::Result<Outcome> {
    let tls = tsunagu_hub::tls::TlsState::load(&pki.tls_settings())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let incoming = tsunagu_hub::tls::incoming(listener, tls, Duration::from_secs(10));
    let (_reporter, health) = tonic_health::server::health_reporter();
    let server = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(health)
            .serve_with_incoming(incoming)
            .await;
    });
    let mut clients = Vec::new();
    for _ in 0..args.connections {
        clients.push(connect(pki, addr, "hospital").await?);
    }
    let outcome = closed_loop(
        "a. echo (mTLS unary)",
        &clients,
        args.in_flight,
        args.seconds,
        None,
        |client, _| async move {
            Some(
                tonic_health::pb::health_client::HealthClient::new(client.channel())
                    .check(tonic_health::pb::HealthCheckRequest {
                        service: String::new(),
                    })
                    .await
                    .is_ok(),
            )
        },
    )
    .await;
    server.abort();
    Ok(outcome)
}

/// (b) The durable-write limit: one-row insert-and-commit transactions, one after another, on a
/// fresh database with the hub's settings (SQLite WAL with synchronous=FULL, or PostgreSQL).
async fn commit_loop(args: &Args, database_url: &str) -> anyhow::Result<Outcome> {
    use sqlx::Connection as _;
    let started;
    let mut latencies = Latencies::default();
    if database_url.starts_with("sqlite:") {
        let options: sqlx::sqlite::SqliteConnectOptions = database_url.parse()?;
        let options = options
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Full);
        let mut connection = sqlx::SqliteConnection::connect_with(&options).await?;
        sqlx::query("CREATE TABLE IF NOT EXISTS bench_commits (id INTEGER PRIMARY KEY, at INTEGER NOT NULL)")
            .execute(&mut connection)
            .await?;
        started = Instant::now();
        let stop_at = started + Duration::from_secs(args.seconds);
        while Instant::now() < stop_at {
            let t0 = Instant::now();
            let mut tx = connection.begin().await?;
            sqlx::query("INSERT INTO bench_commits (at) VALUES ($1)")
                .bind(0_i64)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            latencies.0.push(t0.elapsed());
        }
    } else {
        let mut connection = sqlx::PgConnection::connect(database_url).await?;
        sqlx::query("CREATE TABLE IF NOT EXISTS bench_commits (id BIGSERIAL PRIMARY KEY, at BIGINT NOT NULL)")
            .execute(&mut connection)
            .await?;
        started = Instant::now();
        let stop_at = started + Duration::from_secs(args.seconds);
        while Instant::now() < stop_at {
            let t0 = Instant::now();
            let mut tx = connection.begin().await?;
            sqlx::query("INSERT INTO bench_commits (at) VALUES ($1)")
                .bind(0_i64)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            latencies.0.push(t0.elapsed());
        }
    }
    Ok(Outcome {
        scenario: "b. single-row commit loop".to_owned(),
        mode: "closed",
        operations: latencies.0.len(),
        errors: 0,
        elapsed: started.elapsed(),
        latencies,
        hub_cpu: None,
        hub_peak_rss_mb: None,
    })
}

/// A case in `municipality` with a consent covering every support hub for `parenting_support`.
async fn prepare_case(kodomo: &Hub, municipality: &str) -> anyhow::Result<String> {
    let case = kodomo
        .cases()
        .open_case(pb::OpenCaseRequest {
            municipality: municipality.to_owned(),
            category: pb::CaseCategory::SpecificExpectantMother as i32,
            stage: pb::CaseStage::Pregnancy as i32,
            header: Some(sealed_bytes(b"bench case header")),
            staff: Some(staff()),
            idempotency_key: uuid::Uuid::new_v4().to_string(),
        })
        .await?
        .into_inner()
        .case
        .context("case")?;
    let today = SystemClock.now().date_in_japan();
    kodomo
        .cases()
        .record_consent(pb::RecordConsentRequest {
            case_id: case.case_id.clone(),
            given_by: pb::ConsentGiver::Guardian as i32,
            method: pb::ConsentMethod::Written as i32,
            scope: Some(pb::ConsentScope {
                recipient_agencies: vec![],
                recipient_kinds: vec!["support_hub".to_owned()],
                purposes: vec!["parenting_support".to_owned()],
            }),
            valid_from: format!("{today}"),
            valid_until: String::new(),
            evidence: None,
            staff: Some(staff()),
            idempotency_key: uuid::Uuid::new_v4().to_string(),
        })
        .await?;
    Ok(case.case_id)
}

fn referral_request(case_id: &str, to: &str, body: &pb::Sealed) -> pb::SendReferralRequest {
    pb::SendReferralRequest {
        case_id: case_id.to_owned(),
        to_agency: to.to_owned(),
        purpose: "parenting_support".to_owned(),
        urgency: pb::Urgency::Routine as i32,
        basis: Some(pb::LegalBasis {
            kind: pb::LegalBasisKind::Consent as i32,
            consent_id: String::new(),
            justification: String::new(),
        }),
        body: Some(body.clone()),
        deadlines: None,
        staff: Some(staff()),
        idempotency_key: uuid::Uuid::new_v4().to_string(),
    }
}

/// Live delivery: `subscribers` agencies subscribe, each over its own connection and
/// certificate; referrals go to them at `rate` per second (open loop, so queueing shows); the
/// latency is from the moment a send was due to the moment its subscriber received it.
async fn live_delivery(
    args: &Args,
    pki: &TestPki,
    hub: &HubProcess,
    kodomo: &[Hub],
    case_id: &str,
) -> anyhow::Result<Outcome> {
    let received: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut subscriptions = Vec::new();
    for index in 0..args.subscribers {
        let client = connect(pki, hub.addr, &bench_agency(index)).await?;
        let mut stream = client
            .events()
            .subscribe(pb::SubscribeRequest {
                after_cursor: 0,
                from_acknowledged: true,
            })
            .await?
            .into_inner();
        let received = Arc::clone(&received);
        subscriptions.push(tokio::spawn(async move {
            let _keep = client;
            while let Some(Ok(event)) = stream.next().await {
                if event.kind == pb::FeedEventKind::ReferralReceived as i32 {
                    received
                        .lock()
                        .await
                        .insert(event.referral_id, Instant::now());
                }
            }
        }));
    }
    // Let every subscription reach its live wait.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let body = sealed_bytes(&vec![b'x'; 1024]);
    let cpu_before = hub.cpu();
    let started = Instant::now();
    let total = (args.rate * args.seconds) as usize;
    let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
    let mut sends = Vec::with_capacity(total);
    for n in 0..total {
        let due = started + interval.mul_f64(n as f64);
        tokio::time::sleep_until(due.into()).await;
        let client = kodomo[n % kodomo.len()].clone();
        let request = referral_request(case_id, &bench_agency(n % args.subscribers), &body);
        sends.push(tokio::spawn(async move {
            let referral = client
                .referrals()
                .send_referral(request)
                .await?
                .into_inner()
                .referral
                .ok_or_else(|| tonic::Status::internal("a send answered no referral"))?;
            Ok::<_, tonic::Status>((referral.referral_id, due))
        }));
    }
    let mut due_by_referral = HashMap::new();
    let mut errors = 0;
    for send in sends {
        match send.await {
            Ok(Ok((id, due))) => {
                due_by_referral.insert(id, due);
            }
            Ok(Err(status)) => {
                eprintln!("live delivery: a send failed: {status}");
                errors += 1;
            }
            Err(_) => errors += 1,
        }
    }
    let send_elapsed = started.elapsed();
    // Wait for stragglers, at most two seconds. Subscribers also receive their backlog (the
    // earlier scenarios' referrals), so count only the referrals of this scenario.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let arrived = {
            let received = received.lock().await;
            due_by_referral
                .keys()
                .filter(|id| received.contains_key(*id))
                .count()
        };
        if arrived == due_by_referral.len() || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let received = received.lock().await;
    let mut latencies = Latencies::default();
    let mut missing = 0;
    for (id, due) in &due_by_referral {
        match received.get(id) {
            Some(at) => latencies.0.push(at.saturating_duration_since(*due)),
            None => missing += 1,
        }
    }
    for subscription in subscriptions {
        subscription.abort();
    }
    if errors + missing > 0 {
        eprintln!(
            "live delivery: {errors} sends failed, {missing} sent referrals not received within 2 s"
        );
    }
    Ok(Outcome {
        scenario: format!(
            "c. subscribe: send→receipt, {} subscribers at {}/s",
            args.subscribers, args.rate
        ),
        mode: "open",
        operations: latencies.0.len(),
        errors: errors + missing,
        elapsed: send_elapsed,
        latencies,
        hub_cpu: cpu_before.zip(hub.cpu()).map(|(a, b)| b.saturating_sub(a)),
        hub_peak_rss_mb: hub.peak_rss_mb(),
    })
}

fn print_table(outcomes: &mut [Outcome]) {
    println!(
        "{:<58} {:>6} {:>9} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "SCENARIO",
        "MODE",
        "OPS/S",
        "ERRORS",
        "P50 ms",
        "P90 ms",
        "P99 ms",
        "P99.9 ms",
        "HUB CPU",
        "HUB RSS"
    );
    for o in outcomes.iter_mut() {
        let ms = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1e3);
        let p50 = ms(o.latencies.percentile(50.0));
        let p90 = ms(o.latencies.percentile(90.0));
        let p99 = ms(o.latencies.percentile(99.0));
        let p999 = ms(o.latencies.percentile(99.9));
        println!(
            "{:<58} {:>6} {:>9.0} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
            o.scenario,
            o.mode,
            o.per_second(),
            o.errors,
            p50,
            p90,
            p99,
            p999,
            o.hub_cpu
                .map(|d| format!("{:.1}s", d.as_secs_f64()))
                .unwrap_or_else(|| "-".into()),
            o.hub_peak_rss_mb
                .map(|mb| format!("{mb:.0}MB"))
                .unwrap_or_else(|| "-".into()),
        );
    }
}

/// Whether a `ListEvents` page of 100 after `after` came back full. With `decode`, the client
/// decodes every event, as an agency's system would; without, it keeps each event as the bytes
/// it came in (the same wire message, read as `served::ListEventsPage`) and only counts them,
/// so that the load generator's own decoding does not take the CPU the hub is measured on.
async fn full_page(client: &Hub, after: u64, decode: bool) -> bool {
    let request = pb::ListEventsRequest {
        after_cursor: after,
        limit: 100,
    };
    if decode {
        return client
            .events()
            .list_events(request)
            .await
            .is_ok_and(|page| page.into_inner().events.len() == 100);
    }
    let mut grpc = tonic::client::Grpc::new(client.channel());
    if grpc.ready().await.is_err() {
        return false;
    }
    let codec = tonic_prost::ProstCodec::<pb::ListEventsRequest, ListEventsPage>::default();
    let path =
        tonic::codegen::http::uri::PathAndQuery::from_static("/tsunagu.v1.EventService/ListEvents");
    grpc.unary(tonic::Request::new(request), path, codec)
        .await
        .is_ok_and(|page| page.into_inner().events.len() == 100)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let tls_dir = dir.path().join("tls");
    std::fs::create_dir_all(&tls_dir)?;
    let pki = TestPki::generate(&tls_dir);
    if args.database.is_some() && !args.full {
        return compare::run(&args, &pki, dir.path()).await;
    }

    // A fresh database for the hub and another for the commit loop, on the same server.
    let database = TestDatabase::create_on(args.database.as_deref(), dir.path()).await;
    let commit_dir = dir.path().join("commit-loop");
    std::fs::create_dir_all(&commit_dir)?;
    let commit_database = TestDatabase::create_on(args.database.as_deref(), &commit_dir).await;
    let (database_url, commit_url) = (database.url.clone(), commit_database.url.clone());
    register_agencies(&database_url, args.subscribers).await?;

    let mut outcomes = Vec::new();
    eprintln!("measuring the transport limit (echo)…");
    outcomes.push(echo(&args, &pki).await?);
    eprintln!("measuring the durable-write limit (single-row commits)…");
    outcomes.push(commit_loop(&args, &commit_url).await?);

    let hub = start_hub(dir.path(), &pki, &database_url).await?;
    let mut kodomo = Vec::new();
    for _ in 0..args.connections {
        kodomo.push(connect(&pki, hub.addr, "kodomo").await?);
    }
    let case_id = prepare_case(&kodomo[0], tsunagu_tests::MUNICIPALITY).await?;

    // The 1 KiB sends all go to one agency, whose inbox and feed the acknowledgement and
    // ListEvents scenarios then work through; the 16 KiB sends spread over every agency.
    for (size, spread) in [(1024_usize, 1_usize), (16 * 1024, args.subscribers.max(1))] {
        eprintln!("measuring durable sends with {size}-byte bodies…");
        let body = sealed_bytes(&vec![b'x'; size]);
        let case_id = case_id.clone();
        outcomes.push(
            closed_loop(
                &format!("c. SendReferral, sealed body {} KiB", size / 1024),
                &kodomo,
                args.in_flight,
                args.seconds,
                Some(&hub),
                move |client, n| {
                    let request = referral_request(&case_id, &bench_agency(n % spread), &body);
                    async move { Some(client.referrals().send_referral(request).await.is_ok()) }
                },
            )
            .await,
        );
    }

    eprintln!("measuring delivery acknowledgements…");
    let recipient = bench_agency(0);
    let recipient_client = connect(&pki, hub.addr, &recipient).await?;
    let mut to_acknowledge = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = recipient_client
            .referrals()
            .list_referrals(pb::ListReferralsRequest {
                direction: pb::ReferralDirection::Received as i32,
                case_id: String::new(),
                include_closed: false,
                limit: 500,
                page_token: page_token.clone(),
            })
            .await?
            .into_inner();
        to_acknowledge.extend(page.referrals.into_iter().map(|r| r.referral_id));
        if page.next_page_token.is_empty() || to_acknowledge.len() > 200_000 {
            break;
        }
        page_token = page.next_page_token;
    }
    let to_acknowledge_count = to_acknowledge.len();
    let to_acknowledge = Arc::new(to_acknowledge);
    let acknowledgers: Vec<Hub> = (0..args.connections)
        .map(|_| recipient_client.clone())
        .collect();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    outcomes.push(
        closed_loop(
            "c. RecordReferralAction (acknowledge delivery)",
            &acknowledgers,
            args.in_flight,
            args.seconds,
            Some(&hub),
            move |client, _| {
                let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let id = to_acknowledge.get(index).cloned();
                async move {
                    let id = id?;
                    let acknowledged = client
                        .referrals()
                        .record_referral_action(pb::RecordReferralActionRequest {
                            referral_id: id,
                            action: pb::ReferralAction::AcknowledgeDelivery as i32,
                            reason_code: String::new(),
                            not_connected_reason: 0,
                            linked_referral_id: String::new(),
                            note: None,
                            staff: Some(staff()),
                            occurred_at: None,
                            idempotency_key: uuid::Uuid::new_v4().to_string(),
                            ..pb::RecordReferralActionRequest::default()
                        })
                        .await
                        .is_ok();
                    Some(acknowledged)
                }
            },
        )
        .await,
    );

    let first_page = recipient_client
        .events()
        .list_events(pb::ListEventsRequest {
            after_cursor: 0,
            limit: 100,
        })
        .await?
        .into_inner();
    eprintln!(
        "measuring ListEvents pages of 100 ({} bytes each)…",
        prost::Message::encoded_len(&first_page)
    );
    let first_cursor = first_page.events.first().map_or(0, |e| e.cursor);
    let readers: Vec<Hub> = (0..args.connections)
        .map(|_| recipient_client.clone())
        .collect();
    // Pages start anywhere among the recipient's events but the last 200, so they are full.
    let window = to_acknowledge_count.saturating_sub(200).max(1) as u64;
    for decode in [true, false] {
        let scenario = if decode {
            "c. ListEvents, pages of 100"
        } else {
            "c. ListEvents, pages of 100 (events not decoded)"
        };
        outcomes.push(
            closed_loop(
                scenario,
                &readers,
                args.in_flight,
                args.seconds,
                Some(&hub),
                move |client, n| async move {
                    let after = first_cursor + (n as u64 % window);
                    Some(full_page(&client, after, decode).await)
                },
            )
            .await,
        );
    }

    eprintln!(
        "measuring live delivery to {} subscribers at {}/s…",
        args.subscribers, args.rate
    );
    outcomes.push(live_delivery(&args, &pki, &hub, &kodomo, &case_id).await?);

    let echo_rate = outcomes[0].per_second();
    let commit_rate = outcomes[1].per_second();
    if !args.json {
        print_table(&mut outcomes);
        println!();
        for o in outcomes.iter().skip(2) {
            println!(
                "{:<58} c/a = {:>5.1}%   c/b = {:>5.2}x",
                o.scenario,
                100.0 * o.per_second() / echo_rate.max(1e-9),
                o.per_second() / commit_rate.max(1e-9)
            );
        }
        println!();
    }
    for o in &mut outcomes {
        let mut line = o.json();
        line["ratio_to_echo"] =
            serde_json::json!((o.per_second() / echo_rate.max(1e-9) * 1e3).round() / 1e3);
        line["ratio_to_commit_loop"] =
            serde_json::json!((o.per_second() / commit_rate.max(1e-9) * 1e3).round() / 1e3);
        println!("{line}");
    }
    drop(hub);
    Ok(())
}

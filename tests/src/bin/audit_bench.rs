//! `tsunagu-audit-bench`: what auditing costs a send. Starts two real hubs side by side in this
//! process (the `Application`, real mTLS, a fresh SQLite file each, or a fresh PostgreSQL
//! database each when `TSUNAGU_TEST_POSTGRES_URL` is set), one auditing and one not, and times
//! the same durable `SendReferral` calls against both: one at a time, alternating between the
//! hubs send by send, then many in flight, alternating block by block. Whatever else the machine
//! is doing meanwhile weighs on both alike.
//!
//! Auditing cannot be turned off in a hub that serves agencies; the benchmark builds its hubs
//! through the doc-hidden `Application::build_with` for this measurement alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use tokio::sync::Mutex;
use tsunagu_client::Hub;
use tsunagu_hub::casework::audit::AuditMode;
use tsunagu_proto::v1 as pb;
use tsunagu_tests::TestHub;
use tsunagu_tests::fixtures::{POSTNATAL_CARE, by_consent, consented_case, referral_request};

/// Measure what auditing costs a durable send.
#[derive(Debug, Parser)]
#[command(
    name = "tsunagu-audit-bench",
    after_help = "Examples:\n  cargo run --release -p tsunagu-tests --bin tsunagu-audit-bench\n  \
                  cargo run --release -p tsunagu-tests --bin tsunagu-audit-bench -- --sequential 500 --rounds 5\n  \
                  TSUNAGU_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test \\\n    \
                  cargo run --release -p tsunagu-tests --bin tsunagu-audit-bench"
)]
struct Args {
    /// Sends one after the other, per hub (alternating between the hubs).
    #[arg(long, default_value_t = 1000)]
    sequential: usize,
    /// Sends with many in flight, per hub and block.
    #[arg(long, default_value_t = 200)]
    concurrent: usize,
    /// Blocks of concurrent sends per hub, alternating between the hubs.
    #[arg(long, default_value_t = 10)]
    blocks: usize,
    /// Sends in flight at once in the concurrent part.
    #[arg(long, default_value_t = 32)]
    in_flight: usize,
    /// Client connections the in-flight sends share.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Only the JSON lines, no table.
    #[arg(long)]
    json: bool,
}

/// What one part of one round measured.
#[derive(Debug, Default, Clone)]
struct Measured {
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl Measured {
    fn merge(&mut self, other: &Measured) {
        self.latencies.extend_from_slice(&other.latencies);
        self.elapsed += other.elapsed;
    }

    fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn mean(&self) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        self.latencies.iter().sum::<Duration>() / self.latencies.len() as u32
    }

    fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
        sorted[rank.min(sorted.len() - 1)]
    }
}

fn ms(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1e6).round() / 1e3
}

/// The median of some ratios (0 when there are none).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn mode_name(mode: AuditMode) -> &'static str {
    match mode {
        AuditMode::On => "on",
        AuditMode::Off => "off",
    }
}

/// One hub, set up for sending: kodomo's case with the family's consent to the hospital.
struct Bench {
    hub: TestHub,
    clients: Vec<Hub>,
    case_id: String,
}

impl Bench {
    async fn start(mode: AuditMode, connections: usize) -> anyhow::Result<Bench> {
        let hub = TestHub::start_audited(|_| {}, mode).await;
        let mut clients = Vec::with_capacity(connections.max(1));
        for _ in 0..connections.max(1) {
            clients.push(hub.client("kodomo").await);
        }
        let (case, _) =
            consented_case(&*hub.clock, &clients[0], &["hospital"], &[POSTNATAL_CARE]).await;
        Ok(Bench {
            hub,
            clients,
            case_id: case.case_id,
        })
    }

    /// Requests sealed ahead of time, so that sealing is not measured.
    fn requests(&self, count: usize) -> Vec<pb::SendReferralRequest> {
        (0..count)
            .map(|_| referral_request(&self.case_id, "hospital", POSTNATAL_CARE, by_consent()))
            .collect()
    }

    async fn send(client: &Hub, request: pb::SendReferralRequest) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let response = client
            .referrals()
            .send_referral(request)
            .await
            .context("SendReferral")?;
        if response.into_inner().referral.is_none() {
            bail!("SendReferral answered without a referral");
        }
        Ok(started.elapsed())
    }

    async fn sequential(&self, count: usize) -> anyhow::Result<Measured> {
        let requests = self.requests(count);
        let mut measured = Measured::default();
        let started = Instant::now();
        for request in requests {
            measured
                .latencies
                .push(Self::send(&self.clients[0], request).await?);
        }
        measured.elapsed = started.elapsed();
        Ok(measured)
    }

    async fn concurrent(&self, count: usize, in_flight: usize) -> anyhow::Result<Measured> {
        let queue = Arc::new(Mutex::new(self.requests(count)));
        let started = Instant::now();
        let mut workers = Vec::with_capacity(in_flight);
        for worker in 0..in_flight.max(1) {
            let client = self.clients[worker % self.clients.len()].clone();
            let queue = Arc::clone(&queue);
            workers.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let Some(request) = queue.lock().await.pop() else {
                        return anyhow::Ok(latencies);
                    };
                    latencies.push(Self::send(&client, request).await?);
                }
            }));
        }
        let mut measured = Measured::default();
        for worker in workers {
            measured.latencies.extend(worker.await??);
        }
        measured.elapsed = started.elapsed();
        Ok(measured)
    }

    async fn stop(self) {
        drop(self.clients);
        self.hub.stop().await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // The hubs' own logs stay quiet unless RUST_LOG asks; figures go to stdout.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,sqlx=error"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let backend = if tsunagu_tests::postgres_url().is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    if cfg!(debug_assertions) {
        eprintln!("note: a debug build; run with --release for figures worth quoting");
    }

    // Index 0: auditing off; 1: on.
    let benches = [
        Bench::start(AuditMode::Off, args.connections).await?,
        Bench::start(AuditMode::On, args.connections).await?,
    ];
    for bench in &benches {
        // Warm the connections, the statement caches and the database file.
        bench.sequential(20).await?;
    }

    // One at a time, alternating hub and order send by send.
    let mut requests = [
        benches[0].requests(args.sequential),
        benches[1].requests(args.sequential),
    ];
    let mut sequential = [Measured::default(), Measured::default()];
    for i in 0..args.sequential {
        let order = if i % 2 == 0 { [0, 1] } else { [1, 0] };
        for slot in order {
            let request = requests[slot].pop().context("a sealed request")?;
            let latency = Bench::send(&benches[slot].clients[0], request).await?;
            sequential[slot].latencies.push(latency);
            sequential[slot].elapsed += latency;
        }
    }

    // Many in flight, alternating hub and order block by block (ABBA).
    let mut concurrent = [Measured::default(), Measured::default()];
    let mut block_ratios = Vec::with_capacity(args.blocks);
    for block in 0..args.blocks.max(1) {
        let order = if block % 2 == 0 { [0, 1] } else { [1, 0] };
        let mut rates = [0.0; 2];
        for slot in order {
            let measured = benches[slot]
                .concurrent(args.concurrent, args.in_flight)
                .await?;
            rates[slot] = measured.per_second();
            concurrent[slot].merge(&measured);
        }
        block_ratios.push(rates[0] / rates[1].max(1e-12) - 1.0);
    }
    for bench in benches {
        bench.stop().await;
    }

    let latency_overhead = |parts: &[Measured; 2], of: fn(&Measured) -> Duration| {
        (of(&parts[1]).as_secs_f64() / of(&parts[0]).as_secs_f64().max(1e-12) - 1.0) * 100.0
    };
    let round1 = |percent: f64| (percent * 10.0).round() / 10.0;
    let sequential_mean = latency_overhead(&sequential, Measured::mean);
    let sequential_p50 = latency_overhead(&sequential, |m| m.percentile(50.0));
    let concurrent_throughput =
        (concurrent[0].per_second() / concurrent[1].per_second().max(1e-12) - 1.0) * 100.0;
    let concurrent_median_block = median(block_ratios) * 100.0;
    for (part, parts) in [("sequential", &sequential), ("concurrent", &concurrent)] {
        for (slot, mode) in [(0, AuditMode::Off), (1, AuditMode::On)] {
            let measured = &parts[slot];
            println!(
                "{}",
                serde_json::json!({
                    "backend": backend,
                    "part": part,
                    "audit": mode_name(mode),
                    "sends": measured.latencies.len(),
                    "per_second": measured.per_second().round(),
                    "mean_ms": ms(measured.mean()),
                    "p50_ms": ms(measured.percentile(50.0)),
                    "p95_ms": ms(measured.percentile(95.0)),
                })
            );
        }
    }
    println!(
        "{}",
        serde_json::json!({
            "backend": backend,
            "summary": true,
            "sequential_mean_latency_overhead_percent": round1(sequential_mean),
            "sequential_median_latency_overhead_percent": round1(sequential_p50),
            "concurrent_throughput_overhead_percent": round1(concurrent_throughput),
            "concurrent_median_block_overhead_percent": round1(concurrent_median_block),
        })
    );
    if args.json {
        return Ok(());
    }
    println!();
    println!(
        "What auditing costs a durable SendReferral ({backend}; sequential: {} sends per hub, \
         alternating; concurrent: {} blocks of {} sends per hub, {} in flight over {} \
         connections, alternating)",
        args.sequential,
        args.blocks.max(1),
        args.concurrent,
        args.in_flight,
        args.connections
    );
    println!(
        "{:<11} {:>6} {:>10} {:>9} {:>9} {:>9}",
        "PART", "AUDIT", "SENDS/S", "MEAN ms", "P50 ms", "P95 ms"
    );
    for (part, parts) in [("sequential", &sequential), ("concurrent", &concurrent)] {
        for (slot, mode) in [(0, "off"), (1, "on")] {
            let measured = &parts[slot];
            println!(
                "{:<11} {:>6} {:>10.0} {:>9.2} {:>9.2} {:>9.2}",
                part,
                mode,
                measured.per_second(),
                ms(measured.mean()),
                ms(measured.percentile(50.0)),
                ms(measured.percentile(95.0)),
            );
        }
    }
    println!(
        "overhead, one at a time: {sequential_mean:+.1}% mean latency, {sequential_p50:+.1}% \
         median latency"
    );
    println!(
        "overhead, many in flight: {concurrent_throughput:+.1}% throughput overall, \
         {concurrent_median_block:+.1}% in the median block"
    );
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average when done (1, 5, 15 min): {}", load.trim());
    }
    Ok(())
}

//! `tsunagu-seal-bench`: how long the client library takes to seal a referral body for several
//! recipients and to open it again, the work every send and every read adds on an agency's
//! machine. Prints a table for people, then one JSON line for scripts.
//!
//! ```sh
//! cargo run --release -p tsunagu-tests --bin tsunagu-seal-bench
//! cargo run --release -p tsunagu-tests --bin tsunagu-seal-bench -- --iterations 500 --bytes 65536 --recipients 4
//! ```
//!
//! Sealing is `tsunagu_client::seal::seal` (what `Sealer` does once it has the keys from the
//! directory); opening is `open_with` with one identity, that of the recipient whose stanza comes
//! last in the header (the slowest to find). Keys are generated here; nothing touches a hub.

use std::time::{Duration, Instant};

use age::x25519::{Identity, Recipient};
use anyhow::{Context as _, bail, ensure};
use tsunagu_client::seal::{open_with, seal};

struct Options {
    iterations: usize,
    bytes: usize,
    recipients: usize,
}

fn parse_options() -> anyhow::Result<Options> {
    let mut options = Options {
        iterations: 200,
        bytes: 64 * 1024,
        recipients: 4,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = |name: &str| -> anyhow::Result<usize> {
            let text = args
                .next()
                .with_context(|| format!("{name} needs a number"))?;
            text.parse()
                .with_context(|| format!("{name} {text:?} is not a number"))
        };
        match flag.as_str() {
            "--iterations" => options.iterations = value("--iterations")?,
            "--bytes" => options.bytes = value("--bytes")?,
            "--recipients" => options.recipients = value("--recipients")?,
            "-h" | "--help" => {
                println!(
                    "usage: tsunagu-seal-bench [--iterations N (200)] [--bytes N (65536)] \
                     [--recipients N (4)]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown option {other:?}; see --help"),
        }
    }
    ensure!(options.iterations >= 1, "--iterations must be at least 1");
    ensure!(options.recipients >= 1, "--recipients must be at least 1");
    Ok(options)
}

/// Median, 99th percentile, mean, minimum and maximum of some durations.
struct Summary {
    median: Duration,
    p99: Duration,
    mean: Duration,
    min: Duration,
    max: Duration,
}

fn summarise(mut samples: Vec<Duration>) -> Summary {
    samples.sort_unstable();
    let at = |quantile: f64| {
        let rank = (quantile * samples.len() as f64).ceil() as usize;
        samples[rank.clamp(1, samples.len()) - 1]
    };
    let total: Duration = samples.iter().sum();
    Summary {
        median: at(0.5),
        p99: at(0.99),
        mean: total / samples.len() as u32,
        min: samples[0],
        max: samples[samples.len() - 1],
    }
}

/// Milliseconds, to the microsecond.
fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

fn main() -> anyhow::Result<()> {
    let options = parse_options()?;
    let identities: Vec<Identity> = (0..options.recipients)
        .map(|_| Identity::generate())
        .collect();
    let recipients: Vec<Recipient> = identities.iter().map(Identity::to_public).collect();
    let reader = identities[identities.len() - 1].clone();
    // A body that does not repeat (age does not compress, but be fair anyway).
    let body: Vec<u8> = (0..options.bytes)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();

    for _ in 0..5 {
        let sealed = seal(&body, &recipients)?;
        open_with(&sealed, std::slice::from_ref(&reader))?;
    }
    let mut seal_times = Vec::with_capacity(options.iterations);
    let mut open_times = Vec::with_capacity(options.iterations);
    let mut sealed_len = 0;
    for _ in 0..options.iterations {
        let started = Instant::now();
        let sealed = seal(&body, &recipients)?;
        seal_times.push(started.elapsed());
        sealed_len = sealed.len();
        let started = Instant::now();
        let opened = open_with(&sealed, std::slice::from_ref(&reader))?;
        open_times.push(started.elapsed());
        ensure!(
            opened == body,
            "the opened body differs from the sealed one"
        );
    }
    let sealing = summarise(seal_times);
    let opening = summarise(open_times);

    println!(
        "age X25519, {} bytes for {} recipients ({} bytes sealed), {} iterations{}",
        options.bytes,
        options.recipients,
        sealed_len,
        options.iterations,
        if cfg!(debug_assertions) {
            " — DEBUG BUILD, use --release for real figures"
        } else {
            ""
        }
    );
    println!(
        "{:<8} {:>12} {:>12} {:>12} {:>12} {:>12}",
        "", "median ms", "p99 ms", "mean ms", "min ms", "max ms"
    );
    for (name, s) in [("seal", &sealing), ("open", &opening)] {
        println!(
            "{name:<8} {:>12.3} {:>12.3} {:>12.3} {:>12.3} {:>12.3}",
            millis(s.median),
            millis(s.p99),
            millis(s.mean),
            millis(s.min),
            millis(s.max)
        );
    }
    let json = serde_json::json!({
        "bench": "seal",
        "release": !cfg!(debug_assertions),
        "bytes": options.bytes,
        "recipients": options.recipients,
        "sealed_bytes": sealed_len,
        "iterations": options.iterations,
        "seal_ms": {
            "median": millis(sealing.median),
            "p99": millis(sealing.p99),
            "mean": millis(sealing.mean),
        },
        "open_ms": {
            "median": millis(opening.median),
            "p99": millis(opening.p99),
            "mean": millis(opening.mean),
        },
    });
    println!("{json}");
    Ok(())
}

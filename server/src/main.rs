//! `tsunagu-hub`: runs the hub and the operator's commands (agencies, certificates, migrations).

mod operator;

use clap::Parser;

/// mimalloc rather than the system allocator: the hub allocates many small, short-lived buffers
/// per call on several threads (rows, protobuf messages, TLS records), where glibc's arenas
/// showed up in the profile as lock waits and consolidation.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = operator::Cli::parse();
    match operator::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

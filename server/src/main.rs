//! `tsunagu-hub`: runs the hub and the operator's commands (agencies, certificates, migrations).

mod operator;

use clap::Parser;

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

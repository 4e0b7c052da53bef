//! `fraudflow`: score JSON Lines transactions with the same code as the Lambda function.

mod score;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "fraudflow",
    version,
    about = "Card-fraud scoring with a conditional normalizing flow"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Score transactions (JSON Lines, optionally .gz) and write one answer or error per line.
    Score(score::ScoreArgs),
}

// mimalloc: scoring allocates many small values per request (JSON, answers); glibc's malloc/free
// took ~40% of a batch-256 profile, mimalloc cuts the request path by ~24% (docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            // Off EC2 and Lambda the SDK's region lookup asks the instance metadata service and
            // logs each failed try at length; the missing region gets its own clear error.
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,aws_config::imds=error".into()),
        )
        .init();
    match Cli::parse().command {
        Command::Score(args) => score::run(args).await,
    }
}

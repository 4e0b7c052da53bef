//! The fraudflow Lambda function: configuration and model loaded once per warm container,
//! then every invocation is scored by the library's handler.

use std::time::Instant;

use fraudflow::config::Config;
use fraudflow::handler;
use fraudflow::service::{Service, millis};
use lambda_runtime::{Error, service_fn};
use tokio::sync::OnceCell;

static SERVICE: OnceCell<Service> = OnceCell::const_new();

// mimalloc: scoring allocates many small values per request (JSON, answers); glibc's malloc/free
// took ~40% of a batch-256 profile, mimalloc cuts the request path by ~24% (docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let started = Instant::now();
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let service = SERVICE
        .get_or_init(|| async { Service::start(config).await.0 })
        .await;
    // The whole init from main, for the cold-start split (`make bench`): the rest of a cold
    // start is process start before main and the first invocation.
    tracing::info!(init_ms = millis(started.elapsed()), "init done");
    lambda_runtime::run(service_fn(|event| handler::handle(event, service))).await
}

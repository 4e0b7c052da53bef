//! The fraudflow Lambda function: configuration and model loaded once per warm container,
//! then every invocation is scored by the library's handler.

use fraudflow::config::Config;
use fraudflow::handler;
use fraudflow::service::Service;
use lambda_runtime::{Error, service_fn};
use tokio::sync::OnceCell;

static SERVICE: OnceCell<Service> = OnceCell::const_new();

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let service = SERVICE
        .get_or_init(|| async { Service::start(config).await.0 })
        .await;
    lambda_runtime::run(service_fn(|event| handler::handle(event, service))).await
}

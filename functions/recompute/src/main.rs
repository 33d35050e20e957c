//! Triggered by the weekly schedule, the webhook's hand-off, or an operator's invoke.

use dispatcher_aws::Aws;
use dispatcher_config::RuntimeConfig;
use lambda_runtime::{LambdaEvent, service_fn};
use recompute::RecomputeFailure;
use serde_json::Value;

// Placement allocates and frees many small strings, several threads at a time;
// mimalloc does that markedly faster than the system allocator (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = RuntimeConfig::from_env()?;
    let aws = Aws::default();
    let stores = aws.open(&config.store).await?;
    let (config, aws, stores) = (&config, &aws, &stores);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        // Secrets are read for every invocation: a rotated token applies to the next run.
        let recomputer = recompute::recomputer(config, aws, stores.clone())
            .await
            .map_err(RecomputeFailure::Setup)?;
        recompute::handle(&recomputer, event, dispatcher_api::now()).await
    }))
    .await
}

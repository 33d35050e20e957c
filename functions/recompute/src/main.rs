//! Triggered by the weekly schedule, the webhook's hand-off, or an operator's invoke.

use dispatcher_app::recompute::RecomputeError;
use dispatcher_runtime::lambda::RecomputeFailure;
use dispatcher_runtime::{Aws, RuntimeConfig, lambda, now, recomputer_on, stores};
use lambda_runtime::{LambdaEvent, service_fn};
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
    let stores = stores(&config).await?;
    let (config, aws, stores) = (&config, &aws, &stores);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        // Secrets are read for every invocation: a rotated token applies to the next run.
        let recomputer = recomputer_on(config, aws, stores.clone())
            .await
            .map_err(|e| {
                RecomputeFailure(RecomputeError {
                    stage: "secrets",
                    retryable: true,
                    message: format!("{e:#}"),
                })
            })?;
        lambda::recompute(&recomputer, event, now()).await
    }))
    .await
}

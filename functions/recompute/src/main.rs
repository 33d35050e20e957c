//! Triggered by the weekly schedule, the webhook's hand-off, or an operator's invoke.

use dispatcher_runtime::{Aws, RuntimeConfig, lambda, now, recomputer};
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
    let recomputer = recomputer(&config, &Aws::default()).await?;
    let recomputer = &recomputer;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        lambda::recompute(recomputer, event, now()).await
    }))
    .await
}

//! The control API, Slack's `/dispatch`, and the every-minute sweep.

use std::sync::Arc;

use anyhow::Context;
use dispatcher_aws::Aws;
use dispatcher_aws::lambda::LambdaHandoff;
use dispatcher_config::RuntimeConfig;
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

// Planning an override runs the placement on the stored release, like a recompute.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = RuntimeConfig::from_env()?;
    let aws = Aws::default();
    let stores = aws.open(&config.store).await?;
    let own = config
        .function_name
        .clone()
        .context("AWS_LAMBDA_FUNCTION_NAME is unset")?;
    let queue = Arc::new(LambdaHandoff::new(aws.lambda().await, own));
    let wiring = control::wiring(&config, &aws, stores, queue).await?;
    let wiring = &wiring;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let function = event.context.env_config.function_name.clone();
        control::handle(wiring, &function, event.payload, dispatcher_api::now()).await
    }))
    .await
}

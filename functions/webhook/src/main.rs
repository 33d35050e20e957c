//! `POST /github`: verify, deduplicate, decide, hand off to recompute, answer 202.

use std::sync::Arc;

use anyhow::Context;
use dispatcher_aws::Aws;
use dispatcher_aws::lambda::LambdaHandoff;
use dispatcher_config::RuntimeConfig;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let config = RuntimeConfig::from_env()?;
    let aws = Aws::default();
    let stores = aws.open(&config.store).await?;
    let function = config
        .recompute_function
        .clone()
        .context("DISPATCHER_RECOMPUTE_FUNCTION is required")?;
    let handoff = Arc::new(LambdaHandoff::new(aws.lambda().await, function));
    let source = webhook::source(&config, &aws).await?;
    // The same client reads pull requests: their deliveries are planned.
    let prs: Arc<dyn dispatcher_app::ports::PullRequests> = source.clone();
    let router = webhook::router(&config, &aws, &stores, source, handoff, Some(prs)).await?;
    dispatcher_api::lambda::serve_http(router).await
}

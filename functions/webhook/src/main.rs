//! `POST /github`: verify, deduplicate, decide, hand off to recompute, answer 202.

use std::sync::Arc;

use anyhow::Context;
use dispatcher_aws::lambda::LambdaHandoff;
use dispatcher_runtime::{Aws, RuntimeConfig, github_for_webhook, lambda, stores, webhook};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let config = RuntimeConfig::from_env()?;
    let aws = Aws::default();
    let stores = stores(&config).await?;
    let function = config
        .recompute_function
        .clone()
        .context("DISPATCHER_RECOMPUTE_FUNCTION is required")?;
    let handoff = Arc::new(LambdaHandoff::new(
        aws_sdk_lambda::Client::new(aws.config().await),
        function,
    ));
    let source = github_for_webhook(&config, &aws).await?;
    let router = webhook(&config, &aws, &stores, source, handoff).await?;
    lambda::serve_http(router).await
}

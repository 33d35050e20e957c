//! `POST /` `{"job": NAME}` -> `{"cluster": ...}`, from an in-memory copy of the current
//! generation.

use dispatcher_runtime::{RuntimeConfig, lambda, lookup, stores};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let config = RuntimeConfig::from_env()?;
    let stores = stores(&config).await?;
    lambda::serve_http(lookup(&config, stores)).await
}

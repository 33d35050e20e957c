//! `POST /` `{"job": NAME}` -> `{"cluster": ...}`, from an in-memory copy of the current
//! generation.

use dispatcher_aws::Aws;
use dispatcher_config::RuntimeConfig;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let config = RuntimeConfig::from_env()?;
    let stores = Aws::default().open(&config.store).await?;
    dispatcher_api::lambda::serve_http(lookup::router(&config, stores)).await
}

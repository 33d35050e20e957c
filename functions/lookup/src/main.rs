//! `POST /` `{"job": NAME}` -> `{"cluster": ...}`, from an in-memory copy of the current
//! generation.

use std::sync::Arc;

use dispatcher_app::ports::AnswerMetrics;
use dispatcher_aws::Aws;
use dispatcher_config::RuntimeConfig;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let config = RuntimeConfig::from_env()?;
    let stores = Aws::default().open(&config.store).await?;
    let metrics = config
        .function_name
        .as_deref()
        .map(|f| Arc::new(dispatcher_aws::metrics::EmfAnswers::new(f)) as Arc<dyn AnswerMetrics>);
    dispatcher_api::lambda::serve_http(lookup::counted_router(&config, stores, metrics)).await
}

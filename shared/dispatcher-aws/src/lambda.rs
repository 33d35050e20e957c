//! Lambda-side adapters: the webhook's asynchronous hand-off to the recompute function, and
//! secrets read once at cold start.

use async_trait::async_trait;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use dispatcher_app::ports::{Handoff, SourceError};
use dispatcher_app::recompute::RecomputeRequest;

/// Invokes the recompute function asynchronously (`InvocationType=Event`): Lambda queues it,
/// retries failures, and the webhook answers at once.
#[derive(Debug, Clone)]
pub struct LambdaHandoff {
    client: aws_sdk_lambda::Client,
    function: String,
}

impl LambdaHandoff {
    /// The hand-off to `function` (a name or ARN the client's role may invoke).
    pub fn new(client: aws_sdk_lambda::Client, function: impl Into<String>) -> Self {
        Self {
            client,
            function: function.into(),
        }
    }
}

#[async_trait]
impl Handoff for LambdaHandoff {
    async fn submit(&self, request: &RecomputeRequest) -> Result<(), SourceError> {
        let payload = serde_json::to_vec(request)
            .map_err(|e| SourceError::permanent("handoff", "the request as JSON").because(e))?;
        self.client
            .invoke()
            .function_name(&self.function)
            .invocation_type(InvocationType::Event)
            .payload(Blob::new(payload))
            .send()
            .await
            .map_err(|e| {
                SourceError::retryable("handoff", format!("invoke {}", self.function))
                    .because(aws_sdk_lambda::error::DisplayErrorContext(&e).to_string())
            })?;
        Ok(())
    }
}

/// Reads a secret's string value (at cold start; never logged).
pub async fn secret(
    client: &aws_sdk_secretsmanager::Client,
    arn: &str,
) -> Result<String, SourceError> {
    let out = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| {
            SourceError::retryable("secrets", arn.to_owned())
                .because(aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string())
        })?;
    out.secret_string()
        .map(str::to_owned)
        .ok_or_else(|| SourceError::permanent("secrets", format!("{arn} has no string value")))
}

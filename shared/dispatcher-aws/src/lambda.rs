//! Lambda-side adapters: asynchronous invokes (the webhook's hand-off to the recompute
//! function, the control function's chat commands to itself), and secrets.

use async_trait::async_trait;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use dispatcher_app::ports::{ChatQueue, ChatRequest, Handoff, SourceError};
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

impl LambdaHandoff {
    /// Invokes the function asynchronously with `payload`.
    async fn invoke(&self, service: &'static str, payload: Vec<u8>) -> Result<(), SourceError> {
        self.client
            .invoke()
            .function_name(&self.function)
            .invocation_type(InvocationType::Event)
            .payload(Blob::new(payload))
            .send()
            .await
            .map_err(|e| {
                SourceError::retryable(service, format!("invoke {}", self.function))
                    .because(aws_sdk_lambda::error::DisplayErrorContext(&e).to_string())
            })?;
        Ok(())
    }
}

#[async_trait]
impl Handoff for LambdaHandoff {
    async fn submit(&self, request: &RecomputeRequest) -> Result<(), SourceError> {
        let payload = serde_json::to_vec(request)
            .map_err(|e| SourceError::permanent("handoff", "the request as JSON").because(e))?;
        self.invoke("handoff", payload).await
    }
}

/// The control function's own queue of chat commands: it invokes itself asynchronously
/// with `{"action": "chat", "request": ...}` and answers Slack at once.
#[async_trait]
impl ChatQueue for LambdaHandoff {
    async fn submit(&self, request: &ChatRequest) -> Result<(), SourceError> {
        let payload =
            serde_json::to_vec(&serde_json::json!({"action": "chat", "request": request}))
                .map_err(|e| SourceError::permanent("chat", "the command as JSON").because(e))?;
        self.invoke("chat", payload).await
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

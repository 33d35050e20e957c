//! SDK failures in the store's terms, for both store adapters: connection trouble,
//! throttling and the service's own faults may pass; a failed condition is a conflict;
//! anything else is refused.

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use dispatcher_app::store::StoreError;

/// The error codes of one service that say more than "refused".
pub(crate) struct Codes {
    /// Codes of failures that may pass (throttling, internal errors).
    pub retryable: &'static [&'static str],
    /// Codes of a condition that did not hold.
    pub conflict: &'static [&'static str],
}

/// `e`, the failure of `op`, classified by the service's `codes`.
pub(crate) fn classify<E, R>(op: &str, e: SdkError<E, R>, codes: &Codes) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let text = DisplayErrorContext(&e).to_string();
    match &e {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            StoreError::unavailable(op, text)
        }
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or_default();
            if codes.conflict.contains(&code) {
                StoreError::Conflict(format!("{op}: {text}"))
            } else if codes.retryable.contains(&code) {
                StoreError::unavailable(op, text)
            } else {
                StoreError::refused(op, text)
            }
        }
        _ => StoreError::refused(op, text),
    }
}

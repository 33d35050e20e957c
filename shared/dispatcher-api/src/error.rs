//! Every way a request can fail, and the one place that turns a failure into an answer:
//! its status, its body (the plain text Go's `http.Error` writes) and, for the service's
//! own faults, a log line with the whole cause.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dispatcher_app::lookup::LookupError;
use dispatcher_app::store::BoxError;
use dispatcher_app::webhook::IntakeError;

use crate::text;

/// A request that gets no answer of its own.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Another method than the route serves.
    #[error("Invalid request method")]
    MethodNotAllowed,
    /// A body or a name we cannot use; the message says which and why.
    #[error("{0}")]
    BadRequest(String),
    /// No credentials, or malformed ones; the message may be empty (the webhook says
    /// nothing to an unsigned caller).
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// Credentials that do not match.
    #[error("")]
    Forbidden,
    /// Nothing here under that name.
    #[error("{0}")]
    NotFound(&'static str),
    /// A new ephemeral cluster job beyond the instance's rate.
    #[error("Too many new ephemeral clusters")]
    TooManyEphemeral,
    /// An ephemeral cluster job, and no cluster takes new work.
    #[error("Failed to get the cluster")]
    NoUsableCluster,
    /// A dependency failed (the store, the hand-off); `answer` is what the caller reads,
    /// the cause goes to the log.
    #[error("{answer}")]
    Unavailable {
        /// The body.
        answer: String,
        /// The cause.
        #[source]
        cause: BoxError,
    },
    /// A push was taken but could not be handled, and was forgotten: GitHub should
    /// redeliver it.
    #[error("the push could not be handled; redeliver it")]
    NotHandled(#[source] IntakeError),
}

impl ApiError {
    /// The store could not answer.
    pub fn store(cause: impl Into<BoxError>) -> Self {
        Self::Unavailable {
            answer: "The dispatcher store is unavailable".to_owned(),
            cause: cause.into(),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::TooManyEphemeral => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NoUsableCluster => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::NotHandled(_) => StatusCode::BAD_GATEWAY,
        }
    }
}

impl From<LookupError> for ApiError {
    fn from(e: LookupError) -> Self {
        match e {
            LookupError::NameTooLong { .. } => ApiError::BadRequest(format!("bad job name: {e}")),
            LookupError::TooManyEphemeral => ApiError::TooManyEphemeral,
            LookupError::NoUsableCluster => ApiError::NoUsableCluster,
            // Prow falls back to the static cluster on any non-200; keep it rare and fast.
            LookupError::Store(_) | LookupError::Snapshot(_) => ApiError::store(e),
        }
    }
}

impl From<IntakeError> for ApiError {
    fn from(e: IntakeError) -> Self {
        match e {
            IntakeError::Record(_) => ApiError::Unavailable {
                answer: "try again later".to_owned(),
                cause: e.into(),
            },
            IntakeError::Failed(_) | IntakeError::TimedOut(_) => ApiError::NotHandled(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), error = %dispatcher_core::chain(&self), "request failed");
        }
        let mut response = text(status, &self.to_string());
        if matches!(self, ApiError::TooManyEphemeral) {
            // The bucket refills by the second.
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_has_its_status() {
        let cases = [
            (ApiError::MethodNotAllowed, 405),
            (ApiError::BadRequest("x".to_owned()), 400),
            (ApiError::Unauthenticated(""), 401),
            (ApiError::Forbidden, 403),
            (ApiError::NotFound("Cluster not found"), 404),
            (ApiError::TooManyEphemeral, 429),
            (ApiError::NoUsableCluster, 500),
            (ApiError::store("down"), 503),
        ];
        for (e, status) in cases {
            assert_eq!(e.into_response().status().as_u16(), status);
        }
    }

    #[test]
    fn a_store_failure_says_only_that_to_the_caller() {
        let e = ApiError::store("connection refused to 10.0.0.1");
        assert_eq!(e.to_string(), "The dispatcher store is unavailable");
        assert!(dispatcher_core::chain(&e).contains("10.0.0.1"));
    }
}

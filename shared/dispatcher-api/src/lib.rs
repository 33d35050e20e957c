#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod control;
pub mod error;
pub mod lambda;
pub mod lookup;
pub mod slack;
pub mod trigger;
pub mod ui;
pub mod webhook;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

pub use control::{ControlAuth, ControlState, control_router};
pub use error::ApiError;
pub use lookup::{LookupState, lookup_router};
pub use slack::{SlackState, slack_router};
pub use trigger::{TriggerState, trigger_router};
pub use ui::{UiState, ui_router};
pub use webhook::{WebhookState, webhook_router};

/// Seconds since the epoch: the clock, read at the edges only (the routers pass it in).
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A plain-text answer the way Go's `http.Error` writes it: the message and a newline.
pub(crate) fn text(status: StatusCode, message: &str) -> Response {
    let body = if message.is_empty() {
        String::new()
    } else {
        format!("{message}\n")
    };
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    response
}

//! The lookup function: Prow's external scheduling strategy (`POST /` with `{"job"}`) and
//! the read-only pages under `/ui`, its wiring over the stores. `main` serves it behind API Gateway; `dispatcher serve` serves
//! the same router locally.
#![warn(missing_docs)]

use std::sync::Arc;

use axum::Router;
use dispatcher_api::{LookupState, UiState, lookup_router, ui_router};
use dispatcher_app::pages::Pages;
use dispatcher_app::ports::AnswerMetrics;
use dispatcher_app::{LookupService, Stores};
use dispatcher_config::RuntimeConfig;

/// The lookup's router over `stores`, with the configured staleness bound (how often the
/// generation pointer is re-read) and bound on new ephemeral choices.
pub fn router(cfg: &RuntimeConfig, stores: Stores) -> Router {
    counted_router(cfg, stores, None)
}

/// The same router, counting its answers in `metrics` (CloudWatch on AWS).
pub fn counted_router(
    cfg: &RuntimeConfig,
    stores: Stores,
    metrics: Option<Arc<dyn AnswerMetrics>>,
) -> Router {
    let mut service = LookupService::with_refresh(stores.clone(), cfg.lookup_refresh)
        .with_ephemeral_limit(cfg.ephemeral);
    if let Some(m) = metrics {
        service = service.with_metrics(m);
    }
    let service = Arc::new(service);
    // The pages read the same in-memory generation as the lookup.
    let pages = ui_router(Arc::new(UiState {
        pages: Pages {
            stores,
            service: service.clone(),
        },
        now: dispatcher_api::now,
    }));
    lookup_router(Arc::new(LookupState {
        service,
        now: dispatcher_api::now,
    }))
    .merge(pages)
}

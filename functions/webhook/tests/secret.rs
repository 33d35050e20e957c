//! The webhook function's secret, as GitHub signs with it.

use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Body;
use dispatcher_app::{Handoff, RecomputeRequest, SourceError};
use hmac::{KeyInit, Mac};
use tower::ServiceExt;

use dispatcher_app::local::LocalRepo;
use dispatcher_aws::Aws;
use dispatcher_config::RuntimeConfig;

struct Nowhere;

#[async_trait]
impl Handoff for Nowhere {
    async fn submit(&self, _: &RecomputeRequest) -> Result<(), SourceError> {
        Ok(())
    }
}

fn signature(key: &[u8], body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The secret GitHub signs with is used byte for byte: one that ends in a space
/// verifies with that space and not without it (it used to be trimmed).
#[tokio::test]
async fn the_webhook_secret_is_used_byte_for_byte() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let local = dir.path().to_str().expect("utf-8");
    let cfg = RuntimeConfig::from_lookup(|k| match k {
        "DISPATCHER_WEBHOOK_SECRET" => Some("s3cret ".to_owned()),
        "DISPATCHER_LOCAL_DIR" => Some(local.to_owned()),
        _ => None,
    })
    .expect("config");
    let stores = dispatcher_app::local::open(dir.path()).expect("local store");
    let source = Arc::new(LocalRepo {
        path: dir.path().to_owned(),
        clusters: None,
        limits: Default::default(),
    });
    let router = webhook::router(
        &cfg,
        &Aws::default(),
        &stores,
        source,
        Arc::new(Nowhere),
        None,
    )
    .await
    .expect("router");
    let body = br#"{"zen":"Keep it logically awesome.","hook_id":1}"#;
    for (key, status) in [(&b"s3cret "[..], 200), (&b"s3cret"[..], 403)] {
        let request = http::Request::post("/github")
            .header("x-github-event", "ping")
            .header("x-github-delivery", "d-1")
            .header("x-hub-signature-256", signature(key, body))
            .header("content-type", "application/json")
            .body(Body::from(body.to_vec()))
            .expect("request");
        let response = router.clone().oneshot(request).await.expect("infallible");
        assert_eq!(response.status().as_u16(), status, "signed with {key:?}");
    }
}

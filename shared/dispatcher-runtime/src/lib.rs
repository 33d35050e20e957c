//! Wiring shared by the three Lambda functions and the local server: configuration read
//! once from the environment, clients and adapters built once at cold start, and the
//! adapters between Lambda events and the use cases. The functions' `main`s only call in.

pub mod config;
pub mod lambda;
pub mod metrics;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use axum::Router;
use dispatcher_api::{
    LookupState, TriggerState, WebhookState, lookup_router, trigger_router, webhook_router,
};
use dispatcher_app::Stores;
use dispatcher_app::local::{FileDemand, LocalHandoff, LocalRepo};
use dispatcher_app::ports::{DemandSource, FallbackPublisher, Handoff, RepoSource};
use dispatcher_app::{LookupService, Recomputer};
use dispatcher_github::{GitHub, GitHubConfig, Retry};
use dispatcher_prometheus::{Auth, PrometheusConfig, PrometheusDemand};

pub use config::{RuntimeConfig, Secret};

/// Seconds since the epoch: the only clock, read at the edges.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The AWS configuration, loaded on first need (the local server may never need it).
#[derive(Default)]
pub struct Aws(tokio::sync::OnceCell<aws_config::SdkConfig>);

impl Aws {
    pub async fn config(&self) -> &aws_config::SdkConfig {
        self.0.get_or_init(dispatcher_aws::sdk_config).await
    }

    /// A secret's value: read from Secrets Manager once, or given in plain locally.
    pub async fn secret(&self, secret: &Secret) -> Result<String> {
        match secret {
            Secret::Value(v) => Ok(v.clone()),
            Secret::Arn(arn) => {
                let client = aws_sdk_secretsmanager::Client::new(self.config().await);
                Ok(dispatcher_aws::lambda::secret(&client, arn).await?)
            }
        }
    }
}

pub async fn stores(cfg: &RuntimeConfig) -> Result<Stores> {
    dispatcher_aws::open(&cfg.store)
        .await
        .with_context(|| format!("Failed to open the store {:?}", cfg.store))
}

/// The GitHub adapter for the release repository.
pub async fn github(cfg: &RuntimeConfig, aws: &Aws) -> Result<Arc<GitHub>> {
    github_with(cfg, aws, Retry::default()).await
}

/// The webhook's GitHub adapter: one quick retry at most, since its one call must fit in
/// the webhook's deadline (and a push whose inventory cannot be checked is recomputed in
/// full rather than dropped).
pub async fn github_for_webhook(cfg: &RuntimeConfig, aws: &Aws) -> Result<Arc<GitHub>> {
    let retry = Retry {
        attempts: 2,
        base: std::time::Duration::from_millis(250),
    };
    github_with(cfg, aws, retry).await
}

async fn github_with(cfg: &RuntimeConfig, aws: &Aws, retry: Retry) -> Result<Arc<GitHub>> {
    let token = match &cfg.github.token {
        Some(s) => Some(
            aws.secret(s)
                .await
                .context("Failed to read the GitHub token")?,
        ),
        None => None,
    };
    let crab = GitHub::client(token, cfg.github.api.as_deref(), cfg.github.timeout)?;
    let (owner, repo) = cfg.github.owner_and_name();
    let config = GitHubConfig {
        branch: cfg.github.branch.clone(),
        labels: cfg.github.labels.clone(),
        retry,
        limits: cfg.release_limits,
        ..GitHubConfig::new(owner, repo)
    };
    Ok(Arc::new(GitHub::new(crab, config)))
}

/// The Prometheus demand source, if configured.
pub async fn prometheus(cfg: &RuntimeConfig, aws: &Aws) -> Result<Option<Arc<dyn DemandSource>>> {
    let Some(p) = &cfg.prometheus else {
        return Ok(None);
    };
    let token = match &p.token {
        Some(s) => Some(
            aws.secret(s)
                .await
                .context("Failed to read the Prometheus token")?,
        ),
        None => None,
    };
    let auth = match (token, &p.user) {
        (None, _) => Auth::None,
        (Some(t), None) => Auth::Bearer(t),
        (Some(password), Some(user)) => Auth::Basic {
            user: user.clone(),
            password,
        },
    };
    let demand = PrometheusDemand::new(PrometheusConfig {
        url: p.url.clone(),
        auth,
        timeout: p.timeout,
        window: p.window.clone(),
        offset: p.offset,
        durations_query: p.durations_query.clone(),
        cpu_query: p.cpu_query.clone(),
        memory_query: p.memory_query.clone(),
        runs_query: None,
    })?;
    Ok(Some(Arc::new(demand)))
}

/// The recompute use case over `stores`, reading the GitHub and Prometheus secrets now:
/// the recompute function builds one per invocation, so that a rotated secret applies to
/// the next run without a cold start (two Secrets Manager reads, for a run of minutes).
pub async fn recomputer_on(cfg: &RuntimeConfig, aws: &Aws, stores: Stores) -> Result<Recomputer> {
    let gh = github(cfg, aws).await?;
    let demand = prometheus(cfg, aws)
        .await?
        .context("DISPATCHER_PROMETHEUS_URL is required by the recompute function")?;
    Ok(Recomputer {
        stores,
        repo: gh.clone(),
        demand,
        fallback: cfg
            .github
            .pull_requests
            .then_some(gh as Arc<dyn FallbackPublisher>),
        settings: cfg.engine.clone(),
        max_deleted: cfg.max_deleted,
    })
}

pub fn lookup(cfg: &RuntimeConfig, stores: Stores) -> Router {
    lookup_router(Arc::new(LookupState {
        service: Arc::new(
            LookupService::with_refresh(stores, cfg.lookup_refresh)
                .with_ephemeral_limit(cfg.ephemeral),
        ),
        now,
    }))
}

/// The webhook's router, with the secret read once.
pub async fn webhook(
    cfg: &RuntimeConfig,
    aws: &Aws,
    stores: &Stores,
    source: Arc<dyn RepoSource>,
    handoff: Arc<dyn Handoff>,
) -> Result<Router> {
    let secret = cfg.webhook_secret.as_ref().context(
        "DISPATCHER_WEBHOOK_SECRET_ARN (or DISPATCHER_WEBHOOK_SECRET locally) is required",
    )?;
    let secret = aws
        .secret(secret)
        .await
        .context("Failed to read the webhook secret")?;
    // An empty key would make every signature computable by anyone.
    anyhow::ensure!(!secret.is_empty(), "the webhook secret is empty");
    // Used byte for byte, as GitHub signs with it; white space around it is probably a
    // copy-and-paste accident, so it is said, not silently cut (the deliveries would then
    // only verify with the value as stored).
    if secret.trim() != secret {
        tracing::warn!(
            "the webhook secret begins or ends with white space; it is used as stored, byte for byte"
        );
    }
    Ok(webhook_router(Arc::new(WebhookState {
        secret: secret.into_bytes(),
        repo: cfg.github.repo.clone(),
        source,
        table: stores.table.clone(),
        handoff,
        now,
        deadline: dispatcher_api::webhook::DEADLINE,
    })))
}

/// Where the local server reads a release and volumes from when GitHub and Prometheus are
/// not configured.
#[derive(Debug, Clone)]
pub struct LocalInputs {
    pub release: PathBuf,
    pub clusters: Option<PathBuf>,
    pub volumes: Option<PathBuf>,
    pub durations: Option<PathBuf>,
    /// CPU seconds per job.
    pub cpu: Option<PathBuf>,
    /// Memory byte-seconds per job.
    pub memory: Option<PathBuf>,
}

/// The local server: the same routers as the Lambdas over the configured store, a
/// recompute worker in process, and the manual trigger.
pub struct LocalServer {
    pub router: Router,
    pub handoff: LocalHandoff,
    pub recomputer: Arc<Recomputer>,
    pub stores: Stores,
    /// The manual trigger's bearer token.
    pub token: String,
    pub webhook: bool,
}

impl LocalServer {
    pub async fn build(cfg: &RuntimeConfig, inputs: &LocalInputs, token: String) -> Result<Self> {
        let aws = Aws::default();
        let stores = stores(cfg).await?;
        // GitHub when it is configured (an API URL or a token), the files otherwise.
        let gh = if cfg.github.api.is_some() || cfg.github.token.is_some() {
            Some(github(cfg, &aws).await?)
        } else {
            None
        };
        let repo: Arc<dyn RepoSource> = match &gh {
            Some(g) => g.clone(),
            None => Arc::new(LocalRepo {
                path: inputs.release.clone(),
                clusters: inputs.clusters.clone(),
                limits: cfg.release_limits,
            }),
        };
        let demand: Arc<dyn DemandSource> = match prometheus(cfg, &aws).await? {
            Some(p) => p,
            None => Arc::new(FileDemand {
                runs: inputs
                    .volumes
                    .clone()
                    .context("--volumes is required without DISPATCHER_PROMETHEUS_URL")?,
                durations: inputs.durations.clone(),
                cpu: inputs.cpu.clone(),
                memory: inputs.memory.clone(),
            }),
        };
        let recomputer = Arc::new(Recomputer {
            stores: stores.clone(),
            repo: repo.clone(),
            demand,
            fallback: gh
                .filter(|_| cfg.github.pull_requests)
                .map(|g| g as Arc<dyn FallbackPublisher>),
            settings: cfg.engine.clone(),
            max_deleted: cfg.max_deleted,
        });
        let handoff = LocalHandoff::start(recomputer.clone(), now);
        let shared: Arc<dyn Handoff> = Arc::new(handoff.clone());
        let mut router =
            lookup(cfg, stores.clone()).merge(trigger_router(Arc::new(TriggerState {
                token: token.clone(),
                handoff: shared.clone(),
            })));
        let webhook = cfg.webhook_secret.is_some();
        if webhook {
            router = router.merge(self::webhook(cfg, &aws, &stores, repo, shared).await?);
        }
        Ok(Self {
            router,
            handoff,
            recomputer,
            stores,
            token,
            webhook,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use async_trait::async_trait;
    use axum::body::Body;
    use dispatcher_app::{Handoff, RecomputeRequest, SourceError};
    use hmac::{KeyInit, Mac};
    use tower::ServiceExt;

    use super::*;

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
        let stores = stores(&cfg).await.expect("local store");
        let source = Arc::new(LocalRepo {
            path: dir.path().to_owned(),
            clusters: None,
            limits: Default::default(),
        });
        let router = webhook(&cfg, &Aws::default(), &stores, source, Arc::new(Nowhere))
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
}

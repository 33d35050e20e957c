//! The whole configuration, read once: each function takes the sections it needs.

use std::time::Duration;

use dispatcher_app::control;
use dispatcher_app::lookup::{self, EphemeralLimit};
use dispatcher_app::publish::MAX_DELETED;
use dispatcher_core::model::DemandModel;
use dispatcher_core::{Settings, Strategy};
use dispatcher_formats::Limits;

use crate::env::{ConfigError, Env, Secret};
use crate::sections::{GitHubSettings, PrometheusSettings, ServeLimits, SlackSettings};
use crate::store::StoreConfig;

/// The whole configuration; each function uses the parts it needs.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// The generations' store.
    pub store: StoreConfig,
    /// The release repository and the backup PR.
    pub github: GitHubSettings,
    /// The job volumes' source, when it is Prometheus.
    pub prometheus: Option<PrometheusSettings>,
    /// The webhook's HMAC secret.
    pub webhook_secret: Option<Secret>,
    /// Name or ARN of the recompute function (the webhook's hand-off).
    pub recompute_function: Option<String>,
    /// The placement engine's settings.
    pub engine: Settings,
    /// How often a lookup re-reads the generation pointer: the staleness bound.
    pub lookup_refresh: Duration,
    /// How fast one lookup instance makes new ephemeral choices (store writes).
    pub ephemeral: EphemeralLimit,
    /// `dispatcher serve`'s listener.
    pub serve: ServeLimits,
    /// What a release may hold (it is untrusted input).
    pub release_limits: Limits,
    /// The share of the serving generation's jobs a recompute may delete (0..=1).
    pub max_deleted: f64,
    /// `dispatcher serve`'s manual trigger token (`DISPATCHER_TRIGGER_TOKEN`; random
    /// when unset).
    pub trigger_token: Option<String>,
    /// The incident controls' bounds.
    pub controls: control::Limits,
    /// The chat.
    pub slack: SlackSettings,
    /// The Lambda function running this process (`AWS_LAMBDA_FUNCTION_NAME`, set by
    /// Lambda): its metrics' dimension, and the target of its own invokes.
    pub function_name: Option<String>,
}

impl RuntimeConfig {
    /// From the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// From any variable source (tests pass a map).
    pub fn from_lookup(var: impl Fn(&str) -> Option<String> + Copy) -> Result<Self, ConfigError> {
        let env = Env(var);
        let github = github_settings(&env)?;
        let prometheus = prometheus_settings(&env)?;
        let strategy = match env.var("DISPATCHER_STRATEGY").as_deref() {
            None | Some("balanced") => Strategy::Balanced,
            Some("classic") => Strategy::Classic,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    var: "DISPATCHER_STRATEGY",
                    value: other.to_owned(),
                    message: "expected balanced or classic".to_owned(),
                });
            }
        };
        let percent_of = |name: &'static str, default: f64| -> Result<f64, ConfigError> {
            let v: f64 = env.parsed(name, default)?;
            if (0.0..=100.0).contains(&v) {
                Ok(v)
            } else {
                Err(ConfigError::Invalid {
                    var: name,
                    value: v.to_string(),
                    message: "not a percentage".to_owned(),
                })
            }
        };
        let engine = Settings {
            strategy,
            vsphere_cluster: env
                .var("DISPATCHER_VSPHERE_CLUSTER")
                .unwrap_or_else(|| "vsphere02".to_owned()),
            hysteresis_percent: percent_of("DISPATCHER_HYSTERESIS_PERCENT", 10.0)?,
            movement_budget_percent: percent_of("DISPATCHER_MOVEMENT_BUDGET_PERCENT", 10.0)?,
            demand: demand_model(&env)?,
            ..Settings::default()
        };
        Ok(Self {
            store: StoreConfig::read(&env)?,
            github,
            prometheus,
            webhook_secret: env
                .secret("DISPATCHER_WEBHOOK_SECRET_ARN", "DISPATCHER_WEBHOOK_SECRET"),
            recompute_function: env.var("DISPATCHER_RECOMPUTE_FUNCTION"),
            engine,
            lookup_refresh: lookup_refresh(&env)?,
            ephemeral: ephemeral_limit(&env)?,
            serve: serve_limits(&env)?,
            release_limits: release_limits(&env)?,
            max_deleted: percent_of("DISPATCHER_MAX_DELETED_PERCENT", MAX_DELETED * 100.0)? / 100.0,
            trigger_token: env.var("DISPATCHER_TRIGGER_TOKEN"),
            controls: control_limits(&env, lookup_refresh(&env)?)?,
            slack: SlackSettings {
                signing_secret: env.secret(
                    "DISPATCHER_SLACK_SIGNING_SECRET_ARN",
                    "DISPATCHER_SLACK_SIGNING_SECRET",
                ),
                channel: env.var("DISPATCHER_SLACK_CHANNEL"),
                webhook: env.secret(
                    "DISPATCHER_SLACK_WEBHOOK_URL_ARN",
                    "DISPATCHER_SLACK_WEBHOOK_URL",
                ),
                response_prefix: env
                    .var("DISPATCHER_SLACK_RESPONSE_PREFIX")
                    .unwrap_or_else(|| "https://hooks.slack.com/".to_owned()),
                timeout: env.duration("DISPATCHER_SLACK_TIMEOUT", Duration::from_secs(5))?,
            },
            function_name: env.var("AWS_LAMBDA_FUNCTION_NAME"),
        })
    }
}

/// The release repository and the backup PR: `DISPATCHER_GITHUB_*` and `DISPATCHER_PR_*`.
fn github_settings<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<GitHubSettings, ConfigError> {
    let repo = env
        .var("DISPATCHER_GITHUB_REPO")
        .unwrap_or_else(|| "openshift/release".to_owned());
    if !repo.contains('/') {
        return Err(ConfigError::Invalid {
            var: "DISPATCHER_GITHUB_REPO",
            value: repo,
            message: "expected owner/name".to_owned(),
        });
    }
    Ok(GitHubSettings {
        repo,
        api: env.var("DISPATCHER_GITHUB_API"),
        token: env.secret("DISPATCHER_GITHUB_TOKEN_ARN", "DISPATCHER_GITHUB_TOKEN"),
        timeout: env.duration("DISPATCHER_GITHUB_TIMEOUT", Duration::from_secs(20))?,
        pull_requests: env.parsed("DISPATCHER_PR_ENABLED", true)?,
        branch: env
            .var("DISPATCHER_PR_BRANCH")
            .unwrap_or_else(|| "automate-prow-job-dispatcher".to_owned()),
        labels: env.list(
            "DISPATCHER_PR_LABELS",
            &["rehearsals-ack", "priority/ci-critical"],
        ),
    })
}

/// The demand source, when `DISPATCHER_PROMETHEUS_URL` is set: `DISPATCHER_PROMETHEUS_*`.
fn prometheus_settings<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<Option<PrometheusSettings>, ConfigError> {
    Ok(match env.var("DISPATCHER_PROMETHEUS_URL") {
        None => None,
        Some(url) => Some(PrometheusSettings {
            url,
            token: env.secret(
                "DISPATCHER_PROMETHEUS_TOKEN_ARN",
                "DISPATCHER_PROMETHEUS_TOKEN",
            ),
            user: env.var("DISPATCHER_PROMETHEUS_USER"),
            timeout: env.duration("DISPATCHER_PROMETHEUS_TIMEOUT", Duration::from_secs(30))?,
            window: env
                .var("DISPATCHER_PROMETHEUS_WINDOW")
                .unwrap_or_else(|| "7d".to_owned()),
            offset: env.duration("DISPATCHER_PROMETHEUS_OFFSET", Duration::ZERO)?,
            durations_query: env.var("DISPATCHER_PROMETHEUS_DURATIONS_QUERY"),
            cpu_query: env.var("DISPATCHER_PROMETHEUS_CPU_QUERY"),
            memory_query: env.var("DISPATCHER_PROMETHEUS_MEMORY_QUERY"),
            runs_query: env.var("DISPATCHER_PROMETHEUS_RUNS_QUERY"),
        }),
    })
}

/// `DISPATCHER_LOOKUP_REFRESH`: how often the lookup re-reads the pointer, at most 30 s.
/// `DISPATCHER_PROW_CACHE_TTL` (Prow's `scheduler.external.cache.entry_timeout_interval`;
/// without it the write controls refuse), the longest override and drain (at most the
/// issue's 24 h and 2 h), and the moved share that needs a second approver.
fn control_limits<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    lookup_refresh: Duration,
) -> Result<control::Limits, ConfigError> {
    let defaults = control::Limits::default();
    let at_most = |name: &'static str, default: Duration| -> Result<Duration, ConfigError> {
        let d = env.duration(name, default)?;
        if d.is_zero() || d > default {
            return Err(ConfigError::Invalid {
                var: name,
                value: humantime::format_duration(d).to_string(),
                message: format!(
                    "expected more than 0 and at most {}",
                    humantime::format_duration(default)
                ),
            });
        }
        Ok(d)
    };
    let share: f64 = env.parsed(
        "DISPATCHER_SECOND_APPROVAL_PERCENT",
        defaults.second_approval_share * 100.0,
    )?;
    if !(0.0..=100.0).contains(&share) {
        return Err(ConfigError::Invalid {
            var: "DISPATCHER_SECOND_APPROVAL_PERCENT",
            value: share.to_string(),
            message: "not a percentage".to_owned(),
        });
    }
    let prow_cache = match env.var("DISPATCHER_PROW_CACHE_TTL") {
        None => None,
        Some(_) => Some(env.duration("DISPATCHER_PROW_CACHE_TTL", Duration::ZERO)?),
    };
    Ok(control::Limits {
        max_duration: at_most("DISPATCHER_OVERRIDE_MAX_DURATION", defaults.max_duration)?,
        max_drain: at_most("DISPATCHER_DRAIN_MAX_DURATION", defaults.max_drain)?,
        second_approval_share: share / 100.0,
        lookup_refresh,
        prow_cache,
        ..defaults
    })
}

fn lookup_refresh<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Duration, ConfigError> {
    let d = env.duration("DISPATCHER_LOOKUP_REFRESH", lookup::REFRESH)?;
    if d > Duration::from_secs(30) {
        return Err(ConfigError::Invalid {
            var: "DISPATCHER_LOOKUP_REFRESH",
            value: humantime::format_duration(d).to_string(),
            message: "answers may not be more than 30 s stale".to_owned(),
        });
    }
    Ok(d)
}

/// `DISPATCHER_MAX_FILE_BYTES` and `DISPATCHER_MAX_ARCHIVE_BYTES`: positive byte counts.
fn release_limits<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Limits, ConfigError> {
    let defaults = Limits::default();
    let bytes = |var: &'static str, default: u64| -> Result<u64, ConfigError> {
        let v: u64 = env.parsed(var, default)?;
        if v == 0 {
            return Err(ConfigError::Invalid {
                var,
                value: v.to_string(),
                message: "must be a positive number of bytes".to_owned(),
            });
        }
        Ok(v)
    };
    Ok(Limits {
        member_bytes: bytes("DISPATCHER_MAX_FILE_BYTES", defaults.member_bytes)?,
        archive_bytes: bytes("DISPATCHER_MAX_ARCHIVE_BYTES", defaults.archive_bytes)?,
    })
}

/// `DISPATCHER_LOOKUP_EPHEMERAL_RATE` (per second) and `_BURST`, both positive.
fn ephemeral_limit<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<EphemeralLimit, ConfigError> {
    let defaults = EphemeralLimit::default();
    let per_second: f64 = env.parsed("DISPATCHER_LOOKUP_EPHEMERAL_RATE", defaults.per_second)?;
    if !(per_second.is_finite() && per_second > 0.0) {
        return Err(ConfigError::Invalid {
            var: "DISPATCHER_LOOKUP_EPHEMERAL_RATE",
            value: per_second.to_string(),
            message: "must be a finite, positive number of new choices per second".to_owned(),
        });
    }
    let burst: u32 = env.parsed("DISPATCHER_LOOKUP_EPHEMERAL_BURST", defaults.burst)?;
    if burst == 0 {
        return Err(ConfigError::Invalid {
            var: "DISPATCHER_LOOKUP_EPHEMERAL_BURST",
            value: burst.to_string(),
            message: "must be at least 1".to_owned(),
        });
    }
    Ok(EphemeralLimit { per_second, burst })
}

/// `DISPATCHER_SERVE_*`: timeouts longer than zero, at least one connection.
fn serve_limits<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<ServeLimits, ConfigError> {
    let defaults = ServeLimits::default();
    let timeout = |var: &'static str, default: Duration| -> Result<Duration, ConfigError> {
        let d = env.duration(var, default)?;
        if d.is_zero() {
            return Err(ConfigError::Invalid {
                var,
                value: "0s".to_owned(),
                message: "must be longer than zero (a limit cannot be switched off)".to_owned(),
            });
        }
        Ok(d)
    };
    let max_connections: usize =
        env.parsed("DISPATCHER_SERVE_MAX_CONNECTIONS", defaults.max_connections)?;
    if max_connections == 0 {
        return Err(ConfigError::Invalid {
            var: "DISPATCHER_SERVE_MAX_CONNECTIONS",
            value: "0".to_owned(),
            message: "must be at least 1".to_owned(),
        });
    }
    Ok(ServeLimits {
        header_timeout: timeout("DISPATCHER_SERVE_HEADER_TIMEOUT", defaults.header_timeout)?,
        request_timeout: timeout("DISPATCHER_SERVE_REQUEST_TIMEOUT", defaults.request_timeout)?,
        idle_timeout: timeout("DISPATCHER_SERVE_IDLE_TIMEOUT", defaults.idle_timeout)?,
        max_connections,
    })
}

/// The demand model from `DISPATCHER_*_WEIGHT` and `DISPATCHER_MIN_DEMAND`, each checked
/// as HEAD checks its flags: finite and non-negative weights, a finite positive minimum.
fn demand_model<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<DemandModel, ConfigError> {
    let defaults = DemandModel::default();
    let number = |var: &'static str, default: f64, positive: bool| -> Result<f64, ConfigError> {
        let v: f64 = env.parsed(var, default)?;
        let ok = v.is_finite() && if positive { v > 0.0 } else { v >= 0.0 };
        if ok {
            Ok(v)
        } else {
            Err(ConfigError::Invalid {
                var,
                value: v.to_string(),
                message: if positive {
                    "must be a finite, positive number".to_owned()
                } else {
                    "must be a finite, non-negative number".to_owned()
                },
            })
        }
    };
    let model = DemandModel {
        run_weight: number("DISPATCHER_RUN_WEIGHT", defaults.run_weight, false)?,
        hour_weight: number("DISPATCHER_HOUR_WEIGHT", defaults.hour_weight, false)?,
        cpu_hour_weight: number(
            "DISPATCHER_CPU_HOUR_WEIGHT",
            defaults.cpu_hour_weight,
            false,
        )?,
        memory_gib_hour_weight: number(
            "DISPATCHER_MEMORY_GIB_HOUR_WEIGHT",
            defaults.memory_gib_hour_weight,
            false,
        )?,
        minimum: number("DISPATCHER_MIN_DEMAND", defaults.minimum, true)?,
    };
    model.check().map_err(|e| ConfigError::Invalid {
        var: "DISPATCHER_RUN_WEIGHT",
        value: model.run_weight.to_string(),
        message: e.to_string(),
    })?;
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Secret;

    fn from(pairs: &'static [(&'static str, &'static str)]) -> Result<RuntimeConfig, ConfigError> {
        RuntimeConfig::from_lookup(|k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn defaults_are_the_production_ones() {
        let c = from(&[]).unwrap();
        assert_eq!(c.github.repo, "openshift/release");
        assert!(c.prometheus.is_none());
        assert_eq!(
            (
                c.engine.hysteresis_percent,
                c.engine.movement_budget_percent
            ),
            (10.0, 10.0)
        );
        assert_eq!(c.engine.vsphere_cluster, "vsphere02");
        assert!(matches!(c.store, StoreConfig::Local { .. }));
    }

    #[test]
    fn secrets_prefer_arns_and_never_print() {
        let c = from(&[
            ("DISPATCHER_WEBHOOK_SECRET", "plain"),
            ("DISPATCHER_WEBHOOK_SECRET_ARN", "arn:aws:secretsmanager:x"),
        ])
        .unwrap();
        assert_eq!(
            c.webhook_secret,
            Some(Secret::Arn("arn:aws:secretsmanager:x".to_owned()))
        );
        let local = from(&[
            ("DISPATCHER_PROMETHEUS_URL", "http://p"),
            ("DISPATCHER_PROMETHEUS_TOKEN", "hunter2"),
        ])
        .unwrap();
        assert!(!format!("{local:?}").contains("hunter2"));
    }

    #[test]
    fn errors_name_the_variable() {
        let e = from(&[("DISPATCHER_HYSTERESIS_PERCENT", "150")]).unwrap_err();
        assert!(
            e.to_string().contains("DISPATCHER_HYSTERESIS_PERCENT"),
            "{e}"
        );
        let e = from(&[
            ("DISPATCHER_PROMETHEUS_URL", "http://p"),
            ("DISPATCHER_PROMETHEUS_TIMEOUT", "soon"),
        ])
        .unwrap_err();
        assert!(
            e.to_string().contains("DISPATCHER_PROMETHEUS_TIMEOUT"),
            "{e}"
        );
        let e = from(&[("DISPATCHER_GITHUB_REPO", "release")]).unwrap_err();
        assert!(e.to_string().contains("owner/name"), "{e}");
    }

    #[test]
    fn lookup_and_serve_limits_default_and_parse() {
        let c = from(&[]).unwrap();
        assert_eq!(c.ephemeral, EphemeralLimit::default());
        assert_eq!((c.ephemeral.per_second, c.ephemeral.burst), (20.0, 100));
        assert_eq!(c.serve, ServeLimits::default());
        assert_eq!(
            (
                c.serve.header_timeout,
                c.serve.request_timeout,
                c.serve.idle_timeout,
                c.serve.max_connections
            ),
            (
                Duration::from_secs(10),
                Duration::from_secs(10),
                Duration::from_secs(60),
                4096
            )
        );
        let c = from(&[
            ("DISPATCHER_LOOKUP_EPHEMERAL_RATE", "0.5"),
            ("DISPATCHER_LOOKUP_EPHEMERAL_BURST", "3"),
            ("DISPATCHER_SERVE_HEADER_TIMEOUT", "2s"),
            ("DISPATCHER_SERVE_REQUEST_TIMEOUT", "1500ms"),
            ("DISPATCHER_SERVE_IDLE_TIMEOUT", "5m"),
            ("DISPATCHER_SERVE_MAX_CONNECTIONS", "16"),
        ])
        .unwrap();
        assert_eq!((c.ephemeral.per_second, c.ephemeral.burst), (0.5, 3));
        assert_eq!(
            c.serve,
            ServeLimits {
                header_timeout: Duration::from_secs(2),
                request_timeout: Duration::from_millis(1500),
                idle_timeout: Duration::from_secs(300),
                max_connections: 16,
            }
        );
    }

    #[test]
    fn invalid_lookup_and_serve_limits_are_refused_naming_the_variable() {
        for (var, value) in [
            ("DISPATCHER_LOOKUP_EPHEMERAL_RATE", "0"),
            ("DISPATCHER_LOOKUP_EPHEMERAL_RATE", "-3"),
            ("DISPATCHER_LOOKUP_EPHEMERAL_RATE", "NaN"),
            ("DISPATCHER_LOOKUP_EPHEMERAL_RATE", "fast"),
            ("DISPATCHER_LOOKUP_EPHEMERAL_BURST", "0"),
            ("DISPATCHER_LOOKUP_EPHEMERAL_BURST", "-1"),
            ("DISPATCHER_LOOKUP_EPHEMERAL_BURST", "1.5"),
            ("DISPATCHER_SERVE_HEADER_TIMEOUT", "0s"),
            ("DISPATCHER_SERVE_HEADER_TIMEOUT", "soon"),
            ("DISPATCHER_SERVE_REQUEST_TIMEOUT", "0ms"),
            ("DISPATCHER_SERVE_IDLE_TIMEOUT", "10"),
            ("DISPATCHER_SERVE_MAX_CONNECTIONS", "0"),
            ("DISPATCHER_SERVE_MAX_CONNECTIONS", "many"),
        ] {
            let e = RuntimeConfig::from_lookup(|k| (k == var).then(|| value.to_owned()))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(var), "{var}={value}: {e}");
        }
    }

    #[test]
    fn release_limits_and_the_deletion_share_are_read_and_checked() {
        let c = from(&[
            ("DISPATCHER_MAX_FILE_BYTES", "1024"),
            ("DISPATCHER_MAX_DELETED_PERCENT", "25"),
        ])
        .unwrap();
        assert_eq!(c.release_limits.member_bytes, 1024);
        assert_eq!(
            c.release_limits.archive_bytes,
            Limits::default().archive_bytes
        );
        assert_eq!(c.max_deleted, 0.25);
        assert_eq!(from(&[]).unwrap().max_deleted, MAX_DELETED);
        for (var, value) in [
            ("DISPATCHER_MAX_FILE_BYTES", "0"),
            ("DISPATCHER_MAX_ARCHIVE_BYTES", "lots"),
            ("DISPATCHER_MAX_DELETED_PERCENT", "101"),
        ] {
            let e = RuntimeConfig::from_lookup(|k| (k == var).then(|| value.to_owned()))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(var), "{var}={value}: {e}");
        }
    }

    #[test]
    fn demand_weights_that_cannot_weigh_are_refused_naming_the_variable() {
        for (var, value) in [
            ("DISPATCHER_RUN_WEIGHT", "NaN"),
            ("DISPATCHER_HOUR_WEIGHT", "inf"),
            ("DISPATCHER_CPU_HOUR_WEIGHT", "-1"),
            ("DISPATCHER_MEMORY_GIB_HOUR_WEIGHT", "1e999"),
            ("DISPATCHER_MIN_DEMAND", "0"),
        ] {
            let e = RuntimeConfig::from_lookup(|k| (k == var).then(|| value.to_owned()))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(var), "{var}={value}: {e}");
        }
        let c = from(&[
            ("DISPATCHER_CPU_HOUR_WEIGHT", "2"),
            ("DISPATCHER_PROMETHEUS_URL", "http://p"),
            ("DISPATCHER_PROMETHEUS_CPU_QUERY", "sum(cpu) by (job_name)"),
        ])
        .unwrap();
        assert_eq!(c.engine.demand.cpu_hour_weight, 2.0);
        assert_eq!(c.engine.demand.memory_gib_hour_weight, 0.25);
        assert_eq!(
            c.prometheus.unwrap().cpu_query.as_deref(),
            Some("sum(cpu) by (job_name)")
        );
    }
}

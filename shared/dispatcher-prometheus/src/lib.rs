#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

use async_trait::async_trait;
use dispatcher_app::ports::{Demand, DemandSource, SourceError};
use dispatcher_config::PrometheusSettings;
use dispatcher_formats::volumes::Vector;

/// How the query is authenticated.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// No credentials, for a Prometheus that asks for none.
    None,
    /// A bearer token, sent as `Authorization: Bearer`.
    Bearer(String),
    /// HTTP basic authentication.
    Basic {
        /// The user name.
        user: String,
        /// The password (the configured secret).
        password: String,
    },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets.
        f.write_str(match self {
            Auth::None => "None",
            Auth::Bearer(_) => "Bearer(..)",
            Auth::Basic { .. } => "Basic(..)",
        })
    }
}

/// The run-count query: the configured one when set, otherwise the dispatcher's count of
/// `pending` transitions per `job_name` over the window.
pub fn runs_query(settings: &PrometheusSettings) -> String {
    settings.runs_query.clone().unwrap_or_else(|| {
        format!(
            r#"sum(increase(prowjob_state_transitions{{state="pending"}}[{}])) by (job_name)"#,
            settings.window
        )
    })
}

/// The demand source on Prometheus: the run counts and the optional duration, CPU and
/// memory vectors, each an instant query.
pub struct PrometheusDemand {
    client: reqwest::Client,
    settings: PrometheusSettings,
    auth: Auth,
}

impl PrometheusDemand {
    /// The source the configuration describes, with `token` read from its secret: a
    /// bearer token, or the basic-auth password of the configured user.
    pub fn from_settings(
        settings: &PrometheusSettings,
        token: Option<String>,
    ) -> Result<Self, SourceError> {
        let auth = match (token, &settings.user) {
            (None, _) => Auth::None,
            (Some(t), None) => Auth::Bearer(t),
            (Some(password), Some(user)) => Auth::Basic {
                user: user.clone(),
                password,
            },
        };
        Self::new(settings.clone(), auth)
    }

    /// The source `settings` describe, sending `auth` with every query, with its own HTTP
    /// client; fails only if the client cannot be built.
    pub fn new(settings: PrometheusSettings, auth: Auth) -> Result<Self, SourceError> {
        // reqwest is built without a crypto provider of its own (its default would link
        // aws-lc beside the ring the AWS SDK uses); the first client of a process installs
        // ring, a later one finds it installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .build()
            .map_err(|e| SourceError::permanent("prometheus", "client").because(e))?;
        Ok(Self {
            client,
            settings,
            auth,
        })
    }

    /// One instant query at `time`: the parsed vector and the digest of the response.
    pub async fn query(&self, query: &str, time: i64) -> Result<(Vector, String), SourceError> {
        let url = format!("{}/api/v1/query", self.settings.url.trim_end_matches('/'));
        let mut request = self
            .client
            .get(&url)
            .query(&[("query", query), ("time", &time.to_string())]);
        request = match &self.auth {
            Auth::None => request,
            Auth::Bearer(t) => request.bearer_auth(t),
            Auth::Basic { user, password } => request.basic_auth(user, Some(password)),
        };
        let response = request.send().await.map_err(|e| {
            // Down, unreachable or too slow: the next attempt may work.
            SourceError::retryable("prometheus", format!("{url}: {}", describe(&e)))
        })?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| {
            SourceError::retryable(
                "prometheus",
                format!("{url}: reading the answer: {}", describe(&e)),
            )
        })?;
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(SourceError::retryable(
                "prometheus",
                format!(
                    "{url}: HTTP {status}: {}",
                    String::from_utf8_lossy(&body)
                        .chars()
                        .take(300)
                        .collect::<String>()
                ),
            ));
        }
        // A 4xx (bad query, bad credentials) or a malformed answer will not fix itself.
        let vector = dispatcher_formats::parse_vector(&body).map_err(|e| {
            SourceError::permanent("prometheus", format!("{url}: HTTP {status}")).because(e)
        })?;
        Ok((vector, dispatcher_formats::digest::sha256(&body)))
    }
}

/// A transport failure with its kind first, so that the log says why the query failed.
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        format!("timed out: {e}")
    } else if e.is_connect() {
        format!("cannot connect: {e}")
    } else {
        e.to_string()
    }
}

#[async_trait]
impl DemandSource for PrometheusDemand {
    async fn demand(&self, now: i64) -> Result<Demand, SourceError> {
        let at = now - i64::try_from(self.settings.offset.as_secs()).unwrap_or(0);
        let query = runs_query(&self.settings);
        let (runs, runs_digest) = self.query(&query, at).await?;
        tracing::info!(jobs = runs.values.len(), time = at, query = %query, "volumes queried");
        let optional = async |q: &Option<String>| match q {
            Some(q) => self.query(q, at).await.map(Some),
            None => Ok(None),
        };
        let durations = optional(&self.settings.durations_query).await?;
        let cpu = optional(&self.settings.cpu_query).await?;
        let memory = optional(&self.settings.memory_query).await?;
        Ok(Demand::from_vectors(
            (runs, runs_digest),
            durations,
            cpu,
            memory,
        ))
    }
}

#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod convert;
pub mod dynamo;
#[cfg(feature = "test-support")]
pub mod emulator;
pub mod lambda;
pub mod metrics;
#[cfg(feature = "test-support")]
pub mod provision;
pub mod s3;
mod sdk_error;
pub mod sigv4;

use std::sync::Arc;

use aws_config::BehaviorVersion;
use aws_smithy_http_client::tls;
use dispatcher_app::{SourceError, Stores};
use dispatcher_config::{ConfigError, Secret, StoreConfig};

pub use dynamo::DynamoTable;
pub use s3::S3Snapshots;

/// The shared AWS configuration, loaded once at cold start from the standard environment
/// (credentials, region, `AWS_ENDPOINT_URL`).
pub async fn sdk_config() -> aws_config::SdkConfig {
    sdk_loader().load().await
}

/// The loader of [`sdk_config`], to adjust before loading (a test's endpoint and retries).
/// It carries the one HTTPS client every SDK client here uses: rustls with ring, since the
/// SDK's default client (and its aws-lc) is not linked.
pub fn sdk_loader() -> aws_config::ConfigLoader {
    let https = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest()).http_client(https)
}

/// The store's AWS clients, built once at cold start.
#[derive(Debug, Clone)]
pub struct Clients {
    /// The table's client.
    pub dynamo: aws_sdk_dynamodb::Client,
    /// The snapshot bucket's client.
    pub s3: aws_sdk_s3::Client,
}

impl Clients {
    /// Clients from the standard environment, loaded now.
    pub async fn from_env(path_style: bool) -> Self {
        Self::from_config(&sdk_config().await, path_style)
    }

    /// Clients from an already loaded configuration; `path_style` addresses S3 buckets in
    /// the path, as emulators need.
    pub fn from_config(config: &aws_config::SdkConfig, path_style: bool) -> Self {
        let s3 = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(path_style)
            .build();
        Self {
            dynamo: aws_sdk_dynamodb::Client::new(config),
            s3: aws_sdk_s3::Client::from_conf(s3),
        }
    }

    /// The stores over `table` and `bucket`, sharing these clients.
    pub fn stores(&self, table: &str, bucket: &str) -> Stores {
        Stores {
            table: Arc::new(DynamoTable::new(self.dynamo.clone(), table)),
            snapshots: Arc::new(S3Snapshots::new(self.s3.clone(), bucket)),
        }
    }
}

/// The AWS configuration of a process, loaded once, on first need (the local server may
/// never need it), and the clients built from it.
#[derive(Default)]
pub struct Aws(tokio::sync::OnceCell<aws_config::SdkConfig>);

impl Aws {
    /// The shared configuration: credentials, region, endpoint.
    pub async fn config(&self) -> &aws_config::SdkConfig {
        self.0.get_or_init(sdk_config).await
    }

    /// The AWS stores the configuration names; a local store is refused, so that no
    /// function links or opens one.
    pub async fn open(&self, store: &StoreConfig) -> Result<Stores, ConfigError> {
        let (table, bucket, path_style) = store.aws()?;
        Ok(self.stores(table, bucket, path_style).await)
    }

    /// The stores over this table and bucket (path-style S3 addressing for emulators).
    pub async fn stores(&self, table: &str, bucket: &str, path_style: bool) -> Stores {
        Clients::from_config(self.config().await, path_style).stores(table, bucket)
    }

    /// A secret's value: from Secrets Manager for an ARN, as given for a plain value (a
    /// local run).
    pub async fn secret(&self, secret: &Secret) -> Result<String, SourceError> {
        match secret {
            Secret::Value(v) => Ok(v.clone()),
            Secret::Arn(arn) => {
                let client = aws_sdk_secretsmanager::Client::new(self.config().await);
                lambda::secret(&client, arn).await
            }
        }
    }

    /// An optional secret's value.
    pub async fn optional_secret(
        &self,
        secret: Option<&Secret>,
    ) -> Result<Option<String>, SourceError> {
        match secret {
            Some(s) => self.secret(s).await.map(Some),
            None => Ok(None),
        }
    }

    /// The Lambda client (the webhook's hand-off).
    pub async fn lambda(&self) -> aws_sdk_lambda::Client {
        aws_sdk_lambda::Client::new(self.config().await)
    }
}

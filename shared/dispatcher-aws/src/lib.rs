#![doc = include_str!("../README.md")]

mod convert;
pub mod dynamo;
pub mod emulator;
pub mod lambda;
pub mod provision;
pub mod s3;

use std::sync::Arc;

use aws_config::BehaviorVersion;
use dispatcher_app::{StoreConfig, StoreError, Stores};

pub use dynamo::DynamoTable;
pub use s3::S3Snapshots;

/// The shared AWS configuration, loaded once at cold start from the standard environment
/// (credentials, region, `AWS_ENDPOINT_URL`).
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// The store's AWS clients, built once at cold start.
#[derive(Debug, Clone)]
pub struct Clients {
    pub dynamo: aws_sdk_dynamodb::Client,
    pub s3: aws_sdk_s3::Client,
}

impl Clients {
    pub async fn from_env(path_style: bool) -> Self {
        Self::from_config(&sdk_config().await, path_style)
    }

    pub fn from_config(config: &aws_config::SdkConfig, path_style: bool) -> Self {
        let s3 = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(path_style)
            .build();
        Self {
            dynamo: aws_sdk_dynamodb::Client::new(config),
            s3: aws_sdk_s3::Client::from_conf(s3),
        }
    }

    pub fn stores(&self, table: &str, bucket: &str) -> Stores {
        Stores {
            table: Arc::new(DynamoTable::new(self.dynamo.clone(), table)),
            snapshots: Arc::new(S3Snapshots::new(self.s3.clone(), bucket)),
        }
    }
}

/// Opens the store the configuration names.
pub async fn open(config: &StoreConfig) -> Result<Stores, StoreError> {
    match config {
        StoreConfig::Aws {
            table,
            bucket,
            path_style,
        } => Ok(Clients::from_env(*path_style).await.stores(table, bucket)),
        StoreConfig::Local { dir } => {
            tracing::debug!(store.dir = %dir.display(), "using the local store");
            dispatcher_app::local::open(dir)
        }
    }
}

//! The snapshot role on S3 (a versioned bucket).

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use dispatcher_app::store::{SnapshotStore, StoreError};

use crate::sdk_error::{self, Codes};

/// S3's codes for failures that may pass.
const CODES: Codes = Codes {
    retryable: &[
        "SlowDown",
        "InternalError",
        "ServiceUnavailable",
        "RequestTimeout",
    ],
    conflict: &[],
};

/// An S3 failure in the store's terms.
fn classify<E, R>(op: &str, e: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    sdk_error::classify(op, e, &CODES)
}

/// The snapshot role on one S3 bucket: an object per key; the bucket's versioning keeps
/// what an overwrite replaces.
#[derive(Debug, Clone)]
pub struct S3Snapshots {
    client: Client,
    bucket: String,
}

impl S3Snapshots {
    /// The store over `bucket`, which must already exist.
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
    }
}

#[async_trait]
impl SnapshotStore for S3Snapshots {
    async fn put(&self, key: &str, body: Vec<u8>, content_type: &str) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| classify("PutObject", e))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(o) => o,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(classify("GetObject", e)),
        };
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| StoreError::unavailable("GetObject body", e))?;
        Ok(Some(bytes.to_vec()))
    }
}

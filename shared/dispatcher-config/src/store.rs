//! Which store to use.

use std::path::PathBuf;

use crate::env::{ConfigError, Env};

/// The store backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// DynamoDB table and S3 bucket (`DISPATCHER_TABLE`, `DISPATCHER_BUCKET`). The endpoint
    /// and credentials come from the standard AWS variables (`AWS_ENDPOINT_URL`, ...).
    Aws {
        /// The DynamoDB table.
        table: String,
        /// The S3 bucket.
        bucket: String,
        /// Path-style S3 addressing, needed by emulators: on when `AWS_ENDPOINT_URL` is set.
        path_style: bool,
    },
    /// The embedded store in a directory (`DISPATCHER_LOCAL_DIR`, default `.dispatcher`
    /// under the working directory).
    Local {
        /// Holds the SQLite file and the objects.
        dir: PathBuf,
    },
}

impl StoreConfig {
    /// The AWS store's table, bucket and addressing: the functions run on nothing else.
    pub fn aws(&self) -> Result<(&str, &str, bool), ConfigError> {
        match self {
            StoreConfig::Aws {
                table,
                bucket,
                path_style,
            } => Ok((table, bucket, *path_style)),
            StoreConfig::Local { .. } => Err(ConfigError::Missing {
                var: "DISPATCHER_TABLE",
            }),
        }
    }

    /// From the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::read(&crate::env::process())
    }

    /// From any variable source (tests pass a map).
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::read(&Env(var))
    }

    /// From variables as `env` reads them.
    pub fn read<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let var = |k: &'static str| env.var(k);
        let table = var("DISPATCHER_TABLE");
        let bucket = var("DISPATCHER_BUCKET");
        let backend = var("DISPATCHER_STORE");
        let aws = match backend.as_deref() {
            Some("aws") => true,
            Some("local") => false,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    var: "DISPATCHER_STORE",
                    value: other.to_owned(),
                    message: "expected aws or local".to_owned(),
                });
            }
            None => table.is_some() || bucket.is_some(),
        };
        if !aws {
            let dir = var("DISPATCHER_LOCAL_DIR")
                .map_or_else(|| PathBuf::from(".dispatcher"), PathBuf::from);
            return Ok(StoreConfig::Local { dir });
        }
        match (table, bucket) {
            (Some(table), Some(bucket)) => Ok(StoreConfig::Aws {
                table,
                bucket,
                path_style: var("AWS_ENDPOINT_URL").is_some()
                    || var("AWS_ENDPOINT_URL_S3").is_some(),
            }),
            (None, _) => Err(ConfigError::Incomplete {
                present: "DISPATCHER_BUCKET",
                missing: "DISPATCHER_TABLE",
            }),
            (_, None) => Err(ConfigError::Incomplete {
                present: "DISPATCHER_TABLE",
                missing: "DISPATCHER_BUCKET",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(pairs: &[(&str, &str)]) -> Result<StoreConfig, ConfigError> {
        StoreConfig::from_lookup(|k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn defaults_to_the_local_store_in_the_working_directory() {
        assert_eq!(
            from(&[]),
            Ok(StoreConfig::Local {
                dir: ".dispatcher".into()
            })
        );
        assert_eq!(
            from(&[("DISPATCHER_LOCAL_DIR", "/tmp/x")]),
            Ok(StoreConfig::Local {
                dir: "/tmp/x".into()
            })
        );
    }

    #[test]
    fn aws_needs_table_and_bucket_and_says_which_is_missing() {
        assert_eq!(
            from(&[
                ("DISPATCHER_TABLE", "t"),
                ("DISPATCHER_BUCKET", "b"),
                ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")
            ]),
            Ok(StoreConfig::Aws {
                table: "t".into(),
                bucket: "b".into(),
                path_style: true
            })
        );
        let e = from(&[("DISPATCHER_TABLE", "t")]).unwrap_err();
        assert!(e.to_string().contains("DISPATCHER_BUCKET"), "{e}");
        assert!(from(&[("DISPATCHER_STORE", "s3")]).is_err());
    }
}

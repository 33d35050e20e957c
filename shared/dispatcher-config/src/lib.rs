//! The typed configuration of the functions, the local server and the CLI, read once from
//! the environment: the only code that reads it. Every error names its variable.
#![warn(missing_docs)]

mod env;
mod runtime;
mod sections;
mod store;

pub use env::{ConfigError, Env, Secret, process};
pub use runtime::RuntimeConfig;
pub use sections::{GitHubSettings, PrometheusSettings, ServeLimits};
pub use store::StoreConfig;

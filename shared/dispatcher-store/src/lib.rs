#![doc = include_str!("../README.md")]

pub mod codec;
pub mod config;
pub mod keys;
pub mod local;
pub mod model;
pub mod ports;
pub mod publish;
pub mod report;

#[cfg(feature = "contract")]
pub mod contract;

pub use config::StoreConfig;
pub use model::{Cause, JobItem, Pointer};
pub use ports::{AssignmentStore, SnapshotStore, StoreError, Stores, WriteStats};
pub use publish::{PublishError, PublishOptions, Published, publish, rollback};

#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod codec;
pub mod control;
pub mod keys;
pub mod local;
pub mod lookup;
pub mod model;
pub mod pages;
pub mod ports;
pub mod publish;
pub mod pull_request;
pub mod push;
pub mod recompute;
pub mod records;
pub mod store;
pub mod webhook;
pub mod writeback;

#[cfg(feature = "contract")]
pub mod contract;

pub use lookup::{Answer, LookupError, LookupService};
pub use model::{Cause, JobItem, Pointer};
pub use ports::{DemandSource, FallbackPublisher, Handoff, RepoSource, SourceError};
pub use publish::{PublishError, PublishOptions, Published, publish, rollback};
pub use recompute::{RecomputeError, RecomputeRequest, Recomputer, Trigger};
pub use store::{AssignmentStore, SnapshotStore, StoreError, Stores, WriteStats};

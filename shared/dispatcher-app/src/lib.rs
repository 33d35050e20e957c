#![doc = include_str!("../README.md")]

pub mod local;
pub mod lookup;
pub mod ports;
pub mod push;
pub mod recompute;

pub use lookup::{Answer, LookupError, LookupService};
pub use ports::{DemandSource, FallbackPublisher, Handoff, RepoSource, SourceError};
pub use recompute::{RecomputeError, RecomputeRequest, Recomputer, Trigger};

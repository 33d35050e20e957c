#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod config;
pub mod digest;
mod inputs;
pub mod inventory;
pub mod jobs;
pub mod release;
pub mod volumes;
pub mod writeback;
mod yaml;

pub use config::parse_config;
pub use inputs::{InputPaths, LoadError, Loaded, assemble, inventory_digest, load};
pub use inventory::parse_inventory;
pub use jobs::parse_job_file;
pub use release::{
    CLUSTERS_PATH, CONFIG_PATH, Limits, Parse, ReadOptions, Release, Source, read_release,
};
pub use volumes::parse_vector;

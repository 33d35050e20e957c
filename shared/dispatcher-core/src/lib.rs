#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod diag;
pub mod engine;
pub mod model;
pub mod optimum;
pub mod overrides;
pub mod plan;
pub mod re2;
pub mod report;
pub mod rules;

mod balance;
mod checks;
mod classic;
mod fnv;

pub use diag::{Diagnostic, FatalInputs, Severity, chain};
pub use engine::{Inputs, Settings, Sources, StoredInputs, run, validate};
pub use plan::{Mode, Plan, Strategy};

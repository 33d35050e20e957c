//! Everything a run needs without AWS, GitHub or Prometheus: the embedded store (SQLite
//! and files, no server process), a release on disk, volumes from files, and an in-process
//! worker for hand-offs.

mod files;
pub mod sqlite;

pub use files::{Completed, FileDemand, LocalHandoff, LocalRepo};
pub use sqlite::open;

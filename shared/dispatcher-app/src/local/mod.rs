//! Everything a run needs without AWS, GitHub or Prometheus: the embedded store (SQLite
//! and files, no server process), a release on disk, volumes from files, and in-process
//! workers for hand-offs and chat commands.

mod chat;
mod files;
pub mod sqlite;

pub use chat::LocalChatQueue;
pub use files::{Completed, FileDemand, LocalHandoff, LocalRepo};
pub use sqlite::open;

#![warn(missing_docs)]
//! Shared helpers for the corpus tests and the benchmark programs.

use std::io::Write as _;
use std::path::PathBuf;

/// The team corpus (`../shared/corpus` beside the repository, or `$DISPATCHER_CORPUS`).
/// `None` when it is absent: callers say so clearly and skip.
pub fn corpus_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("DISPATCHER_CORPUS") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"),
    };
    dir.join("release-7659af06.tar.gz").is_file().then_some(dir)
}

/// The corpus, or a loud note that a corpus-driven test is skipped.
pub fn corpus_or_skip(test: &str) -> Option<PathBuf> {
    let dir = corpus_dir();
    if dir.is_none() {
        // Straight to the process's stderr: the test harness captures `eprintln!`.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: the corpus is absent (expected ../shared/corpus beside the repository, or set DISPATCHER_CORPUS)"
        );
    }
    dir
}

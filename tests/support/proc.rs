//! Included (`#[path]`) by the tests that signal a server process. Signals take effect
//! asynchronously: a request sent right after `kill -STOP` may still be answered, and a
//! process sent `kill -9` may still serve one more batch, so the tests wait for /proc.

use std::time::Duration;

/// The states of `pid`'s threads (`R`, `S`, `T`, `Z`, ...); empty once it is gone.
pub fn thread_states(pid: u32) -> Vec<char> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("stat")).ok())
        // The state follows the command name, which may itself hold parentheses.
        .filter_map(|stat| stat.rsplit_once(')')?.1.trim_start().chars().next())
        .collect()
}

/// Polls `pid`'s thread states until `done` holds of them (every 10 ms, for up to 5 s);
/// whether it did.
pub fn wait_until(pid: u32, done: impl Fn(&[char]) -> bool) -> bool {
    (0..500).any(|_| {
        let holds = done(&thread_states(pid));
        if !holds {
            std::thread::sleep(Duration::from_millis(10));
        }
        holds
    })
}

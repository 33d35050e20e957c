//! The overrides, kept as one document in the table and changed only by a compare-and-
//! swap, so that two control actions never lose each other's change: few overrides exist
//! at a time, and one document lets a change see all of them at once.

use serde::{Deserialize, Serialize};

use super::types::Override;
use crate::store::{AssignmentStore, StoreError};

/// The marker that holds the book.
pub const BOOK: &str = "overrides";
/// Ended overrides kept for `list` and the history, newest first beyond this are dropped.
pub const KEPT_ENDED: usize = 200;
/// Compare-and-swap attempts before a change gives up as contended.
const ATTEMPTS: usize = 16;

/// Every override the controls know, in the order they were made.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Book {
    /// The overrides.
    pub overrides: Vec<Override>,
}

impl Book {
    /// The override `id`.
    pub fn get(&self, id: &str) -> Option<&Override> {
        self.overrides.iter().find(|o| o.id == id)
    }

    /// The override `id`, to change.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut Override> {
        self.overrides.iter_mut().find(|o| o.id == id)
    }

    /// Adds or replaces the override with `o`'s id.
    pub fn put(&mut self, o: Override) {
        match self.get_mut(&o.id) {
            Some(slot) => *slot = o,
            None => self.overrides.push(o),
        }
        self.trim();
    }

    /// Drops the oldest ended overrides beyond [`KEPT_ENDED`].
    fn trim(&mut self) {
        let ended = self.overrides.iter().filter(|o| o.state.is_final()).count();
        let mut drop = ended.saturating_sub(KEPT_ENDED);
        self.overrides.retain(|o| {
            let gone = drop > 0 && o.state.is_final();
            drop -= usize::from(gone);
            !gone
        });
    }
}

/// Why the book could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum BookError {
    /// The table failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored book does not decode.
    #[error("the override book does not decode")]
    Corrupt(#[source] serde_json::Error),
    /// Other writers changed it every time we tried.
    #[error("the override book changed under us {ATTEMPTS} times in a row")]
    Contended,
}

/// Reads the book.
pub async fn read(table: &dyn AssignmentStore) -> Result<Book, BookError> {
    Ok(read_raw(table).await?.0)
}

async fn read_raw(table: &dyn AssignmentStore) -> Result<(Book, Option<String>), BookError> {
    let raw = table.marker(BOOK).await?;
    let book = match raw.as_deref() {
        None | Some("") => Book::default(),
        Some(text) => serde_json::from_str(text).map_err(BookError::Corrupt)?,
    };
    Ok((book, raw))
}

/// Applies `change` to the book as stored, retrying on a concurrent change: `change` may
/// run several times, each on the book as it is then, and its last answer is returned.
/// When it answers `Err`, nothing is written.
pub async fn update<T, E>(
    table: &dyn AssignmentStore,
    mut change: impl FnMut(&mut Book) -> Result<T, E>,
) -> Result<Result<T, E>, BookError> {
    for _ in 0..ATTEMPTS {
        let (mut book, raw) = read_raw(table).await?;
        let answer = match change(&mut book) {
            Ok(a) => a,
            Err(e) => return Ok(Err(e)),
        };
        let text = serde_json::to_string(&book).map_err(BookError::Corrupt)?;
        if table.swap_marker(BOOK, raw.as_deref(), &text).await? {
            return Ok(Ok(answer));
        }
    }
    Err(BookError::Contended)
}

//! The embedded local store: items in a SQLite file, snapshot objects as files. No server
//! process; several processes (a local server and the CLI) may share it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::keys;
use crate::model::{GenerationRecord, JobItem, Pending, Pointer};
use crate::store::{AssignmentStore, Claim, SnapshotStore, StoreError, Stores, WriteStats};

const BATCH: usize = 25;

fn sql(e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DatabaseBusy => {
            StoreError::unavailable("sqlite", e)
        }
        other => StoreError::refused("sqlite", other),
    }
}

fn decode<T: serde::de::DeserializeOwned>(key: &str, doc: &str) -> Result<T, StoreError> {
    serde_json::from_str(doc).map_err(|e| StoreError::corrupt(key, e))
}

fn encode<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::refused("encoding a document", e))
}

/// The table role on SQLite.
#[derive(Clone)]
pub struct SqliteTable {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteTable {
    /// Opens (or creates) the table in the SQLite file at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(sql)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(sql)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=NORMAL;
             CREATE TABLE IF NOT EXISTS items (
                 pk TEXT PRIMARY KEY,
                 doc TEXT NOT NULL,
                 expires_at INTEGER
             );",
        )
        .map_err(sql)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` on the connection off the async runtime.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .map_err(|_| StoreError::refused("sqlite", "the connection is poisoned"))?;
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::refused("sqlite task", e))?
    }
}

fn get_doc(conn: &Connection, key: &str) -> Result<Option<(String, Option<i64>)>, StoreError> {
    conn.query_row(
        "SELECT doc, expires_at FROM items WHERE pk = ?1",
        params![key],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
    .map_err(sql)
}

fn put_doc(
    conn: &Connection,
    key: &str,
    doc: &str,
    expires_at: Option<i64>,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO items (pk, doc, expires_at) VALUES (?1, ?2, ?3)
         ON CONFLICT(pk) DO UPDATE SET doc = excluded.doc, expires_at = excluded.expires_at",
        params![key, doc, expires_at],
    )
    .map_err(sql)?;
    Ok(())
}

fn pointer_in(conn: &Connection) -> Result<Option<Pointer>, StoreError> {
    get_doc(conn, keys::POINTER)?
        .map(|(d, _)| decode(keys::POINTER, &d))
        .transpose()
}

#[async_trait]
impl AssignmentStore for SqliteTable {
    async fn pointer(&self) -> Result<Option<Pointer>, StoreError> {
        self.with(|c| pointer_in(c)).await
    }

    async fn job(&self, name: &str) -> Result<Option<JobItem>, StoreError> {
        let key = keys::job(name);
        self.with(move |c| get_doc(c, &key)?.map(|(d, _)| decode(&key, &d)).transpose())
            .await
    }

    async fn jobs(&self, names: &[String]) -> Result<Vec<JobItem>, StoreError> {
        let pks: Vec<String> = names.iter().map(|n| keys::job(n)).collect();
        self.with(move |c| {
            let mut stmt = c
                .prepare_cached("SELECT doc FROM items WHERE pk = ?1")
                .map_err(sql)?;
            let mut out = Vec::new();
            for key in &pks {
                let doc: Option<String> = stmt
                    .query_row(params![key], |r| r.get(0))
                    .optional()
                    .map_err(sql)?;
                if let Some(d) = doc {
                    out.push(decode(key, &d)?);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn write_jobs(&self, items: &[JobItem]) -> Result<WriteStats, StoreError> {
        let docs: Vec<(String, String)> = items
            .iter()
            .map(|i| Ok((keys::job(&i.job), encode(i)?)))
            .collect::<Result<_, StoreError>>()?;
        self.with(move |c| {
            let mut stats = WriteStats::default();
            for chunk in docs.chunks(BATCH) {
                let tx = c.transaction().map_err(sql)?;
                for (k, d) in chunk {
                    put_doc(&tx, k, d, None)?;
                }
                tx.commit().map_err(sql)?;
                stats.requests += 1;
                stats.items += chunk.len();
            }
            Ok(stats)
        })
        .await
    }

    async fn claim(&self, base: u64, pending: &Pending, now: i64) -> Result<Claim, StoreError> {
        let pending = pending.clone();
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql)?;
            let current = pointer_in(&tx)?;
            let Some(stored) = pending.claiming(current.as_ref(), base, now) else {
                return Ok(Claim::Lost(current.map(Box::new)));
            };
            let mut next = current.unwrap_or(Pointer {
                generation: 0,
                snapshot: String::new(),
                plan_digest: String::new(),
                published_at: 0,
                cause: crate::model::Cause::Manual,
                inputs: Default::default(),
                applied: Default::default(),
                pending: None,
            });
            next.pending = Some(stored.clone());
            put_doc(&tx, keys::POINTER, &encode(&next)?, None)?;
            tx.commit().map_err(sql)?;
            Ok(Claim::Won { stored })
        })
        .await
    }

    async fn commit(
        &self,
        base: u64,
        owner: &str,
        pointer: &Pointer,
        record: &GenerationRecord,
    ) -> Result<(), StoreError> {
        let (pointer, owner) = (pointer.clone(), owner.to_owned());
        let (record_key, record_doc) = (keys::generation(record.generation), encode(record)?);
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql)?;
            let current = pointer_in(&tx)?;
            let ours = current.as_ref().is_some_and(|p| {
                p.generation == base
                    && p.pending
                        .as_ref()
                        .is_some_and(|h| h.owner == owner && h.generation == pointer.generation)
            });
            if !ours {
                return Err(StoreError::Conflict(format!(
                    "the claim on generation {} is no longer ours",
                    pointer.generation
                )));
            }
            put_doc(&tx, keys::POINTER, &encode(&pointer)?, None)?;
            put_doc(&tx, &record_key, &record_doc, None)?;
            tx.commit().map_err(sql)?;
            Ok(())
        })
        .await
    }

    async fn generation(&self, n: u64) -> Result<Option<GenerationRecord>, StoreError> {
        let key = keys::generation(n);
        self.with(move |c| get_doc(c, &key)?.map(|(d, _)| decode(&key, &d)).transpose())
            .await
    }

    async fn remember(
        &self,
        key: &str,
        value: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let (key, value) = (keys::remembered(key), value.to_owned());
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql)?;
            if let Some((_, exp)) = get_doc(&tx, &key)?
                && exp.is_none_or(|e| e > now)
            {
                return Ok(false);
            }
            put_doc(&tx, &key, &encode(&value)?, Some(expires_at))?;
            tx.commit().map_err(sql)?;
            Ok(true)
        })
        .await
    }

    async fn recall(&self, key: &str, now: i64) -> Result<Option<String>, StoreError> {
        let key = keys::remembered(key);
        self.with(move |c| match get_doc(c, &key)? {
            Some((d, exp)) if exp.is_none_or(|e| e > now) => Ok(Some(decode(&key, &d)?)),
            _ => Ok(None),
        })
        .await
    }

    async fn forget(&self, key: &str) -> Result<(), StoreError> {
        let key = keys::remembered(key);
        self.with(move |c| {
            c.execute("DELETE FROM items WHERE pk = ?1", params![key])
                .map_err(sql)?;
            Ok(())
        })
        .await
    }

    async fn increment(&self, name: &str) -> Result<u64, StoreError> {
        let key = keys::counter(name);
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql)?;
            let current: u64 = match get_doc(&tx, &key)? {
                Some((d, _)) => decode(&key, &d)?,
                None => 0,
            };
            put_doc(&tx, &key, &encode(&(current + 1))?, None)?;
            tx.commit().map_err(sql)?;
            Ok(current + 1)
        })
        .await
    }

    async fn marker(&self, name: &str) -> Result<Option<String>, StoreError> {
        let key = keys::marker(name);
        self.with(move |c| get_doc(c, &key)?.map(|(d, _)| decode(&key, &d)).transpose())
            .await
    }

    async fn set_marker(&self, name: &str, value: &str) -> Result<(), StoreError> {
        let (key, value) = (keys::marker(name), value.to_owned());
        self.with(move |c| put_doc(c, &key, &encode(&value)?, None))
            .await
    }

    async fn swap_marker(
        &self,
        name: &str,
        expected: Option<&str>,
        value: &str,
    ) -> Result<bool, StoreError> {
        let key = keys::marker(name);
        let (expected, value) = (expected.map(str::to_owned), value.to_owned());
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql)?;
            let held: Option<String> = get_doc(&tx, &key)?
                .map(|(d, _)| decode(&key, &d))
                .transpose()?;
            if held != expected {
                return Ok(false);
            }
            put_doc(&tx, &key, &encode(&value)?, None)?;
            tx.commit().map_err(sql)?;
            Ok(true)
        })
        .await
    }
}

/// The snapshot role on a directory: one file per key, written atomically.
#[derive(Debug, Clone)]
pub struct DirSnapshots {
    root: PathBuf,
}

impl DirSnapshots {
    /// Snapshots as files under `root`.
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        if key
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
        {
            return Err(StoreError::refused(
                "local snapshot store",
                format!("invalid object key {key:?}"),
            ));
        }
        Ok(self.root.join(key))
    }
}

fn io(e: std::io::Error) -> StoreError {
    StoreError::refused("local snapshot store", e)
}

#[async_trait]
impl SnapshotStore for DirSnapshots {
    async fn put(&self, key: &str, body: Vec<u8>, _content_type: &str) -> Result<(), StoreError> {
        let path = self.path(key)?;
        tokio::task::spawn_blocking(move || {
            let dir = path.parent().ok_or_else(|| {
                StoreError::refused("local snapshot store", "no parent directory")
            })?;
            std::fs::create_dir_all(dir).map_err(io)?;
            // Unique per writer, so that racing publishers never share a temporary file.
            let tmp = dir.join(format!(
                ".{}.{}-{}.tmp",
                path.file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("object"),
                std::process::id(),
                next_suffix()
            ));
            std::fs::write(&tmp, body).map_err(io)?;
            std::fs::rename(&tmp, &path).map_err(io)
        })
        .await
        .map_err(|e| StoreError::refused("snapshot task", e))?
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path(key)?;
        tokio::task::spawn_blocking(move || match std::fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(e)),
        })
        .await
        .map_err(|e| StoreError::refused("snapshot task", e))?
    }
}

/// A per-call suffix for temporary files: a counter shared by the process.
fn next_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Opens (creating) the local store in `dir`: `dir/store.db` and `dir/objects/`.
pub fn open(dir: &Path) -> Result<Stores, StoreError> {
    std::fs::create_dir_all(dir).map_err(io)?;
    Ok(Stores {
        table: Arc::new(SqliteTable::open(&dir.join("store.db"))?),
        snapshots: Arc::new(DirSnapshots::new(dir.join("objects"))),
    })
}

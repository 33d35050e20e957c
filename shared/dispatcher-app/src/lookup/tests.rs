//! The lookup service against a store in memory that counts its reads and writes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::model::{GenerationRecord, JobItem, Overridden, Pending, Pointer};
use crate::store::{Claim, WriteStats};
use crate::{AssignmentStore, SnapshotStore};
use async_trait::async_trait;

use super::*;

/// A table and snapshot store in memory that counts what is asked of it: one
/// generation whose usable clusters are `build01` and `build02`.
#[derive(Default)]
struct Counted {
    published: bool,
    reads: AtomicUsize,
    writes: AtomicUsize,
    counter: AtomicU64,
    remembered: Mutex<HashMap<String, String>>,
}

impl Counted {
    fn published() -> Arc<Self> {
        Arc::new(Self {
            published: true,
            ..Self::default()
        })
    }

    fn stores(self: &Arc<Self>) -> Stores {
        Stores {
            table: self.clone(),
            snapshots: self.clone(),
        }
    }

    fn touched(&self) -> (usize, usize) {
        (
            self.reads.load(Ordering::SeqCst),
            self.writes.load(Ordering::SeqCst),
        )
    }

    fn read(&self) {
        self.reads.fetch_add(1, Ordering::SeqCst);
    }

    fn write(&self) {
        self.writes.fetch_add(1, Ordering::SeqCst);
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.remembered.lock().expect("not poisoned")
    }
}

fn unused() -> StoreError {
    StoreError::refused("this call", "not used by lookups")
}

#[async_trait]
impl AssignmentStore for Counted {
    async fn pointer(&self) -> Result<Option<Pointer>, StoreError> {
        self.read();
        Ok(self.published.then(|| {
            serde_json::from_value(serde_json::json!({"generation": 1, "snapshot": "s"}))
                .expect("a pointer")
        }))
    }
    async fn job(&self, _: &str) -> Result<Option<JobItem>, StoreError> {
        Err(unused())
    }
    async fn jobs(&self, _: &[String]) -> Result<Vec<JobItem>, StoreError> {
        Err(unused())
    }
    async fn write_jobs(&self, _: &[JobItem]) -> Result<WriteStats, StoreError> {
        Err(unused())
    }
    async fn claim(&self, _: u64, _: &Pending, _: i64) -> Result<Claim, StoreError> {
        Err(unused())
    }
    async fn commit(
        &self,
        _: u64,
        _: &str,
        _: &Pointer,
        _: &GenerationRecord,
    ) -> Result<(), StoreError> {
        Err(unused())
    }
    async fn generation(&self, _: u64) -> Result<Option<GenerationRecord>, StoreError> {
        Err(unused())
    }
    async fn remember(&self, key: &str, value: &str, _: i64, _: i64) -> Result<bool, StoreError> {
        self.write();
        let mut map = self.map();
        if map.contains_key(key) {
            return Ok(false);
        }
        map.insert(key.to_owned(), value.to_owned());
        Ok(true)
    }
    async fn recall(&self, key: &str, _: i64) -> Result<Option<String>, StoreError> {
        self.read();
        Ok(self.map().get(key).cloned())
    }
    async fn forget(&self, key: &str) -> Result<(), StoreError> {
        self.write();
        self.map().remove(key);
        Ok(())
    }
    async fn increment(&self, _: &str) -> Result<u64, StoreError> {
        self.write();
        Ok(self.counter.fetch_add(1, Ordering::SeqCst) + 1)
    }
    async fn marker(&self, _: &str) -> Result<Option<String>, StoreError> {
        Err(unused())
    }
    async fn set_marker(&self, _: &str, _: &str) -> Result<(), StoreError> {
        Err(unused())
    }

    async fn swap_marker(&self, _: &str, _: Option<&str>, _: &str) -> Result<bool, StoreError> {
        Err(unused())
    }
}

#[async_trait]
impl SnapshotStore for Counted {
    async fn put(&self, _: &str, _: Vec<u8>, _: &str) -> Result<(), StoreError> {
        Err(unused())
    }
    async fn get(&self, _: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.read();
        Ok(Some(
            crate::codec::gzip_json(&Assignments {
                plan_digest: "d".to_owned(),
                jobs: BTreeMap::from([
                    ("pull-ci-a".to_owned(), "build01".to_owned()),
                    ("pull-ci-drained".to_owned(), "build02".to_owned()),
                ]),
                usable: vec!["build01".to_owned(), "build02".to_owned()],
                // An override moved this job off build01 until 5,000.
                overridden: BTreeMap::from([(
                    "pull-ci-drained".to_owned(),
                    Overridden {
                        baseline: Some("build01".to_owned()),
                        until: 5_000,
                    },
                )]),
            })
            .unwrap(),
        ))
    }
}

#[test]
fn the_bucket_allows_its_burst_then_its_rate_on_the_callers_clock() {
    let mut bucket = TokenBucket::new(EphemeralLimit {
        per_second: 20.0,
        burst: 100,
    });
    assert_eq!((0..100).filter(|_| bucket.take(1_000)).count(), 100);
    assert!(!bucket.take(1_000), "the 101st within the second");
    // One second later: 20 more, not 100.
    assert_eq!((0..100).filter(|_| bucket.take(1_001)).count(), 20);
    // A clock that steps back refills nothing.
    assert!(!bucket.take(990));
    assert!(!bucket.take(1_001));
    // A long quiet spell refills up to the burst, no further.
    assert_eq!((0..500).filter(|_| bucket.take(100_000)).count(), 100);

    let mut slow = TokenBucket::new(EphemeralLimit {
        per_second: 0.5,
        burst: 1,
    });
    assert!(slow.take(0));
    assert!(!slow.take(1), "half a token after one second");
    assert!(slow.take(2));
}

#[tokio::test]
async fn an_overlong_name_is_refused_before_the_store_is_read() {
    let store = Counted::published();
    let service = LookupService::new(store.stores());
    for name in [
        "a".repeat(MAX_JOB_NAME + 1),
        format!("{EPHEMERAL_PREFIX}{}", "x".repeat(2048)),
    ] {
        let refused = service.answer(&name, 1_000).await;
        assert!(
            matches!(refused, Err(LookupError::NameTooLong { length }) if length == name.len()),
            "{refused:?}"
        );
        let explained = service.explain(&name).await;
        assert!(
            matches!(explained, Err(LookupError::NameTooLong { .. })),
            "{explained:?}"
        );
    }
    assert_eq!(store.touched(), (0, 0), "neither read nor written");
    // The bound itself is a name like any other.
    let longest = "a".repeat(MAX_JOB_NAME);
    assert_eq!(
        service.answer(&longest, 1_000).await.expect("answered"),
        Answer::NotFound
    );
    let known = service.answer("pull-ci-a", 1_000).await.expect("answered");
    assert!(matches!(known, Answer::Cluster { ref cluster, .. } if cluster == "build01"));
}

#[tokio::test]
async fn new_ephemeral_choices_beyond_the_bucket_are_refused_without_writing() {
    let store = Counted::published();
    let service = LookupService::new(store.stores()).with_ephemeral_limit(EphemeralLimit {
        per_second: 20.0,
        burst: 100,
    });
    let now = 1_000;
    for i in 0..100 {
        let a = service
            .answer(&format!("ephemeralcluster-{i}"), now)
            .await
            .expect("within the burst");
        assert!(matches!(
            a,
            Answer::Cluster {
                source: Source::Ephemeral,
                ..
            }
        ));
    }
    let (_, writes) = store.touched();
    let refused = service.answer("ephemeralcluster-100", now).await;
    assert!(
        matches!(refused, Err(LookupError::TooManyEphemeral)),
        "{refused:?}"
    );
    assert_eq!(store.touched().1, writes, "nothing written for the refusal");
    assert!(!store.map().contains_key("ephemeral#ephemeralcluster-100"));
    // A remembered name is answered still, the same cluster, without a write.
    let first = store.map()["ephemeral#ephemeralcluster-0"].clone();
    let again = service
        .answer("ephemeralcluster-0", now)
        .await
        .expect("remembered");
    assert!(matches!(again, Answer::Cluster { ref cluster, .. } if *cluster == first));
    assert_eq!(store.touched().1, writes);
    // A second later the bucket has refilled by the rate.
    assert!(
        service
            .answer("ephemeralcluster-100", now + 1)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn an_overridden_job_answers_its_baseline_once_the_override_ended_with_no_new_generation() {
    let store = Counted::published();
    let service = LookupService::new(store.stores());
    let at = |cluster: &str, source| Answer::Cluster {
        cluster: cluster.to_owned(),
        generation: 1,
        source,
    };
    let answer = |now| service.answer("pull-ci-drained", now);
    assert_eq!(
        answer(4_999).await.unwrap(),
        at("build02", Source::Override)
    );
    assert_eq!(
        answer(5_000).await.unwrap(),
        at("build01", Source::Generation)
    );
    let before = store.touched();
    assert_eq!(
        answer(9_000).await.unwrap(),
        at("build01", Source::Generation)
    );
    assert_eq!(
        store.touched(),
        before,
        "the end needs no read of the store"
    );
    assert_eq!(
        service.answer("pull-ci-a", 4_999).await.unwrap(),
        at("build01", Source::Generation)
    );
}

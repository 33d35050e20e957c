//! The contract every store adapter passes: the same checks run against the local store
//! and against DynamoDB + S3 in the emulator. Each check takes a fresh, empty store.
//!
//! ```ignore
//! dispatcher_store::contract_tests!(|| async { Some(my_fresh_stores().await) });
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};

use dispatcher_core::model::{Cluster, DispatcherConfig, Inventory, Job, JobFile, JobKind, labels};
use dispatcher_core::{Inputs, Plan, Settings};

use crate::model::{Cause, Pending};
use crate::ports::{Claim, StoreError, Stores};
use crate::publish::{self, PublishError, PublishOptions};

/// Generates one `#[tokio::test]` per contract check; `$make` is a closure returning a
/// future of fresh [`Stores`], or `None` when the backend is absent (the check then says
/// it is skipped).
#[macro_export]
macro_rules! contract_tests {
    ($make:expr) => {
        $crate::contract_tests!(@each $make;
            an_empty_store_answers_nothing,
            publishing_serves_the_plan,
            a_second_generation_writes_only_changed_items,
            a_job_that_disappears_answers_not_found,
            half_published_generations_are_invisible,
            claims_follow_the_pointer_and_the_lease,
            a_stale_claim_of_another_plan_is_taken_over,
            commit_requires_the_claim,
            racing_publishers_have_exactly_one_winner,
            rollback_restores_an_older_generation,
            an_empty_plan_never_replaces_a_good_one,
            remembered_keys_expire,
            markers_are_durable,
            counters_count_under_concurrency
        );
    };
    (@each $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(stores) = ($make)().await else { return };
                $crate::contract::$name(&stores).await;
            }
        )*
    };
}

const CLUSTERS: [&str; 3] = ["build01", "build02", "build03"];

/// A plan in which every job is pinned (by label) to the given cluster.
pub fn plan_of(assignments: &[(&str, &str)]) -> Plan {
    let mut inventory = Inventory::default();
    for c in CLUSTERS {
        inventory.clusters.insert(
            c.to_owned(),
            Cluster {
                name: c.to_owned(),
                provider: "aws".to_owned(),
                capacity: 100,
                capabilities: BTreeSet::new(),
                blocked: false,
                reserved: false,
                cordoned: false,
            },
        );
    }
    let config = DispatcherConfig {
        default: "build01".to_owned(),
        ..DispatcherConfig::default()
    };
    let files = vec![JobFile {
        path: "ci-operator/jobs/o/r/o-r-main-presubmits.yaml".to_owned(),
        size: 1,
        jobs: assignments
            .iter()
            .map(|(job, cluster)| Job {
                name: (*job).to_owned(),
                kind: JobKind::Presubmit,
                agent: "kubernetes".to_owned(),
                cluster: None,
                labels: BTreeMap::from([(labels::CLUSTER.to_owned(), (*cluster).to_owned())]),
                containers: vec![],
            })
            .collect(),
    }];
    let inputs = Inputs {
        config: &config,
        inventory: &inventory,
        files: &files,
        volumes: None,
        previous: None,
        digests: Default::default(),
        sources: Default::default(),
        diagnostics: vec![],
    };
    dispatcher_core::run(&inputs, &Settings::default()).expect("contract plan")
}

fn opts(now: i64) -> PublishOptions {
    PublishOptions::new(Cause::Manual, now)
}

async fn answer(stores: &Stores, job: &str) -> Option<String> {
    publish::lookup(stores, job).await.unwrap().map(|(c, _)| c)
}

pub async fn an_empty_store_answers_nothing(stores: &Stores) {
    assert_eq!(stores.table.pointer().await.unwrap(), None);
    assert_eq!(answer(stores, "any").await, None);
    assert_eq!(stores.table.generation(1).await.unwrap(), None);
    assert_eq!(
        stores
            .snapshots
            .get("snapshots/none/plan.json.gz")
            .await
            .unwrap(),
        None
    );
}

pub async fn publishing_serves_the_plan(stores: &Stores) {
    let plan = plan_of(&[("a", "build01"), ("b", "build02")]);
    let p = publish::publish(stores, &plan, &opts(1_000)).await.unwrap();
    assert_eq!(p.generation, 1);
    assert!(!p.unchanged);
    assert_eq!(answer(stores, "a").await.as_deref(), Some("build01"));
    assert_eq!(answer(stores, "b").await.as_deref(), Some("build02"));
    assert_eq!(answer(stores, "c").await, None);
    let pointer = stores.table.pointer().await.unwrap().unwrap();
    assert_eq!((pointer.generation, pointer.pending), (1, None));
    let record = stores.table.generation(1).await.unwrap().unwrap();
    assert_eq!(
        (record.cause, record.published_at, record.changed),
        (Cause::Manual, 1_000, 2)
    );
    assert_eq!(
        publish::load_plan(stores, &record.snapshot).await.unwrap(),
        plan
    );
    for object in ["summary.md", "summary.svg", "inputs.json"] {
        assert!(
            stores
                .snapshots
                .get(&format!("{}/{object}", record.snapshot))
                .await
                .unwrap()
                .is_some(),
            "{object}"
        );
    }
    // Publishing the same plan again is a no-op.
    let again = publish::publish(stores, &plan, &opts(2_000)).await.unwrap();
    assert!(again.unchanged);
    assert_eq!(again.generation, 1);
}

pub async fn a_second_generation_writes_only_changed_items(stores: &Stores) {
    let first = plan_of(&[("a", "build01"), ("b", "build02"), ("c", "build03")]);
    publish::publish(stores, &first, &opts(1)).await.unwrap();
    let second = plan_of(&[("a", "build01"), ("b", "build03"), ("c", "build03")]);
    let p = publish::publish(stores, &second, &PublishOptions::new(Cause::Push, 2))
        .await
        .unwrap();
    assert_eq!((p.generation, p.changed), (2, 1));
    // claim + one batch + record + commit
    assert_eq!(p.writes.requests, 4, "{:?}", p.writes);
    assert_eq!(answer(stores, "b").await.as_deref(), Some("build03"));
    let item = stores.table.job("b").await.unwrap().unwrap();
    assert_eq!(
        (item.generation, item.previous.as_deref()),
        (2, Some("build02"))
    );
    let history = publish::history(stores, "b").await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(
        (
            history[1].from.as_deref(),
            history[1].to.as_deref(),
            history[1].cause
        ),
        (Some("build02"), Some("build03"), Cause::Push)
    );
    // Untouched items keep the generation that set them.
    assert_eq!(stores.table.job("a").await.unwrap().unwrap().generation, 1);
}

pub async fn a_job_that_disappears_answers_not_found(stores: &Stores) {
    publish::publish(
        stores,
        &plan_of(&[
            ("a", "build01"),
            ("b", "build02"),
            ("c", "build02"),
            ("d", "build02"),
        ]),
        &opts(1),
    )
    .await
    .unwrap();
    let p = publish::publish(
        stores,
        &plan_of(&[("a", "build01"), ("c", "build02"), ("d", "build02")]),
        &opts(2),
    )
    .await
    .unwrap();
    assert_eq!(p.deleted, 1);
    assert_eq!(answer(stores, "b").await, None);
    assert_eq!(
        stores.table.job("b").await.unwrap(),
        None,
        "the tombstone is removed after the commit"
    );
}

pub async fn half_published_generations_are_invisible(stores: &Stores) {
    publish::publish(
        stores,
        &plan_of(&[("a", "build01"), ("b", "build02")]),
        &opts(1),
    )
    .await
    .unwrap();
    // Items of generation 2 written, pointer not moved: readers still see generation 1.
    let pending = Pending {
        generation: 2,
        plan_digest: "sha256:other".to_owned(),
        changes: "generations/0000000002/x/changes.json.gz".to_owned(),
        started_at: 2,
        lease_until: 2 + publish::LEASE_SECONDS,
    };
    assert!(matches!(
        stores.table.claim(1, &pending, 2).await.unwrap(),
        Claim::Won { .. }
    ));
    let mut item = stores.table.job("a").await.unwrap().unwrap();
    item.previous = item.cluster.take();
    item.cluster = Some("build03".to_owned());
    item.generation = 2;
    stores.table.write_jobs(&[item]).await.unwrap();
    assert_eq!(answer(stores, "a").await.as_deref(), Some("build01"));
}

pub async fn claims_follow_the_pointer_and_the_lease(stores: &Stores) {
    let mine = Pending {
        generation: 1,
        plan_digest: "sha256:mine".to_owned(),
        changes: "c1".to_owned(),
        started_at: 10,
        lease_until: 100,
    };
    assert_eq!(
        stores.table.claim(0, &mine, 10).await.unwrap(),
        Claim::Won { taken_over: None }
    );
    // The same plan may resume its own claim.
    assert_eq!(
        stores.table.claim(0, &mine, 20).await.unwrap(),
        Claim::Won { taken_over: None }
    );
    let theirs = Pending {
        plan_digest: "sha256:theirs".to_owned(),
        ..mine.clone()
    };
    assert!(
        matches!(
            stores.table.claim(0, &theirs, 50).await.unwrap(),
            Claim::Lost(_)
        ),
        "a live lease holds"
    );
    assert!(
        matches!(
            stores.table.claim(5, &theirs, 50).await.unwrap(),
            Claim::Lost(_)
        ),
        "a wrong base loses"
    );
}

pub async fn a_stale_claim_of_another_plan_is_taken_over(stores: &Stores) {
    publish::publish(
        stores,
        &plan_of(&[("a", "build01"), ("b", "build01")]),
        &opts(1),
    )
    .await
    .unwrap();
    // Another publisher claimed generation 2, wrote job a, and died.
    let dead = plan_of(&[("a", "build02"), ("b", "build01")]);
    let digest = publish::plan_digest(&dead.to_json());
    let changes = "generations/0000000002/dead/changes.json.gz".to_owned();
    stores
        .snapshots
        .put(
            &changes,
            crate::codec::gzip_json(&vec![crate::model::Change {
                job: "a".to_owned(),
                from: Some("build01".to_owned()),
                to: Some("build02".to_owned()),
                cause: Cause::Manual,
                generation: 2,
                at: 2,
            }]),
            "application/gzip",
        )
        .await
        .unwrap();
    let stale = Pending {
        generation: 2,
        plan_digest: digest,
        changes,
        started_at: 2,
        lease_until: 3,
    };
    assert!(matches!(
        stores.table.claim(1, &stale, 2).await.unwrap(),
        Claim::Won { .. }
    ));
    let mut a = stores.table.job("a").await.unwrap().unwrap();
    a.previous = a.cluster.replace("build02".to_owned());
    a.generation = 2;
    stores.table.write_jobs(&[a]).await.unwrap();
    // A different plan, after the lease: it takes over and rewrites what the dead one wrote.
    let p = publish::publish(
        stores,
        &plan_of(&[("a", "build01"), ("b", "build03")]),
        &opts(10),
    )
    .await
    .unwrap();
    assert_eq!(p.generation, 2);
    assert_eq!(answer(stores, "a").await.as_deref(), Some("build01"));
    assert_eq!(answer(stores, "b").await.as_deref(), Some("build03"));
}

pub async fn commit_requires_the_claim(stores: &Stores) {
    let plan = plan_of(&[("a", "build01")]);
    let digest = publish::plan_digest(&plan.to_json());
    let pointer = crate::model::Pointer {
        generation: 1,
        snapshot: publish::snapshot_prefix(&digest),
        plan_digest: digest,
        published_at: 1,
        cause: Cause::Manual,
        inputs: Default::default(),
        pending: None,
    };
    let record = crate::model::GenerationRecord {
        generation: 1,
        snapshot: pointer.snapshot.clone(),
        plan_digest: pointer.plan_digest.clone(),
        cause: Cause::Manual,
        published_at: 1,
        base: None,
        inputs: Default::default(),
        jobs: 1,
        placed_jobs: 1,
        unschedulable_jobs: 0,
        changed: 1,
        deleted: 0,
        clusters: BTreeMap::new(),
    };
    stores.table.record_generation(&record).await.unwrap();
    let e = stores.table.commit(0, &pointer).await.unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e}");
    assert_eq!(stores.table.pointer().await.unwrap(), None);
}

pub async fn racing_publishers_have_exactly_one_winner(stores: &Stores) {
    publish::publish(
        stores,
        &plan_of(&[("a", "build01"), ("b", "build01")]),
        &opts(1),
    )
    .await
    .unwrap();
    let mut tasks = Vec::new();
    for (i, cluster) in CLUSTERS.iter().chain(CLUSTERS.iter()).enumerate() {
        let stores = stores.clone();
        let plan = plan_of(&[
            ("a", cluster),
            ("b", "build02"),
            ("racer", &format!("build0{}", 1 + i % 3)),
        ]);
        tasks.push(tokio::spawn(async move {
            (
                plan.clone(),
                publish::publish(&stores, &plan, &opts(5)).await,
            )
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (plan, r) = t.await.unwrap();
        match r {
            Ok(p) if !p.unchanged => winners.push((plan, p)),
            Ok(_) => {}
            Err(PublishError::Lost { .. }) => {}
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one publisher wins generation 2");
    let (plan, p) = &winners[0];
    assert_eq!(p.generation, 2);
    for job in ["a", "b", "racer"] {
        assert_eq!(
            answer(stores, job).await,
            plan.jobs[job].cluster,
            "{job} serves the winner's plan"
        );
    }
}

pub async fn rollback_restores_an_older_generation(stores: &Stores) {
    let first = plan_of(&[("a", "build01"), ("b", "build02")]);
    publish::publish(stores, &first, &opts(1)).await.unwrap();
    publish::publish(
        stores,
        &plan_of(&[("a", "build03"), ("b", "build03")]),
        &opts(2),
    )
    .await
    .unwrap();
    let p = publish::rollback(stores, 1, 3).await.unwrap();
    assert_eq!(p.generation, 3);
    assert_eq!(answer(stores, "a").await.as_deref(), Some("build01"));
    assert_eq!(answer(stores, "b").await.as_deref(), Some("build02"));
    let record = stores.table.generation(3).await.unwrap().unwrap();
    assert_eq!(record.cause, Cause::Rollback);
    let history = publish::history(stores, "a").await.unwrap();
    assert_eq!(
        history.last().map(|c| (c.cause, c.to.as_deref())),
        Some((Cause::Rollback, Some("build01")))
    );
    assert!(publish::rollback(stores, 9, 4).await.is_err());
}

pub async fn an_empty_plan_never_replaces_a_good_one(stores: &Stores) {
    publish::publish(
        stores,
        &plan_of(&[
            ("a", "build01"),
            ("b", "build02"),
            ("c", "build02"),
            ("d", "build03"),
        ]),
        &opts(1),
    )
    .await
    .unwrap();
    let empty = plan_of(&[]);
    assert!(matches!(
        publish::publish(stores, &empty, &opts(2)).await,
        Err(PublishError::Refused(_))
    ));
    let shrunk = plan_of(&[("a", "build01")]);
    assert!(matches!(
        publish::publish(stores, &shrunk, &opts(2)).await,
        Err(PublishError::Refused(_))
    ));
    assert_eq!(stores.table.pointer().await.unwrap().unwrap().generation, 1);
    assert_eq!(answer(stores, "d").await.as_deref(), Some("build03"));
}

pub async fn remembered_keys_expire(stores: &Stores) {
    assert!(
        stores
            .table
            .remember("delivery#1", "x", 100, 10)
            .await
            .unwrap()
    );
    assert!(
        !stores
            .table
            .remember("delivery#1", "y", 200, 20)
            .await
            .unwrap(),
        "a replay"
    );
    assert_eq!(
        stores
            .table
            .recall("delivery#1", 50)
            .await
            .unwrap()
            .as_deref(),
        Some("x")
    );
    assert_eq!(
        stores.table.recall("delivery#1", 150).await.unwrap(),
        None,
        "expired"
    );
    assert!(
        stores
            .table
            .remember("delivery#1", "z", 300, 150)
            .await
            .unwrap(),
        "an expired key is new again"
    );
    stores.table.forget("delivery#1").await.unwrap();
    assert_eq!(stores.table.recall("delivery#1", 160).await.unwrap(), None);
}

pub async fn markers_are_durable(stores: &Stores) {
    assert_eq!(stores.table.marker("inventory").await.unwrap(), None);
    stores
        .table
        .set_marker("inventory", "sha256:1")
        .await
        .unwrap();
    stores
        .table
        .set_marker("inventory", "sha256:2")
        .await
        .unwrap();
    assert_eq!(
        stores.table.marker("inventory").await.unwrap().as_deref(),
        Some("sha256:2")
    );
}

pub async fn counters_count_under_concurrency(stores: &Stores) {
    assert_eq!(stores.table.increment("rr").await.unwrap(), 1);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let stores = stores.clone();
        tasks.push(tokio::spawn(async move {
            stores.table.increment("rr").await.unwrap()
        }));
    }
    let mut seen = BTreeSet::new();
    for t in tasks {
        seen.insert(t.await.unwrap());
    }
    assert_eq!(
        seen,
        (2..=9).collect::<BTreeSet<u64>>(),
        "every increment gets its own value"
    );
    assert_eq!(stores.table.increment("other").await.unwrap(), 1);
}

//! The checks of the publish protocol: generations, claims, commits, rollbacks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use crate::model::{Cause, Pending};
use crate::publish::{self, PublishError, PublishOptions};
use crate::store::{Claim, StoreError, Stores};

use super::{CLUSTERS, answer, opts, plan_of};

/// Checks that an empty store answers nothing.
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

/// Checks that publishing serves the plan.
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

/// Checks that a second generation writes only changed items.
pub async fn a_second_generation_writes_only_changed_items(stores: &Stores) {
    let first = plan_of(&[("a", "build01"), ("b", "build02"), ("c", "build03")]);
    publish::publish(stores, &first, &opts(1)).await.unwrap();
    let second = plan_of(&[("a", "build01"), ("b", "build03"), ("c", "build03")]);
    let p = publish::publish(stores, &second, &PublishOptions::new(Cause::Push, 2))
        .await
        .unwrap();
    assert_eq!((p.generation, p.changed), (2, 1));
    // The claim, one batch, the commit transaction (pointer and record).
    assert_eq!(p.writes.requests, 3, "{:?}", p.writes);
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

/// Checks that a job that disappears answers not found.
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
    let tombstone = stores
        .table
        .job("b")
        .await
        .unwrap()
        .expect("the item stays");
    assert_eq!(tombstone.cluster, None);
    // Its history stays readable and ends with the deletion.
    let history = publish::history(stores, "b").await.unwrap();
    assert_eq!(
        history
            .iter()
            .map(|c| (c.generation, c.from.as_deref(), c.to.as_deref()))
            .collect::<Vec<_>>(),
        vec![(1, None, Some("build02")), (2, Some("build02"), None)]
    );
}

/// Checks that half published generations are invisible.
pub async fn half_published_generations_are_invisible(stores: &Stores) {
    publish::publish(
        stores,
        &plan_of(&[("a", "build01"), ("b", "build02")]),
        &opts(1),
    )
    .await
    .unwrap();
    // Items of generation 2 written, pointer not moved: readers still see generation 1.
    let pending = claim_of("other", 2, "generations/0000000002/x/changes.json.gz", 2);
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

/// A claim of generation `generation` by `owner`, taken at `at`, holding the lease.
fn claim_of(owner: &str, generation: u64, changes: &str, at: i64) -> Pending {
    Pending {
        generation,
        plan_digest: format!("sha256:{owner}"),
        owner: owner.to_owned(),
        changes: changes.to_owned(),
        inherited: Vec::new(),
        started_at: at,
        lease_until: at + publish::LEASE_SECONDS,
    }
}

fn stored(claim: Claim) -> Pending {
    match claim {
        Claim::Won { stored } => stored,
        Claim::Lost(p) => panic!("the claim was lost: {p:?}"),
    }
}

/// Checks that claims follow the pointer and the lease.
pub async fn claims_follow_the_pointer_and_the_lease(stores: &Stores) {
    let mine = claim_of("mine", 1, "c1", 10);
    assert_eq!(
        stored(stores.table.claim(0, &mine, 10).await.unwrap()),
        mine
    );
    // The same owner resumes its own claim.
    let again = Pending {
        started_at: 20,
        ..mine.clone()
    };
    assert_eq!(
        stored(stores.table.claim(0, &again, 20).await.unwrap()),
        again
    );
    let theirs = claim_of("theirs", 1, "c2", 50);
    assert!(
        matches!(
            stores.table.claim(0, &theirs, 50).await.unwrap(),
            Claim::Lost(_)
        ),
        "a live lease holds against another owner"
    );
    assert!(
        matches!(
            stores.table.claim(5, &theirs, 50).await.unwrap(),
            Claim::Lost(_)
        ),
        "a wrong base loses"
    );
    // After the lease, another owner takes over and inherits what the claim may have written.
    let late = 20 + publish::LEASE_SECONDS + 1;
    let taken = stored(stores.table.claim(0, &theirs, late).await.unwrap());
    assert_eq!(taken.owner, "theirs");
    assert_eq!(taken.inherited, vec!["c1".to_owned()]);
    assert_eq!(
        stores.table.pointer().await.unwrap().unwrap().pending,
        Some(taken)
    );
}

/// Checks that a stale claim of another plan is taken over.
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
    let stale = Pending {
        plan_digest: digest,
        lease_until: 3,
        ..claim_of("dead", 2, "generations/0000000002/dead/changes.json.gz", 2)
    };
    die_after_claiming(stores, &stale, 2, "a", true).await;
    // A different plan, after the lease: it takes over and rewrites what the dead one wrote.
    takes_generation_2_over(stores, 10).await;
}

/// Publishes a plan that moves b to build03 at `now`, over a dead claim on generation 2:
/// it takes the claim over, and both jobs answer as that plan says, whatever the dead
/// publisher wrote.
async fn takes_generation_2_over(stores: &Stores, now: i64) {
    let p = publish::publish(
        stores,
        &plan_of(&[("a", "build01"), ("b", "build03")]),
        &opts(now),
    )
    .await
    .unwrap();
    assert_eq!(p.generation, 2);
    assert_eq!(answer(stores, "a").await.as_deref(), Some("build01"));
    assert_eq!(answer(stores, "b").await.as_deref(), Some("build03"));
}

/// A publisher that claims `claim` over generation 1 at `at` and dies: before claiming it
/// put its change list naming `job` (moved to build02), and if `writes` it also wrote that
/// job's item; it committed nothing.
async fn die_after_claiming(
    stores: &Stores,
    claim: &Pending,
    at: i64,
    job: &str,
    writes: bool,
) -> Pending {
    let changes = vec![crate::model::Change {
        job: job.to_owned(),
        from: None,
        to: Some("build02".to_owned()),
        cause: Cause::Manual,
        generation: claim.generation,
        at,
    }];
    stores
        .snapshots
        .put(
            &claim.changes,
            crate::codec::gzip_json(&changes).unwrap(),
            "application/gzip",
        )
        .await
        .unwrap();
    let won = stored(stores.table.claim(1, claim, at).await.unwrap());
    if writes {
        let mut item = stores.table.job(job).await.unwrap().unwrap();
        item.previous = item.cluster.replace("build02".to_owned());
        item.generation = claim.generation;
        stores.table.write_jobs(&[item]).await.unwrap();
    }
    won
}

/// Checks that a chain of dead claims is rewritten whole.
pub async fn a_chain_of_dead_claims_is_rewritten_whole(stores: &Stores) {
    publish::publish(
        stores,
        &plan_of(&[("a", "build01"), ("b", "build01")]),
        &opts(1),
    )
    .await
    .unwrap();
    // A claims generation 2, writes job a with its answer, and dies.
    let a_claim = Pending {
        lease_until: 3,
        ..claim_of("a", 2, "gen2/a", 2)
    };
    die_after_claiming(stores, &a_claim, 2, "a", true).await;
    // B takes A's claim over and dies before writing anything.
    let b_claim = Pending {
        lease_until: 11,
        ..claim_of("b", 2, "gen2/b", 10)
    };
    let b_stored = die_after_claiming(stores, &b_claim, 10, "b", false).await;
    assert_eq!(b_stored.inherited, vec!["gen2/a".to_owned()]);
    // C takes over from B: it must rewrite what A wrote too.
    takes_generation_2_over(stores, 20).await;
}

/// Checks that commit requires the claim.
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
        applied: Default::default(),
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
        applied: Default::default(),
        jobs: 1,
        placed_jobs: 1,
        unschedulable_jobs: 0,
        changed: 1,
        deleted: 0,
        clusters: BTreeMap::new(),
        moved: Vec::new(),
    };
    // Nobody claimed: no commit.
    let e = stores
        .table
        .commit(0, "mine", &pointer, &record)
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e}");
    // Someone else claimed: not ours to commit either.
    stored(
        stores
            .table
            .claim(0, &claim_of("theirs", 1, "c", 1), 1)
            .await
            .unwrap(),
    );
    let e = stores
        .table
        .commit(0, "mine", &pointer, &record)
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e}");
    // Neither the pointer nor the record moved: they are written together or not at all.
    assert_eq!(stores.table.pointer().await.unwrap().unwrap().generation, 0);
    assert_eq!(stores.table.generation(1).await.unwrap(), None);
}

/// Checks that racing publishers have exactly one winner.
pub async fn racing_publishers_have_exactly_one_winner(stores: &Stores) {
    publish::publish(
        stores,
        &plan_of(&[("a", "build01"), ("b", "build01")]),
        &opts(1),
    )
    .await
    .unwrap();
    // Six publishers with six different plans, all computed against generation 1, released
    // together.
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(6));
    let mut tasks = Vec::new();
    for (i, cluster) in CLUSTERS.iter().chain(CLUSTERS.iter()).enumerate() {
        let (stores, start) = (stores.clone(), start.clone());
        let plan = plan_of(&[
            ("a", cluster),
            ("b", "build02"),
            (&format!("racer-{i}"), "build01"),
        ]);
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let r = publish::publish(&stores, &plan, &opts(5).expecting(1)).await;
            (plan, r)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (plan, r) = t.await.unwrap();
        match r {
            Ok(p) => winners.push((plan, p)),
            Err(PublishError::Lost { .. }) => {}
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one publisher wins generation 2");
    let (plan, p) = &winners[0];
    assert_eq!(p.generation, 2);
    for (job, e) in &plan.jobs {
        assert_eq!(
            answer(stores, job).await,
            e.cluster,
            "{job} serves the winner's plan"
        );
    }
    // A late racer computed against generation 1 loses too, instead of undoing generation 2.
    let late = plan_of(&[("a", "build03"), ("b", "build03")]);
    let r = publish::publish(stores, &late, &opts(6).expecting(1)).await;
    assert!(matches!(r, Err(PublishError::Lost { .. })), "{r:?}");
    assert_eq!(stores.table.pointer().await.unwrap().unwrap().generation, 2);
}

/// Checks that a plan computed against an older generation is lost.
pub async fn a_plan_computed_against_an_older_generation_is_lost(stores: &Stores) {
    let first = plan_of(&[("a", "build01"), ("b", "build01")]);
    publish::publish(stores, &first, &opts(1).expecting(0))
        .await
        .unwrap();
    let second = plan_of(&[("a", "build02"), ("b", "build01")]);
    publish::publish(stores, &second, &opts(2).expecting(1))
        .await
        .unwrap();
    let stale = plan_of(&[("a", "build01"), ("b", "build03")]);
    let r = publish::publish(stores, &stale, &opts(3).expecting(1)).await;
    let Err(PublishError::Lost { reason, .. }) = r else {
        panic!("a plan computed against generation 1 must not land on generation 2: {r:?}");
    };
    assert!(reason.contains("generation 1"), "{reason}");
    assert_eq!(answer(stores, "a").await.as_deref(), Some("build02"));
    // Without an expectation (an operator's publish), it lands on top.
    let p = publish::publish(stores, &stale, &opts(4)).await.unwrap();
    assert_eq!(p.generation, 3);
}

/// Checks that rollback restores an older generation.
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
    let p = publish::rollback(stores, 1, &opts(3)).await.unwrap();
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
    assert!(publish::rollback(stores, 9, &opts(4)).await.is_err());
}

/// Checks that an empty plan never replaces a good one.
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

/// A release cut short reads as one whose jobs were deleted: more than 10% deleted is
/// refused (the serving generation stays) unless the operator allows it.
pub async fn a_plan_that_deletes_many_jobs_is_refused_unless_allowed(stores: &Stores) {
    let all: Vec<(String, &str)> = (0..300)
        .map(|i| (format!("job-{i:03}"), "build01"))
        .collect();
    let pairs = |n: usize| -> Vec<(&str, &str)> {
        all[..n].iter().map(|(j, c)| (j.as_str(), *c)).collect()
    };
    publish::publish(stores, &plan_of(&pairs(300)), &opts(1))
        .await
        .unwrap();
    // 30 of 300 deleted: 10%, allowed.
    publish::publish(stores, &plan_of(&pairs(270)), &opts(2))
        .await
        .unwrap();
    // 40 of 270: 14.8%, refused, naming the way to allow it.
    let e = publish::publish(stores, &plan_of(&pairs(230)), &opts(3))
        .await
        .unwrap_err();
    assert!(matches!(e, PublishError::Refused(_)), "{e}");
    assert!(e.to_string().contains("deletes 40 of the 270 jobs"), "{e}");
    assert!(e.to_string().contains("--max-deleted-percent"), "{e}");
    assert_eq!(stores.table.pointer().await.unwrap().unwrap().generation, 2);
    assert_eq!(answer(stores, "job-250").await.as_deref(), Some("build01"));
    // Nearly everything gone: refused too (a small share, as in
    // a_job_that_disappears_answers_not_found, is always allowed).
    let few = plan_of(&[("job-000", "build01"), ("job-001", "build01")]);
    assert!(matches!(
        publish::publish(stores, &few, &opts(3)).await,
        Err(PublishError::Refused(_))
    ));
    let mut allowed = opts(3);
    allowed.max_deleted = 0.2;
    publish::publish(stores, &plan_of(&pairs(230)), &allowed)
        .await
        .unwrap();
    assert_eq!(answer(stores, "job-250").await, None);
}

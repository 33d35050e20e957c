//! The contract every store adapter passes: the same checks run against the local store
//! and against DynamoDB + S3 in the emulator. Each check takes a fresh, empty store.
//!
//! ```ignore
//! crate::contract_tests!(|| async { Some(my_fresh_stores().await) });
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dispatcher_core::model::{
    Cluster, DispatcherConfig, Inventory, Job, JobFile, JobKind, Labels, labels,
};
use dispatcher_core::{Inputs, Plan, Settings};

mod generations;
mod records;

pub use generations::*;
pub use records::*;

use crate::model::Cause;
use crate::publish::{self, PublishOptions};
use crate::store::Stores;

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
            a_chain_of_dead_claims_is_rewritten_whole,
            commit_requires_the_claim,
            racing_publishers_have_exactly_one_winner,
            a_plan_computed_against_an_older_generation_is_lost,
            rollback_restores_an_older_generation,
            an_empty_plan_never_replaces_a_good_one,
            a_plan_that_deletes_many_jobs_is_refused_unless_allowed,
            remembered_keys_expire,
            markers_are_durable,
            markers_swap_from_what_they_hold,
            counters_count_under_concurrency
        );
    };
    (@each $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(stores) = ($make)().await else {
                    // Past the harness's capture, as the corpus tests say theirs.
                    use std::io::Write as _;
                    let _ = writeln!(
                        std::io::stderr(),
                        "SKIPPED {}: no store to run the contract on",
                        stringify!($name)
                    );
                    return;
                };
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
        inventory
            .clusters
            .insert(c.to_owned(), Cluster::new(c, "aws", 100));
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
                labels: Labels::from([(labels::CLUSTER.to_owned(), (*cluster).to_owned())]),
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

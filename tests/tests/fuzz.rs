//! Fuzzing on stable Rust: byte-level mutations of real documents, run against every reader
//! of untrusted input. Each target runs for a time budget and asserts no panic and no input
//! taking a second or more; it prints how many inputs it ran and the slowest.
//!
//! CI runs each target for a few seconds. The longer run of the README:
//! `DISPATCHER_FUZZ_SECONDS=600 cargo test --release -p dispatcher-tests --test fuzz -- --nocapture --test-threads 1`.

mod fuzzing;

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use dispatcher_tests::sample;
use fuzzing::{Target, mutated, seeds_of};
use proptest::prelude::*;

/// Every job file of the sample release, and a few shapes the sample does not have.
fn job_seeds() -> Vec<Vec<u8>> {
    let mut seeds = seeds_of(&sample().join("release/ci-operator/jobs"));
    seeds.push(
        b"periodics:\n- name: a\n  labels: {capability/arm64: arm64, x: [1, {y: z}]}\n  spec:\n    containers:\n    - image: ci-operator:latest\n      env: [{name: CLUSTER_TYPE, value: aws}]\n"
            .to_vec(),
    );
    seeds.push(
        b"presubmits:\n  org/repo:\n  - &job\n    name: a\n    cluster: build01\n  - <<: *job\n    name: b\n".to_vec(),
    );
    seeds
}

#[test]
fn job_files_fast_and_library_readers() {
    let compared = AtomicU64::new(0);
    Target::new("job files").run(mutated(job_seeds()), |bytes| {
        // The reader placement uses: it must neither panic nor take long on anything.
        let _ = dispatcher_formats::parse_job_file(&bytes);
        // The fast path by itself against the library, where both answer. (`parse_job_file`
        // hands what the fast path declines to the library, so comparing it with the
        // library would compare the library with itself. The fast path reads only what
        // the rules need, so it may accept a file whose other parts the library refuses:
        // `validate` parses every byte for that.)
        let fast = std::str::from_utf8(&bytes)
            .ok()
            .and_then(dispatcher_formats::jobs::parse_job_file_fast_only);
        let full = dispatcher_formats::jobs::parse_job_file_full(&bytes);
        if let (Some(fast), Ok(full)) = (fast, full) {
            compared.fetch_add(1, Ordering::Relaxed);
            assert_eq!(fast, full, "the fast reader disagrees with the library");
        }
    });
    let compared = compared.into_inner();
    let _ = writeln!(
        std::io::stderr(),
        "fuzz job files: {compared} inputs answered by both readers"
    );
    assert!(
        compared > 0,
        "no input was answered by both readers: nothing was compared"
    );
}

#[test]
fn dispatcher_config() {
    let mut seeds = seeds_of(&sample().join("release/core-services/sanitize-prow-jobs"));
    seeds.push(b"a: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e]\n".to_vec());
    Target::new("config").run(mutated(seeds), |bytes| {
        let _ = dispatcher_formats::parse_config(&bytes, "_config.yaml");
    });
}

#[test]
fn cluster_inventory() {
    let seeds = seeds_of(&sample().join("release/core-services/sanitize-prow-jobs"));
    Target::new("inventory").run(mutated(seeds), |bytes| {
        let _ = dispatcher_formats::parse_inventory(&bytes, "_clusters.yaml");
    });
}

#[test]
fn prometheus_volumes() {
    let seeds = vec![std::fs::read(sample().join("volumes.json")).expect("sample volumes")];
    Target::new("volumes").run(mutated(seeds), |bytes| {
        let _ = dispatcher_formats::parse_vector(&bytes);
    });
}

#[test]
fn release_tarballs() {
    let tars = vec![fuzzing::tar_of_dir(&sample().join("release"), "rel")];
    // The archive itself mutated, and its gzip stream mutated.
    let strategy = prop_oneof![
        mutated(tars.clone()).prop_map(|tar| fuzzing::gzip(&tar)),
        mutated(tars.iter().map(|t| fuzzing::gzip(t)).collect()),
    ];
    Target::new("tar reader").run(strategy, |gz| {
        let _ = dispatcher_formats::release::read(
            dispatcher_formats::Source::Stream(Box::new(std::io::Cursor::new(gz))),
            dispatcher_formats::ReadOptions::default(),
            &|| {},
        );
    });
}

#[test]
fn the_harness_catches_a_panic_and_a_slow_input() {
    let strategy = Just(vec![1u8]);
    let panicked = std::panic::catch_unwind(|| {
        Target::new("self-test")
            .budget(0.2)
            .run(strategy.clone(), |_| panic!("boom"));
    });
    assert!(panicked.is_err(), "a panicking target must fail");
    let slow = std::panic::catch_unwind(|| {
        Target::new("self-test")
            .budget(0.2)
            .limit(0.01)
            .run(strategy, |_| {
                std::thread::sleep(std::time::Duration::from_millis(50))
            });
    });
    assert!(slow.is_err(), "a slow input must fail");
    let _ = writeln!(
        std::io::stderr(),
        "the harness fails on a panic and on a slow input"
    );
}

/// A push as GitHub delivers it (JSON), and the same as a form (`payload=`).
fn push_seeds() -> Vec<Vec<u8>> {
    let push = serde_json::json!({
        "ref": "refs/heads/main", "before": "aaaa", "after": "bbbb",
        "created": false, "deleted": false, "forced": false,
        "commits": [{"id": "bbbb", "added": ["ci-operator/jobs/o/r/o-r-main-presubmits.yaml"],
                     "removed": [], "modified": ["core-services/sanitize-prow-jobs/_clusters.yaml"]}],
        "head_commit": {"id": "bbbb"},
        "repository": {"full_name": "acme/release", "default_branch": "main"},
        "pusher": {"name": "someone"}
    })
    .to_string();
    let form = format!("payload={}", fuzzing::form_encode(&push));
    vec![push.into_bytes(), form.into_bytes()]
}

#[test]
fn webhook_bodies_signed_with_the_secret() {
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let (router, _dir) = rt.block_on(fuzzing::webhook_router(b"s3cret"));
    let delivery = AtomicU64::new(0);
    Target::new("webhook bodies").run(mutated(push_seeds()), |body| {
        let n = delivery.fetch_add(1, Ordering::Relaxed);
        let form = body.starts_with(b"payload=");
        let status = rt.block_on(fuzzing::deliver(&router, b"s3cret", &body, n, form));
        assert!(
            matches!(status, 200 | 202 | 400 | 413 | 422 | 502),
            "status {status}"
        );
    });
}

#[test]
fn lookup_bodies() {
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let (router, _dir) = rt.block_on(fuzzing::lookup_router(&sample()));
    let seeds = vec![
        br#"{"job":"pull-ci-acme-widget-main-unit"}"#.to_vec(),
        br#"{"job":"ephemeralcluster-abc","extra":[1,{"x":null}]}"#.to_vec(),
        br#"{"JOB":"periodic-acme-nightly"} trailing"#.to_vec(),
    ];
    Target::new("lookup bodies").run(mutated(seeds), |body| {
        let status = rt.block_on(fuzzing::post(&router, "/", body));
        assert!(
            matches!(status, 200 | 400 | 404 | 413 | 429),
            "status {status}"
        );
    });
}

//! Twelve plans of the real corpus, held to the SHA-256 of their JSON: a change of the code
//! that is not meant to change behaviour (a re-cut, an optimisation) must leave every byte
//! of them as it was. A change that is meant to change placement updates these digests in
//! the same commit, and says why.

use std::path::{Path, PathBuf};

use dispatcher_core::{Mode, Plan, Settings, Strategy};
use dispatcher_formats::InputPaths;
use dispatcher_tests::corpus_or_skip;
use sha2::{Digest, Sha256};

fn plan(
    c: &Path,
    clusters: &str,
    volumes: Option<&str>,
    previous: Option<&Path>,
    s: &Settings,
) -> Plan {
    let loaded = dispatcher_formats::load(
        &InputPaths {
            release: c.join("release-7659af06.tar.gz"),
            clusters: Some(c.join(clusters)),
            volumes: volumes.map(|v| c.join(v)),
            previous: previous.map(Path::to_owned),
            ..InputPaths::default()
        },
        &|| {},
    )
    .expect("the corpus loads");
    dispatcher_core::run(&loaded.inputs(), s).expect("the corpus plans")
}

fn settings(strategy: Strategy) -> Settings {
    Settings {
        strategy,
        vsphere_cluster: "vsphere".to_owned(),
        ..Settings::default()
    }
}

/// The plan's JSON written where the next plan reads it, and its digest.
fn keep(dir: &Path, name: &str, p: &Plan) -> (PathBuf, String) {
    let json = p.to_json();
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, &json).expect("write the plan");
    (path, hex::encode(Sha256::digest(json.as_bytes())))
}

#[test]
fn twelve_corpus_plans_keep_their_bytes() {
    let Some(c) = corpus_or_skip("twelve_corpus_plans_keep_their_bytes") else {
        return;
    };
    let dir = tempfile::tempdir().expect("temporary directory");
    let (w1, w2) = (
        Some("volumes-7659af06.week1.json.gz"),
        Some("volumes-7659af06.week2.json.gz"),
    );
    let balanced = settings(Strategy::Balanced);
    let classic = settings(Strategy::Classic);
    let no_hysteresis = Settings {
        hysteresis_percent: 0.0,
        ..balanced.clone()
    };
    let delta = Settings {
        mode: Mode::Delta,
        ..balanced.clone()
    };
    let ladder = Settings {
        keep_static_clusters: false,
        ..settings(Strategy::Resolve)
    };
    let y2022 = "clusters-2022.yaml";
    let mut got: Vec<(&str, String)> = Vec::new();
    let mut run = |name: &'static str, clusters: &str, v, prev: Option<&Path>, s: &Settings| {
        let (path, digest) = keep(dir.path(), name, &plan(&c, clusters, v, prev, s));
        got.push((name, digest));
        path
    };
    run("resolve", y2022, None, None, &settings(Strategy::Resolve));
    run("resolve-ladder-only", y2022, None, None, &ladder);
    let b1 = run("balanced-week1", y2022, w1, None, &balanced);
    let c1 = run("classic-week1", y2022, w1, None, &classic);
    run("balanced-week2", y2022, w2, Some(&b1), &balanced);
    run(
        "balanced-week2-no-hysteresis",
        y2022,
        w2,
        Some(&b1),
        &no_hysteresis,
    );
    run("classic-week2", y2022, w2, Some(&c1), &classic);
    run("delta-week2", y2022, w2, Some(&b1), &delta);
    let f1 = run(
        "2025-f1af0c06-week1",
        "clusters-f1af0c06.yaml",
        w1,
        Some(&b1),
        &balanced,
    );
    run(
        "2025-f1af0c06-week2",
        "clusters-f1af0c06.yaml",
        w2,
        Some(&f1),
        &balanced,
    );
    let o1 = run(
        "2025-0362eab1-week1",
        "clusters-0362eab1.yaml",
        w1,
        Some(&b1),
        &balanced,
    );
    run(
        "2025-0362eab1-delta",
        "clusters-0362eab1.yaml",
        w2,
        Some(&o1),
        &delta,
    );

    let want: &[(&str, &str)] = &[
        (
            "resolve",
            "d30b66164e8ee9263f0df65751dd5a94d49e2bbe9aa882c6cc71e512ab6377b0",
        ),
        (
            "resolve-ladder-only",
            "8fc41c752383fc217b4b8b0eb03579b2dcd4b4e0ef68a1484d8dd042de4fb661",
        ),
        (
            "balanced-week1",
            "2914800aa7668982f474425c443c26609142ce5e7d89f6fd46cfe1678e9fa08f",
        ),
        (
            "classic-week1",
            "f6b0d5fe23a9c961590948f7d641a75579e504d63c9658cdd6e73ac794171dc0",
        ),
        (
            "balanced-week2",
            "dbcb782c8a1d4213c56f9dfcc12bdec63769a0299f1659a6c31d65a048d0b9ee",
        ),
        (
            "balanced-week2-no-hysteresis",
            "3aab4fe8cd26d9d43593cb864d50b3281c7a3840f21752cdbcc512c5a601b26b",
        ),
        (
            "classic-week2",
            "7d4ae8fe23c8f25608b909038d792ac1361822756f05c75124fc5c7fd9b9f5b4",
        ),
        (
            "delta-week2",
            "9d9e1481255c52a678274f7241ca18c65dee331f5b6f7961f50373a5f03161e8",
        ),
        (
            "2025-f1af0c06-week1",
            "73fe65b83d0fb6f23df266f7845b1012fb28e453cfc472c37245eafb8370bb8c",
        ),
        (
            "2025-f1af0c06-week2",
            "3416bd7f9166aa8f92dabed3b3c6b47a0595e4a5e8fff0d93da58fbbfadc3e2a",
        ),
        (
            "2025-0362eab1-week1",
            "b9753c5f83295bb3a3084887e5183b7fb9157aced0c43a2f7f8ae3bec4eee1d8",
        ),
        (
            "2025-0362eab1-delta",
            "96e37b36600f121fdb04ae7c597efa4453ea7c62e91b6aa3d395869a1c1985cf",
        ),
    ];
    let got_text: Vec<String> = got
        .iter()
        .map(|(n, d)| format!("(\"{n}\", \"{d}\"),"))
        .collect();
    let differ: Vec<&str> = got
        .iter()
        .zip(want)
        .filter(|((_, g), (_, w))| g != w)
        .map(|((n, _), _)| *n)
        .collect();
    assert!(
        differ.is_empty(),
        "plans whose bytes changed: {differ:?}\nnow:\n{}",
        got_text.join("\n")
    );
}

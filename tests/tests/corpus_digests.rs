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
            "98c4113173da9457049135f1fdce1e59117e98e32f2751ab49d6b16e7477c7f7",
        ),
        (
            "resolve-ladder-only",
            "0a44d808e9732b2871c92731c86b2824da1e70415eacf22f6cee06ae53446a6c",
        ),
        (
            "balanced-week1",
            "495a4722ed8324c4913769730bd22704d5f4eff771ee48e1dbe526d2cd047884",
        ),
        (
            "classic-week1",
            "2ebebb194f4777e85445f324aa750531f935576d7ed0849b0cc761f374bb7919",
        ),
        (
            "balanced-week2",
            "65dafef511283a9efb00733a07a1df93d0437786f542a25f3ed4bf0292bd32f1",
        ),
        (
            "balanced-week2-no-hysteresis",
            "cdd23facf56761a83cbf3d71bb4d56af184286a022eafb0494acf8a033b7323a",
        ),
        (
            "classic-week2",
            "953cdafa3a1348ecf688f905d17c394dfa1604087dd9e4c5a77d3fcd2b1df9ac",
        ),
        (
            "delta-week2",
            "cfdef63bea8d507fe64ea8ca234da2d22e3de6c792a6e6283d3c69210dda2316",
        ),
        (
            "2025-f1af0c06-week1",
            "abcc53ec6f8b625baf5d63889fb6ae142be55cc33245b87733178d15595a716d",
        ),
        (
            "2025-f1af0c06-week2",
            "b19e4e289d4395aa1b8e70329e5121de6e189499ea4e8e63d0d863ca9bceff88",
        ),
        (
            "2025-0362eab1-week1",
            "e2916b3856e834e5c73b0e62f8e508706e8ef36ad4d3739c292c983a06eb9053",
        ),
        (
            "2025-0362eab1-delta",
            "8bab32618fb7298b67923975e8e01dd4aff1903c903631a0c3e7996c1c558713",
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

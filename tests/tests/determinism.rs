//! A plan's bytes depend on what its inputs say, never on where they were read from: the
//! same inventory and volumes under two checkouts (as on an operator's laptop and in CI)
//! give byte-identical plans.

use std::path::{Path, PathBuf};

use dispatcher_core::{Settings, Strategy};
use dispatcher_formats::InputPaths;

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/sample");

/// Copies the sample's inventory and volumes (with a Prometheus warning, which the plan
/// reports under the volumes file's name) into `dir`, and plans with them.
fn plan_from(dir: &Path) -> String {
    std::fs::create_dir_all(dir).expect("make the directory");
    let sample = PathBuf::from(SAMPLE);
    let clusters = dir.join("clusters.yaml");
    std::fs::copy(
        sample.join("release/core-services/sanitize-prow-jobs/_clusters.yaml"),
        &clusters,
    )
    .expect("copy the inventory");
    let mut volumes: serde_json::Value = serde_json::from_slice(
        &std::fs::read(sample.join("volumes.json")).expect("read the sample volumes"),
    )
    .expect("the sample volumes are JSON");
    volumes["warnings"] = serde_json::json!(["the query touched a partial block"]);
    let volumes_path = dir.join("volumes.json");
    std::fs::write(&volumes_path, volumes.to_string()).expect("write the volumes");
    let loaded = dispatcher_formats::load(
        &InputPaths {
            release: sample.join("release"),
            clusters: Some(clusters),
            volumes: Some(volumes_path),
            ..InputPaths::default()
        },
        &|| {},
    )
    .expect("the sample loads");
    let settings = Settings {
        strategy: Strategy::Balanced,
        ..Settings::default()
    };
    dispatcher_core::run(&loaded.inputs(), &settings)
        .expect("the sample plans")
        .to_json()
}

#[test]
fn the_same_inputs_in_two_directories_give_one_plan() {
    let root = tempfile::tempdir().expect("temporary directory");
    let here = plan_from(&root.path().join("laptop"));
    let there = plan_from(&root.path().join("ci/checkout/deeper"));
    assert!(
        here.contains("the query touched a partial block"),
        "the plan reports the volumes' warning, so the file's label is in the bytes compared"
    );
    for dir in [root.path().display().to_string(), SAMPLE.to_owned()] {
        assert!(
            !here.contains(&dir),
            "the plan names no directory it read from: {dir}"
        );
    }
    assert_eq!(here, there);
}

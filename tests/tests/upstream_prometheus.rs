//! ci-tools' `pkg/dispatcher/prometheus_test.go` and `pkg/dispatcher/prometheus_volumes_test.go`
//! (HEAD `52352cd19`), translated: job volumes and weighted demand from Prometheus vectors,
//! the checks of the demand options, and the volume each cluster should carry by capacity.
//! Each test names the Go test it comes from; a case that differs on purpose says why.
//!
//! Go's tests fake the Prometheus client and hand `model.Vector` values to the code under
//! test. Ours parses the `/api/v1/query` answer a Prometheus sends (`parse_vector`), and the
//! Prometheus adapter turns the vectors into demand with `Demand::from_vectors`; so each
//! fake answer here is the JSON a Prometheus would send for Go's vector.

mod upstream_support;

use dispatcher_app::ports::Demand;
use dispatcher_config::RuntimeConfig;
use dispatcher_core::Settings;
use dispatcher_core::model::{DemandModel, Volumes};
use dispatcher_formats::parse_vector;
use dispatcher_formats::volumes::Vector;
use upstream_support::*;

/// The answer of `/api/v1/query` for a vector of (job_name, value) samples; values as
/// Prometheus writes them (strings, `+Inf` included).
fn answer(samples: &[(&str, &str)]) -> Vec<u8> {
    let result: Vec<serde_json::Value> = samples
        .iter()
        .map(|(job, value)| {
            serde_json::json!({"metric": {"job_name": job}, "value": [1_700_000_000, value]})
        })
        .collect();
    serde_json::json!({"status": "success", "data": {"resultType": "vector", "result": result}})
        .to_string()
        .into_bytes()
}

fn vector(samples: &[(&str, &str)]) -> Vector {
    parse_vector(&answer(samples)).expect("a valid vector")
}

/// Go's `PrometheusOptions` weights with its zero values: ours has no zero-value defaults.
fn model(run: f64, hour: f64, cpu: f64, memory: f64, minimum: f64) -> DemandModel {
    DemandModel {
        run_weight: run,
        hour_weight: hour,
        cpu_hour_weight: cpu,
        memory_gib_hour_weight: memory,
        minimum,
    }
}

/// The runtime configuration from these variables only (the functions' flags).
fn runtime(vars: &[(&str, &str)]) -> Result<RuntimeConfig, String> {
    RuntimeConfig::from_lookup(|k| {
        vars.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| (*v).to_owned())
    })
    .map_err(|e| e.to_string())
}

/// Go: `TestGetWeightedJobDemandFromPrometheus`: 2 runs, 3600 s, 7200 CPU-seconds and
/// 3 GiB-hours of byte-seconds weigh 2 + 1 + 2 + 0.75 = 5.75.
#[test]
fn go_test_get_weighted_job_demand_from_prometheus() {
    let demand = Demand::from_vectors(
        (vector(&[("hourly", "2")]), "runs".to_owned()),
        Some((vector(&[("hourly", "3600")]), "duration".to_owned())),
        Some((vector(&[("hourly", "7200")]), "cpu".to_owned())),
        Some((
            vector(&[(
                "hourly",
                &(3.0 * 3600.0 * 1024.0 * 1024.0 * 1024.0).to_string(),
            )]),
            "memory".to_owned(),
        )),
    );
    let weights = model(1.0, 1.0, 1.0, 0.25, 1.0);
    assert_eq!(weights, DemandModel::default(), "HEAD's flag defaults");
    assert_eq!(weights.demand(Some(&demand.volumes), "hourly"), Ok(5.75));

    // And what a run gives the job.
    let files = vec![file(
        "org/repo/org-repo-main-presubmits.yaml",
        vec![job("hourly")],
    )];
    let plan = run(
        &config("build01"),
        &inventory(vec![cluster("build01", "aws", 100)]),
        &files,
        Some(&demand.volumes),
        None,
        &Settings::default(),
    )
    .unwrap();
    assert_eq!(plan.jobs["hourly"].demand, 5.75);
}

/// Go: `TestGetWeightedJobDemandRejectsNonFiniteSamples`.
#[test]
fn go_test_get_weighted_job_demand_rejects_non_finite_samples() {
    let e = parse_vector(&answer(&[("job", "+Inf")]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("finite"), "{e}");
}

/// Go: `TestPrometheusOptionsValidateRejectsNonFiniteDemandValues`, all six cases: the demand
/// model's check, and the same values given to the functions' variables (our flags).
#[test]
fn go_test_prometheus_options_validate_rejects_non_finite_demand_values() {
    let nan = f64::NAN;
    let inf = f64::INFINITY;
    type Case = (
        &'static str,
        DemandModel,
        &'static [(&'static str, &'static str)],
    );
    let cases: [Case; 6] = [
        (
            "NaN run weight",
            model(nan, 0.0, 0.0, 0.0, 1.0),
            &[("DISPATCHER_RUN_WEIGHT", "NaN")],
        ),
        (
            "infinite duration weight",
            model(0.0, inf, 0.0, 0.0, 1.0),
            &[("DISPATCHER_HOUR_WEIGHT", "inf")],
        ),
        (
            "infinite CPU weight",
            model(0.0, 0.0, -inf, 0.0, 1.0),
            &[("DISPATCHER_CPU_HOUR_WEIGHT", "-inf")],
        ),
        (
            "NaN memory weight",
            model(0.0, 0.0, 0.0, nan, 1.0),
            &[("DISPATCHER_MEMORY_GIB_HOUR_WEIGHT", "NaN")],
        ),
        (
            "NaN minimum demand",
            model(1.0, 0.0, 0.0, 0.0, nan),
            &[("DISPATCHER_MIN_DEMAND", "NaN")],
        ),
        (
            "infinite minimum demand",
            model(1.0, 0.0, 0.0, 0.0, inf),
            &[("DISPATCHER_MIN_DEMAND", "inf")],
        ),
    ];
    for (name, m, vars) in cases {
        let e = m.check().unwrap_err().to_string();
        assert!(e.contains("finite"), "{name}: {e}");
        let e = runtime(vars).unwrap_err();
        assert!(e.contains("finite"), "{name}: {e}");
    }
}

/// Go: `TestGetWeightedJobDemandValidatesBeforeQuerying`. Ours checks the weights when the
/// configuration is read, before any Prometheus client exists; and a run refuses a model
/// that does not check before it weighs anything.
#[test]
fn go_test_get_weighted_job_demand_validates_before_querying() {
    let e = runtime(&[
        ("DISPATCHER_PROMETHEUS_URL", "http://prometheus.invalid"),
        ("DISPATCHER_RUN_WEIGHT", "inf"),
    ])
    .unwrap_err();
    assert!(e.contains("DISPATCHER_RUN_WEIGHT"), "{e}");

    let settings = Settings {
        demand: model(f64::INFINITY, 0.0, 0.0, 0.0, 1.0),
        ..Settings::default()
    };
    let files = vec![file(
        "org/repo/org-repo-main-presubmits.yaml",
        vec![job("job")],
    )];
    let e = run(
        &config("build01"),
        &inventory(vec![cluster("build01", "aws", 100)]),
        &files,
        Some(&runs(&[("job", 1.0)])),
        None,
        &settings,
    )
    .unwrap_err();
    assert!(e.contains("demand model"), "{e}");
}

/// Go: `TestGetWeightedJobDemandRejectsNonFiniteComputedDemand`: the largest finite sample
/// at run weight 2.
#[test]
fn go_test_get_weighted_job_demand_rejects_non_finite_computed_demand() {
    let v = vector(&[("job", &f64::MAX.to_string())]);
    assert_eq!(v.values["job"], f64::MAX);
    let demand = Demand::from_vectors((v, "runs".to_owned()), None, None, None);
    let weights = model(2.0, 0.0, 0.0, 0.0, 1.0);
    let e = weights
        .demand(Some(&demand.volumes), "job")
        .unwrap_err()
        .to_string();
    assert!(e.contains("weighted demand"), "{e}");

    // A run refuses it too, naming the job.
    let files = vec![file(
        "org/repo/org-repo-main-presubmits.yaml",
        vec![job("job")],
    )];
    let e = run(
        &config("build01"),
        &inventory(vec![cluster("build01", "aws", 100)]),
        &files,
        Some(&demand.volumes),
        None,
        &Settings {
            demand: weights,
            ..Settings::default()
        },
    )
    .unwrap_err();
    assert!(e.contains("weighted demand of job job"), "{e}");
}

/// Go: `TestGetJobVolumesFromPrometheusSumsDuplicateJobSeries`.
#[test]
fn go_test_get_job_volumes_from_prometheus_sums_duplicate_job_series() {
    let v = vector(&[("job", "2.5"), ("job", "3.5")]);
    assert_eq!(v.values.len(), 1);
    assert_eq!(v.values["job"], 6.0);
}

/// Go: `TestGetJobVolumesFromPrometheus`, both cases.
#[test]
fn go_test_get_job_volumes_from_prometheus() {
    // "basic case"
    let v = vector(&[
        ("pull-ci-some-test-job", "23"),
        (
            "release-openshift-ocp-installer-e2e-vsphere-upi-4.2",
            "61.04382516525817",
        ),
    ]);
    assert_eq!(
        v.values.into_iter().collect::<Vec<_>>(),
        vec![
            ("pull-ci-some-test-job".to_owned(), 23.0),
            (
                "release-openshift-ocp-installer-e2e-vsphere-upi-4.2".to_owned(),
                61.043_825_165_258_17
            ),
        ]
    );

    // "wrong type": Prometheus answers a scalar.
    let scalar =
        br#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"23"]}}"#;
    assert!(parse_vector(scalar).is_err());
}

/// Go: `TestGetJobVolumesFromPrometheus` "wrong type", the error itself: Go's says the
/// scalar "cannot be cast to vector"; ours names the type it found.
#[test]
fn go_test_get_job_volumes_from_prometheus_wrong_type_error() {
    let scalar =
        br#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"23"]}}"#;
    let e = parse_vector(scalar).unwrap_err().to_string();
    assert!(e.contains("vector") && e.contains("scalar"), "{e}");
}

/// Go: `TestPrometheusVolumesGetJobVolumes`, case "acquire volumes from client - err as
/// querying not tested": a client that answers nothing gives an error, not volumes.
/// The case "acquire volumes from cache" is not translated: ours keeps no volume cache
/// between runs (each recompute queries, and its plan records what it used).
#[test]
fn go_test_prometheus_volumes_get_job_volumes() {
    assert!(parse_vector(b"").is_err());
}

/// Go: `TestCalculateVolumeDistribution`, all five cases. Go's share of a cluster is
/// capacity / total capacity × total volume; ours is the plan's `target_share` of each
/// balanced cluster (a fraction of all placed demand), so share × total demand is Go's
/// figure.
#[test]
fn go_test_calculate_volume_distribution() {
    type Case = (
        &'static str,
        &'static [(&'static str, f64)],
        &'static [(&'static str, &'static str, u32)],
        &'static [(&'static str, f64)],
    );
    let cases: [Case; 5] = [
        (
            "equal distribution",
            &[("jobA", 1000.0)],
            &[("clusterA", "AWS", 100), ("clusterB", "GCP", 100)],
            &[("clusterA", 500.0), ("clusterB", 500.0)],
        ),
        (
            "unequal distribution",
            &[("jobA", 1000.0)],
            &[("clusterA", "AWS", 70), ("clusterB", "GCP", 30)],
            &[("clusterA", 700.0), ("clusterB", 300.0)],
        ),
        (
            "multiple jobs with total distribution",
            &[("jobA", 500.0), ("jobB", 500.0)],
            &[("clusterA", "AWS", 60), ("clusterB", "GCP", 40)],
            &[("clusterA", 600.0), ("clusterB", 400.0)],
        ),
        (
            "single cluster takes all",
            &[("jobA", 1000.0)],
            &[("clusterA", "AWS", 100)],
            &[("clusterA", 1000.0)],
        ),
        (
            "zero capacity clusters",
            &[("jobA", 1000.0)],
            // Go's map bypasses the loader, which turns capacity 0 into 100 (as ours does):
            // this inventory is built directly too.
            &[("clusterA", "AWS", 0), ("clusterB", "GCP", 100)],
            &[("clusterA", 0.0), ("clusterB", 1000.0)],
        ),
    ];
    for (name, volumes, clusters, expected) in cases {
        let inv = inventory(
            clusters
                .iter()
                .map(|(n, p, cap)| cluster(n, p, *cap))
                .collect(),
        );
        // One file per job, none listed anywhere: every job is balanced.
        let files: Vec<_> = volumes
            .iter()
            .map(|(j, _)| {
                file(
                    &format!("org/{j}/org-{j}-main-presubmits.yaml"),
                    vec![job(j)],
                )
            })
            .collect();
        let volumes: Volumes = runs(volumes);
        let plan = run(
            &config(clusters[0].0),
            &inv,
            &files,
            Some(&volumes),
            None,
            &Settings::default(),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let total = plan.summary.total_demand;
        for (c, want) in expected {
            let share = plan.clusters[*c]
                .target_share
                .unwrap_or_else(|| panic!("{name}: {c} is not balanced"));
            assert!(
                (share * total - want).abs() < 1e-3,
                "{name}: {c}: {share} × {total} is not {want}"
            );
        }
    }
}

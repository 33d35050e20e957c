//! The `dispatcher` binary end to end, on the bundled sample release.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dispatcher_core::Plan;

fn sample() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/sample")
}

fn dispatcher(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dispatcher"))
        .args(args)
        .output()
        .expect("dispatcher runs")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create a directory");
    for e in std::fs::read_dir(from).expect("list a directory") {
        let e = e.expect("read a directory entry");
        let dest = to.join(e.file_name());
        if e.file_type().expect("file type").is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).expect("copy a file");
        }
    }
}

fn read_plan(p: &Path) -> Plan {
    Plan::from_json(&std::fs::read_to_string(p).expect("read a plan")).expect("parse a plan")
}

#[test]
fn validate_passes_on_the_sample_and_names_file_and_key_on_errors() {
    let release = sample().join("release");
    let ok = dispatcher(&["validate", "--release", s(&release)]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    let dir = tempfile::tempdir().unwrap();
    copy_dir(&release, dir.path());
    let config = dir
        .path()
        .join("core-services/sanitize-prow-jobs/_config.yaml");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("'[^-]infra-periodics.yaml'", "'(unclosed'");
    std::fs::write(&config, text).unwrap();
    let bad = dispatcher(&["validate", "--release", s(dir.path())]);
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("core-services/sanitize-prow-jobs/_config.yaml: groups.app.ci.paths[0]"),
        "{err}"
    );
    // A plan refuses to run on it, and says why.
    let out = dir.path().join("plan.json");
    let plan = dispatcher(&[
        "plan",
        "--release",
        s(dir.path()),
        "--volumes",
        s(&sample().join("volumes.json")),
        "--out",
        s(&out),
    ]);
    assert_eq!(plan.status.code(), Some(1));
    assert!(!out.exists());
}

#[test]
fn a_broken_job_file_is_reported_with_its_line_and_the_rest_still_places() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&sample().join("release"), dir.path());
    let broken = dir
        .path()
        .join("ci-operator/jobs/acme/lab/acme-lab-main-presubmits.yaml");
    std::fs::write(
        &broken,
        "presubmits:\n  acme/lab:\n  - name: x\n    labels: [oops\n",
    )
    .unwrap();
    let v = dispatcher(&["validate", "--release", s(dir.path())]);
    assert_eq!(v.status.code(), Some(1));
    let err = String::from_utf8_lossy(&v.stderr);
    assert!(
        err.contains("acme-lab-main-presubmits.yaml: line "),
        "{err}"
    );
    let out = dir.path().join("plan.json");
    let p = dispatcher(&[
        "plan",
        "--release",
        s(dir.path()),
        "--volumes",
        s(&sample().join("volumes.json")),
        "--out",
        s(&out),
    ]);
    assert!(p.status.success(), "{}", String::from_utf8_lossy(&p.stderr));
    let plan = read_plan(&out);
    assert!(plan.jobs.contains_key("pull-ci-acme-widget-main-unit"));
    assert!(!plan.jobs.contains_key("pull-ci-acme-lab-main-e2e-gpu"));
}

#[test]
fn plan_is_byte_identical_across_runs_and_prints_the_cluster_table() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.json"), dir.path().join("b.json"));
    let release = sample().join("release");
    let volumes = sample().join("volumes.json");
    for out in [&a, &b] {
        let o = dispatcher(&[
            "plan",
            "--release",
            s(&release),
            "--volumes",
            s(&volumes),
            "--out",
            s(out),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let table = String::from_utf8_lossy(&o.stdout);
        assert!(
            table.contains("cluster") && table.contains("target") && table.contains("moved in"),
            "{table}"
        );
        assert!(table.contains("build01"));
    }
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let plan = read_plan(&a);
    assert_eq!(
        plan.jobs["pull-ci-acme-lab-main-e2e-gpu"]
            .cluster
            .as_deref(),
        Some("build09")
    );
    assert_eq!(
        plan.jobs["periodic-acme-config-apply"].cluster.as_deref(),
        Some("app.ci")
    );
    assert_eq!(plan.jobs["pull-ci-acme-lab-main-legacy"].cluster, None);
    // build06 is blocked: its upgrade job stays, the nightly moves.
    assert_eq!(
        plan.jobs["periodic-build06-upgrade"].cluster.as_deref(),
        Some("build06")
    );
    assert_ne!(
        plan.jobs["periodic-ci-acme-gadget-main-nightly"]
            .cluster
            .as_deref(),
        Some("build06")
    );

    let explain = dispatcher(&[
        "explain",
        "--plan",
        s(&a),
        "pull-ci-acme-widget-main-e2e-aws",
    ]);
    let text = String::from_utf8_lossy(&explain.stdout);
    assert!(
        text.contains("rule:    balanced")
            && text.contains("candidates")
            && text.contains("cloud-mismatch"),
        "{text}"
    );
    let missing = dispatcher(&["explain", "--plan", s(&a), "no-such-job"]);
    assert_eq!(missing.status.code(), Some(1));
}

#[test]
fn diff_reports_moves_per_cluster_pair() {
    let dir = tempfile::tempdir().unwrap();
    let release = sample().join("release");
    let (resolved, planned) = (dir.path().join("r.json"), dir.path().join("p.json"));
    assert!(
        dispatcher(&["resolve", "--release", s(&release), "--out", s(&resolved)])
            .status
            .success()
    );
    assert!(
        dispatcher(&[
            "plan",
            "--release",
            s(&release),
            "--volumes",
            s(&sample().join("volumes.json")),
            "--out",
            s(&planned)
        ])
        .status
        .success()
    );
    let (r, p) = (read_plan(&resolved), read_plan(&planned));
    let moved = r
        .jobs
        .iter()
        .filter(|(n, e)| p.jobs[*n].cluster != e.cluster)
        .count();
    assert!(moved > 0);
    let out = dispatcher(&["diff", s(&resolved), s(&planned)]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("{moved} job(s) moved")), "{text}");
}

#[test]
fn sanitize_writes_the_plan_back_and_resolve_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let release = dir.path().join("release");
    copy_dir(&sample().join("release"), &release);
    let planned = dir.path().join("p.json");
    assert!(
        dispatcher(&[
            "plan",
            "--release",
            s(&release),
            "--volumes",
            s(&sample().join("volumes.json")),
            "--out",
            s(&planned)
        ])
        .status
        .success()
    );
    let o = dispatcher(&["sanitize", "--release", s(&release), "--plan", s(&planned)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("buildFarm rewritten"));
    let resolved = dir.path().join("r.json");
    assert!(
        dispatcher(&["resolve", "--release", s(&release), "--out", s(&resolved)])
            .status
            .success()
    );
    let (p, r) = (read_plan(&planned), read_plan(&resolved));
    for (name, e) in &p.jobs {
        assert_eq!(r.jobs[name].cluster, e.cluster, "{name}");
    }
    // A second sanitize has nothing left to do.
    let again = dispatcher(&["sanitize", "--release", s(&release), "--plan", s(&planned)]);
    assert!(
        String::from_utf8_lossy(&again.stdout)
            .starts_with("0 job(s) in 0 file(s) rewritten; buildFarm unchanged")
    );
}

#[test]
fn a_github_style_tarball_reads_like_the_checkout() {
    let dir = tempfile::tempdir().unwrap();
    let tgz = dir.path().join("release.tar.gz");
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&tgz).unwrap(),
        flate2::Compression::fast(),
    );
    let mut builder = tar::Builder::new(gz);
    builder
        .append_dir_all("acme-release-0123abc", sample().join("release"))
        .unwrap();
    builder.into_inner().unwrap().finish().unwrap();
    let (a, b) = (dir.path().join("a.json"), dir.path().join("b.json"));
    let volumes = sample().join("volumes.json");
    assert!(
        dispatcher(&[
            "plan",
            "--release",
            s(&tgz),
            "--volumes",
            s(&volumes),
            "--out",
            s(&a)
        ])
        .status
        .success()
    );
    assert!(
        dispatcher(&[
            "plan",
            "--release",
            s(&sample().join("release")),
            "--volumes",
            s(&volumes),
            "--out",
            s(&b)
        ])
        .status
        .success()
    );
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
}

#[test]
fn delta_without_a_previous_plan_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let o = dispatcher(&[
        "plan",
        "--release",
        s(&sample().join("release")),
        "--volumes",
        s(&sample().join("volumes.json")),
        "--mode",
        "delta",
        "--out",
        s(&dir.path().join("x.json")),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--previous"));
}

//! The `dispatcher` binary end to end, on the bundled sample release.

use std::path::Path;
use std::process::{Command, Output};

use dispatcher_core::Plan;
use dispatcher_tests::{copy_tree, line_after, local_only, sample};

fn dispatcher(args: &[&str]) -> Output {
    dispatcher_with(args, &[])
}

/// The binary with a clean store environment plus `env`.
fn dispatcher_with(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dispatcher"));
    local_only(&mut cmd).args(args).envs(env.iter().copied());
    cmd.output().expect("dispatcher runs")
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
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
    copy_tree(&release, dir.path());
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
    copy_tree(&sample().join("release"), dir.path());
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
    // The pull request comment's body.
    let md = stdout(&dispatcher(&[
        "diff",
        "--format",
        "markdown",
        s(&resolved),
        s(&planned),
    ]));
    assert!(
        md.contains(&format!("{moved} existing jobs would move")),
        "{md}"
    );
    assert!(md.contains("| from | to | jobs | demand |"), "{md}");
    assert!(
        md.contains(
            "| cluster | target before | achieved before | target after | achieved after |"
        ),
        "{md}"
    );
    assert!(md.contains("```mermaid\nxychart-beta"), "{md}");
}

/// `dispatcher plan --previous live` follows the serving generation of the configured store.
#[test]
fn plan_follows_the_live_generation() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let env = [("DISPATCHER_LOCAL_DIR", s(&store))];
    let release = sample().join("release");
    let volumes = sample().join("volumes.json");
    let (first, second) = (dir.path().join("1.json"), dir.path().join("2.json"));
    let plan = |out: &Path, previous: &[&str]| {
        let mut args = vec![
            "plan",
            "--release",
            s(&release),
            "--volumes",
            s(&volumes),
            "--out",
            s(out),
        ];
        args.extend_from_slice(previous);
        dispatcher_with(&args, &env)
    };
    let none = plan(&second, &["--previous", "live"]);
    assert_eq!(none.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&none.stderr).contains("no generation is serving"));
    assert!(plan(&first, &[]).status.success());
    stdout(&dispatcher_with(&["publish", "--plan", s(&first)], &env));
    let live = plan(&second, &["--previous", "live"]);
    assert!(
        live.status.success(),
        "{}",
        String::from_utf8_lossy(&live.stderr)
    );
    assert!(
        String::from_utf8_lossy(&live.stderr).contains("previous: the baseline of generation 1")
    );
    let published = String::from_utf8_lossy(&std::fs::read(&first).unwrap()).into_owned();
    let digest = dispatcher_app::publish::plan_digest(&published);
    assert_eq!(
        read_plan(&second).inputs.previous.as_deref(),
        Some(digest.as_str())
    );
}

#[test]
fn sanitize_writes_the_plan_back_and_resolve_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let release = dir.path().join("release");
    copy_tree(&sample().join("release"), &release);
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

/// publish, status, history and rollback against the store `env` names.
fn store_commands_work(env: &[(&str, &str)], work: &Path) {
    let release = sample().join("release");
    let (planned, resolved) = (work.join("p.json"), work.join("r.json"));
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
    assert!(
        dispatcher(&["resolve", "--release", s(&release), "--out", s(&resolved)])
            .status
            .success()
    );
    let job = "pull-ci-acme-widget-main-e2e-aws";
    let (p, r) = (read_plan(&planned), read_plan(&resolved));
    let (planned_cluster, resolved_cluster) = (
        p.jobs[job].cluster.clone().expect("planned cluster"),
        r.jobs[job].cluster.clone().expect("resolved cluster"),
    );
    assert_ne!(
        planned_cluster, resolved_cluster,
        "the sample moves this job"
    );

    let empty = stdout(&dispatcher_with(&["status"], env));
    assert!(empty.contains("nothing published yet"), "{empty}");
    let first = stdout(&dispatcher_with(&["publish", "--plan", s(&resolved)], env));
    assert!(first.contains("published generation 1"), "{first}");
    let second = stdout(&dispatcher_with(&["publish", "--plan", s(&planned)], env));
    assert!(second.contains("published generation 2"), "{second}");
    let again = stdout(&dispatcher_with(&["publish", "--plan", s(&planned)], env));
    assert!(again.contains("already serves this plan"), "{again}");
    let status = stdout(&dispatcher_with(&["status"], env));
    assert!(
        status.contains("generation 2, published") && status.contains("(manual)"),
        "{status}"
    );
    assert!(status.contains("build01"), "per-cluster shares: {status}");
    let rolled = stdout(&dispatcher_with(&["rollback", "--to", "1"], env));
    assert!(rolled.contains("published generation 3"), "{rolled}");
    let history = stdout(&dispatcher_with(&["history", job], env));
    let lines: Vec<&str> = history.lines().collect();
    assert_eq!(lines.len(), 3, "{history}");
    assert!(
        lines[1].contains(&format!("{resolved_cluster} -> {planned_cluster}")),
        "{history}"
    );
    assert!(
        lines[2].contains("rollback")
            && lines[2].contains(&format!("{planned_cluster} -> {resolved_cluster}")),
        "{history}"
    );
    let bad = dispatcher_with(&["rollback", "--to", "9"], env);
    assert_eq!(bad.status.code(), Some(1));
}

#[test]
fn store_commands_work_on_the_local_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    store_commands_work(&[("DISPATCHER_LOCAL_DIR", s(&store))], dir.path());
    assert!(store.join("store.db").is_file());
}

#[test]
fn the_local_store_is_the_default_under_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_dispatcher"))
        .arg("status")
        .current_dir(dir.path())
        .env_remove("DISPATCHER_TABLE")
        .env_remove("DISPATCHER_BUCKET")
        .env_remove("DISPATCHER_LOCAL_DIR")
        .env_remove("DISPATCHER_STORE")
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(dir.path().join(".dispatcher/store.db").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_commands_work_on_dynamodb_and_s3() {
    if dispatcher_aws::emulator::endpoint("store_commands_work_on_dynamodb_and_s3").is_none() {
        return;
    }
    let clients = dispatcher_aws::Clients::from_env(true).await;
    let (_, table, bucket) =
        dispatcher_aws::emulator::fresh(&clients, include_str!("../../../template.yaml"))
            .await
            .expect("provision");
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().to_owned();
    tokio::task::spawn_blocking(move || {
        store_commands_work(
            &[
                ("DISPATCHER_TABLE", table.as_str()),
                ("DISPATCHER_BUCKET", bucket.as_str()),
            ],
            &work,
        )
    })
    .await
    .unwrap();
    assert!(!dir.path().join(".dispatcher").exists());
}

/// One HTTP/1.1 request over a fresh connection: the status and the body.
fn http(addr: &str, request: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to serve");
    stream
        .write_all(request.as_bytes())
        .expect("send the request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("read the response");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn lookup(addr: &str, job: &str) -> (u16, String) {
    let body = format!(r#"{{"job":"{job}"}}"#);
    http(
        addr,
        &format!(
            "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

#[test]
fn serve_demo_answers_the_readmes_lookups() {
    use std::io::BufRead;
    let work = tempfile::tempdir().expect("temporary directory");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dispatcher"));
    local_only(&mut cmd)
        .args(["serve", "--demo", "--addr", "127.0.0.1:0"])
        .current_dir(work.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().expect("dispatcher serve --demo starts");
    // It says where it listens once the first generation is published.
    let lines = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut addr = None;
    for line in lines.lines() {
        let line = line.expect("a line of output");
        if let Some(a) = line.strip_prefix("serving on http://") {
            addr = Some(a.trim().to_owned());
            break;
        }
    }
    let addr = addr.expect("serve --demo printed its address");
    // The reader is gone from here on (stdout closed, as under `| head -1`): the server must
    // keep answering.
    let (status, body) = lookup(&addr, "pull-ci-acme-widget-main-unit");
    let (missing, _) = lookup(&addr, "nope");
    let (explained, explanation) = http(
        &addr,
        &format!(
            "GET /explain/pull-ci-acme-widget-main-unit HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        ),
    );
    // Ctrl-C: a graceful stop, which removes the demo's scratch store.
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let stopped = child.wait().expect("serve stops");
    assert!(stopped.success(), "{stopped:?}");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""cluster":"build"#), "{body}");
    assert_eq!(missing, 404, "an unknown job: Prow falls back");
    assert_eq!(explained, 200, "{explanation}");
    assert!(explanation.contains("candidates"), "{explanation}");
}

/// A copy of the sample release whose `_config.yaml` (or `_clusters.yaml`) is edited.
fn edited_release(edit: impl Fn(&str, &str) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    copy_tree(&sample().join("release"), dir.path());
    for file in ["_config.yaml", "_clusters.yaml"] {
        let path = dir
            .path()
            .join("core-services/sanitize-prow-jobs")
            .join(file);
        let text = std::fs::read_to_string(&path).expect("read the sample");
        std::fs::write(&path, edit(file, &text)).expect("write the copy");
    }
    dir
}

/// `validate`, `resolve` and `plan` all refuse the release (exit 1, nothing written),
/// naming `key` in `file`.
fn refused_everywhere(release: &Path, file: &str, key: &str) {
    let out = release.join("plan.json");
    let volumes = sample().join("volumes.json");
    for args in [
        vec!["validate", "--release", s(release)],
        vec!["resolve", "--release", s(release), "--out", s(&out)],
        vec![
            "plan",
            "--release",
            s(release),
            "--volumes",
            s(&volumes),
            "--out",
            s(&out),
        ],
    ] {
        let o = dispatcher(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        let want = format!("fatal: core-services/sanitize-prow-jobs/{file}: {key}: ");
        assert!(err.contains(&want), "{args:?} should name {want}: {err}");
        assert!(!out.exists(), "{args:?} wrote a plan");
    }
}

#[test]
fn heads_validation_refuses_what_ci_tools_refuses() {
    let manual = |replacement: &'static str| {
        edited_release(move |f, t| {
            if f == "_config.yaml" {
                t.replace("manualClusters:\n- app.ci\n", replacement)
            } else {
                t.to_owned()
            }
        })
    };
    let empty = manual("manualClusters:\n- app.ci\n- ''\n");
    refused_everywhere(empty.path(), "_config.yaml", "manualClusters[1]");
    let twice = manual("manualClusters:\n- app.ci\n- app.ci\n");
    refused_everywhere(twice.path(), "_config.yaml", "manualClusters[1]");
    let automatic = manual("manualClusters:\n- app.ci\n- build03\n");
    refused_everywhere(automatic.path(), "_config.yaml", "manualClusters[1]");
    let provider = edited_release(|f, t| {
        if f == "_clusters.yaml" {
            t.replace("gcp:", "azure:")
        } else {
            t.to_owned()
        }
    });
    refused_everywhere(provider.path(), "_clusters.yaml", "azure");
    let two_clouds = edited_release(|f, t| {
        if f == "_config.yaml" {
            t.replace("  gcp:\n", "  gcp:\n    build01: {}\n")
        } else {
            t.to_owned()
        }
    });
    refused_everywhere(two_clouds.path(), "_config.yaml", "buildFarm.gcp.build01");
    let re2 = edited_release(|f, t| {
        if f == "_config.yaml" {
            t.replace("'[^-]infra-periodics.yaml'", "'infra-[0-9]++.yaml'")
        } else {
            t.to_owned()
        }
    });
    refused_everywhere(re2.path(), "_config.yaml", "groups.app.ci.paths[0]");
}

#[test]
fn weights_that_cannot_weigh_exit_1_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("plan.json");
    let release = sample().join("release");
    let volumes = sample().join("volumes.json");
    for (flag, value) in [
        ("--run-weight", "NaN"),
        ("--hour-weight", "inf"),
        ("--cpu-hour-weight", "-1"),
        ("--memory-gib-hour-weight", "1e999"),
        ("--min-demand", "0"),
    ] {
        let o = dispatcher(&[
            "plan",
            "--release",
            s(&release),
            "--volumes",
            s(&volumes),
            flag,
            value,
            "--out",
            s(&out),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{flag} {value}: {err}");
        assert!(err.contains(flag), "{flag} {value}: {err}");
        assert!(!out.exists());
    }
}

#[test]
fn cpu_and_memory_vectors_weigh_as_heads_demand_model() {
    let dir = tempfile::tempdir().unwrap();
    let vector = |name: &str, values: &[(&str, f64)]| {
        let result: Vec<serde_json::Value> = values
            .iter()
            .map(|(job, v)| serde_json::json!({"metric": {"job_name": job}, "value": [1, v.to_string()]}))
            .collect();
        let path = dir.path().join(name);
        let body = serde_json::json!({"status": "success", "data": {"resultType": "vector", "result": result}});
        std::fs::write(&path, body.to_string()).unwrap();
        path
    };
    let job = "pull-ci-acme-widget-main-unit";
    let runs = vector("runs.json", &[(job, 10.0)]);
    // 7,200 CPU-seconds = 2 CPU-hours; two series of 2 GiB-hours each = 4 GiB-hours.
    let gib_hour = 3600.0 * 1024.0 * 1024.0 * 1024.0;
    let cpu = vector("cpu.json", &[(job, 7200.0)]);
    let memory = vector(
        "memory.json",
        &[(job, 2.0 * gib_hour), (job, 2.0 * gib_hour)],
    );
    let out = dir.path().join("plan.json");
    let o = dispatcher(&[
        "plan",
        "--release",
        s(&sample().join("release")),
        "--volumes",
        s(&runs),
        "--cpu-seconds",
        s(&cpu),
        "--memory-byte-seconds",
        s(&memory),
        "--out",
        s(&out),
    ]);
    stdout(&o);
    let plan = read_plan(&out);
    // HEAD's defaults: 1 per run, 1 per CPU-hour, 0.25 per GiB-hour.
    assert_eq!(plan.jobs[job].demand, 10.0 + 2.0 + 0.25 * 4.0);
    assert!(plan.inputs.cpu.is_some() && plan.inputs.memory.is_some());
    // A weighted sum that overflows is an error naming the job, not an infinite demand.
    let o = dispatcher(&[
        "plan",
        "--release",
        s(&sample().join("release")),
        "--volumes",
        s(&vector("huge.json", &[(job, 1e308)])),
        "--run-weight",
        "10",
        "--out",
        s(&dir.path().join("huge-plan.json")),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(job) && err.contains("not finite"), "{err}");
}

#[test]
fn a_broken_config_is_reported_alone_and_causes_are_said_once() {
    let broken = edited_release(|f, t| {
        if f == "_config.yaml" {
            "default: build01\ngroups:\n  a: [b\n".to_owned()
        } else {
            t.to_owned()
        }
    });
    let v = dispatcher(&["validate", "--release", s(broken.path())]);
    let err = String::from_utf8_lossy(&v.stderr);
    assert_eq!(v.status.code(), Some(1));
    // The cause, alone: not what follows from it (no default, no groups).
    let findings: Vec<&str> = err.lines().filter(|l| l.starts_with("fatal:")).collect();
    assert_eq!(findings.len(), 1, "{err}");
    assert!(
        findings[0].contains("_config.yaml: line 4: not valid YAML"),
        "{err}"
    );
    let missing = broken.path().join("nope.json");
    let p = dispatcher(&[
        "plan",
        "--release",
        s(&sample().join("release")),
        "--volumes",
        s(&missing),
        "--out",
        s(&broken.path().join("plan.json")),
    ]);
    let err = String::from_utf8_lossy(&p.stderr);
    assert_eq!(p.status.code(), Some(1));
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
}

/// `dispatcher override --api` against a local server: a drain planned, applied, approved by
/// a second person, seen by the lookup, cancelled; the same through the bearer token the
/// server prints.
#[test]
fn override_commands_drive_a_local_server_through_its_control_api() {
    let work = tempfile::tempdir().expect("temporary directory");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dispatcher"));
    local_only(&mut cmd)
        .args(["serve", "--demo", "--addr", "127.0.0.1:0"])
        .current_dir(work.path())
        .env("DISPATCHER_TRIGGER_TOKEN", "serve-t0ken")
        .env("DISPATCHER_PROW_CACHE_TTL", "10s")
        .env("DISPATCHER_LOOKUP_REFRESH", "0s")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().expect("dispatcher serve --demo starts");
    let addr = line_after(&mut child, "serving on http://");
    let api = format!("http://{addr}/control/v1");
    let cli = |actor: &str, args: &[&str]| {
        let mut all = vec![
            "override",
            "--api",
            &api,
            "--token",
            "serve-t0ken",
            "--actor",
            actor,
        ];
        all.extend_from_slice(args);
        dispatcher(&all)
    };
    let json = |o: &Output| serde_json::from_str::<serde_json::Value>(&stdout(o)).expect("JSON");

    let before = lookup(&addr, "pull-ci-acme-widget-main-unit").1;
    let cluster = serde_json::from_str::<serde_json::Value>(&before).expect("JSON")["cluster"]
        .as_str()
        .expect("a cluster")
        .to_owned();
    let plan = json(&cli(
        "alice",
        &[
            "plan",
            "--kind",
            "drain",
            "--cluster",
            &cluster,
            "--duration",
            "30m",
            "--reason",
            "disk pressure",
            "--idempotency-key",
            "inc-7",
        ],
    ));
    assert_eq!(plan["required_approvals"], 2, "{plan}");
    let id = plan["id"].as_str().expect("a plan id");
    let pending = json(&cli("alice", &["apply", id, "--confirm-unprotected"]));
    assert_eq!(pending["state"], "pending", "{pending}");
    let oid = pending["id"].as_str().expect("an override id");
    let again = cli("alice", &["approve", oid]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("duplicate_approval"));
    let active = json(&cli("bob", &["approve", oid]));
    assert_eq!(active["state"], "active", "{active}");
    let during = lookup(&addr, "pull-ci-acme-widget-main-unit").1;
    assert!(
        !during.contains(&format!("\"{cluster}\"")) && during.contains("\"override\""),
        "{during}"
    );
    let status = json(&cli("carol", &["status"]));
    assert_eq!(status["active"][0]["id"], oid);
    let revoked = json(&cli("carol", &["cancel", oid]));
    assert_eq!(revoked["state"], "revoked");
    let after = lookup(&addr, "pull-ci-acme-widget-main-unit").1;
    let unauthenticated = dispatcher(&["override", "--api", &api, "--token", "wrong", "status"]);

    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let _ = child.wait();
    assert!(after.contains(&format!("\"{cluster}\"")), "{after}");
    assert_eq!(unauthenticated.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unauthenticated.stderr).contains("unauthenticated"));
}

/// Against the deployed API the CLI signs with the caller's AWS credentials (SigV4 for
/// `execute-api`): a local listener records what it receives.
#[test]
fn override_commands_sign_requests_for_the_deployed_api() {
    use std::io::{BufRead, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let addr = listener.local_addr().expect("its address");
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().expect("a request");
        let mut reader = std::io::BufReader::new(stream.try_clone().expect("clone"));
        let mut head = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("a header line");
            if line == "\r\n" || line.is_empty() {
                break;
            }
            head.push(line.trim_end().to_owned());
        }
        let length: usize = head
            .iter()
            .find_map(|h| {
                h.to_ascii_lowercase()
                    .strip_prefix("content-length: ")
                    .map(|v| v.parse().unwrap_or(0))
            })
            .unwrap_or(0);
        let mut body = vec![0; length];
        reader.read_exact(&mut body).expect("the body");
        let answer = r#"{"generation":3,"active":[],"pending":[]}"#;
        let mut stream = stream;
        write!(stream, "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}", answer.len()).expect("answer");
        head
    });
    let out = dispatcher_with(
        &[
            "override",
            "--api",
            &format!("http://{addr}/control/v1/"),
            "status",
        ],
        &[
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            (
                "AWS_SECRET_ACCESS_KEY",
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            ),
            ("AWS_REGION", "us-east-1"),
            ("AWS_CONFIG_FILE", "/nonexistent"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"),
            ("USER", "someone"),
        ],
    );
    let head = server.join().expect("the listener");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(head[0], "GET /control/v1/status HTTP/1.1");
    let header = |name: &str| {
        head.iter()
            .find_map(|h| {
                h.split_once(": ")
                    .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.to_owned())
            })
            .unwrap_or_default()
    };
    let auth = header("authorization");
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
        "{auth}"
    );
    assert!(
        auth.contains("/us-east-1/execute-api/aws4_request"),
        "{auth}"
    );
    assert!(
        auth.contains("SignedHeaders=") && auth.contains("host") && auth.contains("Signature="),
        "{auth}"
    );
    assert!(!header("x-amz-date").is_empty());
    assert!(stdout(&out).contains("\"generation\": 3"));
}

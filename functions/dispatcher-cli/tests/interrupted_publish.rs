//! `kill -9` at random points of a publish, then `serve` on the same store: it starts every
//! time and answers from one whole generation; and a re-run of the killed publish says when
//! its claim expires and how to take it over.

use std::io::{BufRead, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dispatcher_core::model::{Cluster, DispatcherConfig, Inventory, Job, JobFile, JobKind, Labels};
use dispatcher_core::{Inputs, Plan, Settings, Strategy};

/// Jobs in the plans: enough that a publish takes a while on the local store.
const JOBS: usize = 30_000;

fn sample_release() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/sample/release")
}

/// A plan of [`JOBS`] jobs, each pinned (by label) to `cluster`.
fn plan_on(cluster: &str) -> Plan {
    let mut inventory = Inventory::default();
    for name in ["build01", "build02"] {
        inventory
            .clusters
            .insert(name.to_owned(), Cluster::new(name, "aws", 100));
    }
    let config = DispatcherConfig {
        default: "build01".to_owned(),
        ..DispatcherConfig::default()
    };
    let files: Vec<JobFile> = (0..JOBS / 100)
        .map(|f| JobFile {
            path: format!("ci-operator/jobs/o/r{f}/r{f}-presubmits.yaml"),
            size: 100,
            jobs: (0..100)
                .map(|j| Job {
                    name: format!("job-{f:04}-{j:03}"),
                    kind: JobKind::Presubmit,
                    agent: String::new(),
                    cluster: None,
                    labels: Labels::from([(
                        "ci-operator.openshift.io/cluster".to_owned(),
                        cluster.to_owned(),
                    )]),
                    containers: vec![],
                })
                .collect(),
        })
        .collect();
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
    let settings = Settings {
        strategy: Strategy::Balanced,
        ..Settings::default()
    };
    dispatcher_core::run(&inputs, &settings).expect("the plan")
}

fn dispatcher(store: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dispatcher"));
    for var in ["DISPATCHER_TABLE", "DISPATCHER_BUCKET", "DISPATCHER_STORE"] {
        cmd.env_remove(var);
    }
    cmd.env("DISPATCHER_LOCAL_DIR", store);
    cmd
}

fn publish(store: &Path, plan: &Path, expect: u64) -> Child {
    dispatcher(store)
        .args(["publish", "--plan"])
        .arg(plan)
        .args(["--expect-generation", &expect.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("publish starts")
}

/// A small pseudo-random generator; the seed is printed, so a run can be replayed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `serve` on the store: its address once it says it serves (it must start), and the child.
fn serve(store: &Path) -> (String, Child) {
    let mut child = dispatcher(store)
        .args(["serve", "--addr", "127.0.0.1:0", "--release"])
        .arg(sample_release())
        .arg("--volumes")
        .arg(sample_release().join("../volumes.json"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = Vec::new();
    while let Some(Ok(line)) = lines.next() {
        if let Some(addr) = line.strip_prefix("serving on http://") {
            return (addr.to_owned(), child);
        }
        seen.push(line);
    }
    let status = child.wait().expect("serve ended");
    panic!("serve did not start ({status}): {seen:?}");
}

/// `POST /` for `job`: (status, cluster, the generation header).
fn lookup(addr: &str, job: &str) -> (u16, Option<String>, Option<u64>) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let body = format!(r#"{{"job":"{job}"}}"#);
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut response = String::new();
    s.read_to_string(&mut response).expect("read");
    let status = response[9..12].parse().expect("status");
    let header = response
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("x-dispatcher-generation: ")
                .map(str::to_owned)
        })
        .and_then(|g| g.trim().parse().ok());
    let cluster = response
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str::<serde_json::Value>(b).ok())
        .and_then(|v| v["cluster"].as_str().map(str::to_owned));
    (status, cluster, header)
}

#[test]
fn serve_starts_after_a_publish_killed_anywhere_and_serves_one_whole_generation() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (p1, p2) = (dir.path().join("p1.json"), dir.path().join("p2.json"));
    std::fs::write(&p1, plan_on("build01").to_json()).expect("write p1");
    std::fs::write(&p2, plan_on("build02").to_json()).expect("write p2");

    // How long a whole publish of the second plan takes here: the window to kill in.
    let timing = dir.path().join("timing");
    assert!(publish(&timing, &p1, 0).wait().expect("p1").success());
    let started = Instant::now();
    assert!(publish(&timing, &p2, 1).wait().expect("p2").success());
    let whole = started.elapsed();

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let mut rng = Lcg(seed);
    eprintln!("seed {seed}; a whole publish takes {whole:?}");
    let probes: Vec<String> = (0..JOBS / 100)
        .step_by(37)
        .map(|f| format!("job-{f:04}-{:03}", f % 100))
        .collect();
    let mut outcomes = Vec::new();
    for round in 0..10 {
        let store = dir.path().join(format!("store-{round}"));
        assert!(publish(&store, &p1, 0).wait().expect("p1").success());
        let mut child = publish(&store, &p2, 1);
        // A point anywhere in the publish, and a little before and after it.
        let at = whole.mul_f64(rng.next() * 1.1);
        std::thread::sleep(at);
        child.kill().expect("kill -9");
        let status = child.wait().expect("reaped");

        let (addr, mut server) = serve(&store);
        let answers: Vec<_> = probes.iter().map(|j| lookup(&addr, j)).collect();
        server.kill().expect("stop serve");
        let _ = server.wait();
        let generation = answers[0].2.expect("a generation header");
        let want = match generation {
            1 => "build01",
            2 => "build02",
            g => panic!("round {round}: generation {g}"),
        };
        for ((status, cluster, g), job) in answers.iter().zip(&probes) {
            assert_eq!(*status, 200, "round {round}: {job}");
            assert_eq!(
                *g,
                Some(generation),
                "round {round}: {job} from another generation"
            );
            assert_eq!(
                cluster.as_deref(),
                Some(want),
                "round {round}: {job} mixes generations"
            );
        }
        outcomes.push(format!(
            "killed after {at:?} ({}) -> generation {generation}",
            if status.success() {
                "had finished"
            } else {
                "killed"
            }
        ));
    }
    eprintln!("{}", outcomes.join("\n"));
}

#[test]
fn a_rerun_of_a_killed_publish_says_until_when_and_names_take_over() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (p1, p2) = (dir.path().join("p1.json"), dir.path().join("p2.json"));
    std::fs::write(&p1, plan_on("build01").to_json()).expect("write p1");
    std::fs::write(&p2, plan_on("build02").to_json()).expect("write p2");
    let store = dir.path().join("store");
    assert!(publish(&store, &p1, 0).wait().expect("p1").success());
    // Killed once it has claimed the generation: the claim is on the pointer.
    let mut child = publish(&store, &p2, 1);
    let db = store.join("dispatcher.sqlite");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !claimed(&store) {
        assert!(
            Instant::now() < deadline,
            "the publish never claimed {}",
            db.display()
        );
        std::thread::yield_now();
    }
    child.kill().expect("kill -9");
    let _ = child.wait();
    let rerun = publish(&store, &p2, 1).wait_with_output().expect("rerun");
    let err = String::from_utf8_lossy(&rerun.stderr);
    // Killed seconds before its commit (the publish of 30,000 changed jobs takes that
    // long), the claim holds the generation.
    assert!(!rerun.status.success(), "the killed publish had committed");
    assert!(err.contains("--take-over"), "{err}");
    let year = err.find(" 20").expect("a date");
    assert!(err[year..].contains('T') && err.contains("(UTC)"), "{err}");
    let take_over = dispatcher(&store)
        .args(["publish", "--take-over", "--plan"])
        .arg(&p2)
        .output()
        .expect("take over");
    assert!(
        take_over.status.success(),
        "{}",
        String::from_utf8_lossy(&take_over.stderr)
    );
}

/// Whether `dispatcher status` shows a publish in progress.
fn claimed(store: &Path) -> bool {
    let out = dispatcher(store).arg("status").output().expect("status");
    String::from_utf8_lossy(&out.stdout).contains("in progress")
}

//! Volumes from a real Prometheus (started by the test command with backfilled
//! `prowjob_state_transitions`), queried with the dispatcher's PromQL; and its failures.

#[path = "../../../tests/support/proc.rs"]
mod proc;

use std::io::Write as _;
use std::time::Duration;

use dispatcher_app::ports::DemandSource;
use dispatcher_config::PrometheusSettings;
use dispatcher_prometheus::{Auth, PrometheusDemand};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn config(url: &str) -> PrometheusSettings {
    PrometheusSettings {
        url: url.to_owned(),
        token: None,
        user: None,
        timeout: Duration::from_secs(5),
        window: "7d".to_owned(),
        offset: Duration::ZERO,
        durations_query: None,
        cpu_query: None,
        memory_query: None,
        runs_query: None,
    }
}

/// The backfilled Prometheus and its evaluation time.
fn real() -> Option<(String, i64)> {
    let url = std::env::var("DISPATCHER_TEST_PROMETHEUS_URL").ok();
    let time = std::env::var("DISPATCHER_TEST_PROMETHEUS_TIME")
        .ok()
        .and_then(|t| t.parse().ok());
    match (url, time) {
        (Some(u), Some(t)) => Some((u, t)),
        _ if std::env::var_os("DISPATCHER_REQUIRE_PROMETHEUS").is_some() => {
            panic!(
                "DISPATCHER_REQUIRE_PROMETHEUS is set but DISPATCHER_TEST_PROMETHEUS_URL/TIME are not"
            )
        }
        _ => {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: no Prometheus (./infra/test.sh starts one)"
            );
            None
        }
    }
}

#[tokio::test]
async fn the_dispatchers_query_reads_run_counts() {
    let Some((url, time)) = real() else { return };
    let demand = PrometheusDemand::new(config(&url), Auth::None)
        .unwrap()
        .demand(time)
        .await
        .unwrap();
    let runs = &demand.volumes.runs;
    assert_eq!(runs.len(), 3, "{runs:?}");
    // The backfill adds 12, 3 and 1 runs an hour; the window is 168 hours.
    for (job, per_hour) in [
        ("pull-ci-acme-widget-main-unit", 12.0),
        ("pull-ci-acme-widget-main-e2e-aws", 3.0),
        ("periodic-acme-nightly", 1.0),
    ] {
        let got = runs[job];
        assert!((got - per_hour * 168.0).abs() < per_hour, "{job}: {got}");
    }
    assert!(demand.runs_digest.starts_with("sha256:"));
    // A shorter window counts less: the window is really configurable.
    let day = PrometheusSettings {
        window: "1d".to_owned(),
        ..config(&url)
    };
    let one_day = PrometheusDemand::new(day, Auth::None)
        .unwrap()
        .demand(time)
        .await
        .unwrap();
    assert!((one_day.volumes.runs["pull-ci-acme-widget-main-unit"] - 288.0).abs() < 12.0);
    // The durations query is weighed as hours.
    let with_durations = PrometheusSettings {
        durations_query: Some(
            r#"sum(increase(prowjob_state_transitions{state="pending"}[7d])) by (job_name) * 3600"#
                .to_owned(),
        ),
        ..config(&url)
    };
    let d = PrometheusDemand::new(with_durations, Auth::None)
        .unwrap()
        .demand(time)
        .await
        .unwrap();
    let hours = d.volumes.hours.unwrap();
    assert!((hours["periodic-acme-nightly"] - 168.0).abs() < 1.0);
    // HEAD's CPU and memory queries: CPU seconds as CPU-hours, byte-seconds as GiB-hours.
    const RUNS: &str =
        r#"sum(increase(prowjob_state_transitions{state="pending"}[7d])) by (job_name)"#;
    let with_resources = PrometheusSettings {
        cpu_query: Some(format!("{RUNS} * 7200")),
        memory_query: Some(format!("{RUNS} * 3600 * 1073741824")),
        ..config(&url)
    };
    let r = PrometheusDemand::new(with_resources, Auth::None)
        .unwrap()
        .demand(time)
        .await
        .unwrap();
    let (cpu, memory) = (
        r.volumes.cpu_hours.unwrap(),
        r.volumes.memory_gib_hours.unwrap(),
    );
    assert!(
        (cpu["periodic-acme-nightly"] - 2.0 * 168.0).abs() < 2.0,
        "{cpu:?}"
    );
    assert!(
        (memory["periodic-acme-nightly"] - 168.0).abs() < 1.0,
        "{memory:?}"
    );
    assert!(r.cpu_digest.is_some() && r.memory_digest.is_some());
    // Two series of one job (another label set) are summed, as HEAD does.
    let doubled = PrometheusSettings {
        runs_query: Some(format!(
            r#"{RUNS} or label_replace({RUNS}, "copy", "1", "", "")"#
        )),
        ..config(&url)
    };
    let twice = PrometheusDemand::new(doubled, Auth::None)
        .unwrap()
        .demand(time)
        .await
        .unwrap();
    let once = PrometheusDemand::new(config(&url), Auth::None)
        .unwrap()
        .demand(time)
        .await
        .unwrap();
    for (job, runs) in &once.volumes.runs {
        assert!((twice.volumes.runs[job] - 2.0 * runs).abs() < 1e-6, "{job}");
    }
}

#[tokio::test]
async fn an_error_response_is_not_retryable() {
    let Some((url, time)) = real() else { return };
    let bad = PrometheusSettings {
        runs_query: Some("sum(".to_owned()),
        ..config(&url)
    };
    let e = PrometheusDemand::new(bad, Auth::None)
        .unwrap()
        .demand(time)
        .await
        .unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(
        dispatcher_core::chain(&e).contains("bad_data")
            || dispatcher_core::chain(&e).contains("parse"),
        "{e}"
    );
    // Nothing in the window: an empty vector is suspicious, not "every job weighs zero".
    let empty = PrometheusSettings {
        runs_query: Some(r#"prowjob_state_transitions{state="nope"}"#.to_owned()),
        ..config(&url)
    };
    let e = PrometheusDemand::new(empty, Auth::None)
        .unwrap()
        .demand(time)
        .await
        .unwrap_err();
    assert!(dispatcher_core::chain(&e).contains("empty"), "{e}");
}

/// A Prometheus of the test's own (the binary the test command installed), so that it
/// can be stopped, resumed and killed without disturbing the shared one. Killed on drop.
struct Own {
    child: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Own {
    /// `None` (the test skips) when no `prometheus` binary is installed and the test
    /// command did not require one.
    async fn start(web_config: Option<&str>) -> Option<Self> {
        let have = std::process::Command::new("prometheus")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !have {
            assert!(
                std::env::var_os("DISPATCHER_REQUIRE_PROMETHEUS").is_none(),
                "DISPATCHER_REQUIRE_PROMETHEUS is set but there is no prometheus binary"
            );
            let _ = writeln!(std::io::stderr(), "SKIPPED: no prometheus binary");
            return None;
        }
        let dir = tempfile::tempdir().expect("temporary directory");
        std::fs::write(
            dir.path().join("prometheus.yml"),
            "global: {}\nscrape_configs: []\n",
        )
        .expect("configuration");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut cmd = std::process::Command::new("prometheus");
        cmd.arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
        if let Some(web) = web_config {
            let file = dir.path().join("web.yml");
            std::fs::write(&file, web).expect("web configuration");
            cmd.arg(format!("--web.config.file={}", file.display()));
        }
        let child = cmd.spawn().expect("start prometheus");
        let own = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        // Ready once it answers at all (with credentials configured, a 401 is an answer).
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if client
                .get(format!("{}/-/ready", own.url))
                .send()
                .await
                .is_ok()
            {
                return Some(own);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("prometheus did not start on {}", own.url);
    }

    fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal}");
    }

    /// Waits until every thread is, or is no longer, stopped (signals are asynchronous).
    fn wait_stopped(&self, stopped: bool) {
        let settled = proc::wait_until(self.child.id(), |states| {
            !states.is_empty() && states.iter().all(|s| matches!(s, 'T' | 't') == stopped)
        });
        assert!(
            settled,
            "prometheus did not become stopped={stopped} within 5 s"
        );
    }
}

impl Drop for Own {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A query that a Prometheus without data answers with one series for job `a`.
fn constant() -> Option<String> {
    Some(r#"label_replace(vector(7), "job_name", "a", "", "")"#.to_owned())
}

#[tokio::test]
async fn a_stopped_prometheus_times_out_and_a_killed_one_is_down_both_retryable() {
    let Some(mut own) = Own::start(None).await else {
        return;
    };
    let quick = PrometheusSettings {
        timeout: Duration::from_millis(300),
        runs_query: constant(),
        ..config(&own.url)
    };
    let demand = PrometheusDemand::new(quick.clone(), Auth::None).unwrap();
    assert_eq!(demand.demand(1000).await.unwrap().volumes.runs["a"], 7.0);
    // Stopped, it accepts connections (the kernel does) and answers nothing: slow.
    own.signal("STOP");
    own.wait_stopped(true);
    let started = std::time::Instant::now();
    let e = demand.demand(1000).await.unwrap_err();
    assert!(
        e.is_retryable() && dispatcher_core::chain(&e).contains("timed out"),
        "{e}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    own.signal("CONT");
    own.wait_stopped(false);
    // Resumed, it answers again (a new client: the old one's pooled connection went stale
    // while the server was stopped).
    let resumed = PrometheusDemand::new(quick.clone(), Auth::None).unwrap();
    assert_eq!(resumed.demand(1000).await.unwrap().volumes.runs["a"], 7.0);
    // Killed, nothing answers on its port: down.
    own.child.kill().unwrap();
    own.child.wait().unwrap();
    let e = PrometheusDemand::new(quick, Auth::None)
        .unwrap()
        .demand(1000)
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert!(dispatcher_core::chain(&e).contains("cannot connect"), "{e}");
}

#[tokio::test]
async fn basic_auth_is_what_prometheus_checks() {
    // The password `pass`, bcrypt-hashed as Prometheus' web configuration wants it.
    let web =
        "basic_auth_users:\n  user: $2b$12$0uWozYBzAnb9EP8EHIhJgeAxAtOTLk6ZUWX/TSNbZZ4sWwfdXrPIm\n";
    let Some(own) = Own::start(Some(web)).await else {
        return;
    };
    let with = |password: &str| {
        let settings = PrometheusSettings {
            runs_query: constant(),
            ..config(&own.url)
        };
        let auth = Auth::Basic {
            user: "user".to_owned(),
            password: password.to_owned(),
        };
        PrometheusDemand::new(settings, auth)
    };
    let ok = with("pass").unwrap().demand(1000).await;
    assert_eq!(ok.unwrap().volumes.runs["a"], 7.0);
    let e = with("wrong").unwrap().demand(1000).await.unwrap_err();
    assert!(!e.is_retryable(), "a wrong password does not heal: {e}");
    assert!(dispatcher_core::chain(&e).contains("401"), "{e}");
    let e = PrometheusDemand::new(
        PrometheusSettings {
            runs_query: constant(),
            ..config(&own.url)
        },
        Auth::None,
    )
    .unwrap()
    .demand(1000)
    .await
    .unwrap_err();
    assert!(
        dispatcher_core::chain(&e).contains("401"),
        "no credentials: {e}"
    );
}

/// Prometheus has no bearer authentication of its own (a Thanos querier behind a proxy,
/// as in production, does): the header and a proxy's 5xx, against a mock.
#[tokio::test]
async fn credentials_are_sent_and_server_errors_are_retryable() {
    let server = MockServer::start().await;
    let body = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"job_name":"a"},"value":[1,"2"]}]}}"#;
    Mock::given(method("GET"))
        .and(path("/api/v1/query"))
        .and(header("authorization", "Bearer t0ken"))
        .and(query_param("time", "1000"))
        .respond_with(ResponseTemplate::new(200).set_body_string(body))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/query"))
        .and(header("authorization", "Basic dXNlcjpwYXNz"))
        .respond_with(ResponseTemplate::new(503).set_body_string("overloaded"))
        .mount(&server)
        .await;
    let d = PrometheusDemand::new(config(&server.uri()), Auth::Bearer("t0ken".to_owned()))
        .unwrap()
        .demand(1000)
        .await
        .unwrap();
    assert_eq!(d.volumes.runs["a"], 2.0);
    let basic = Auth::Basic {
        user: "user".to_owned(),
        password: "pass".to_owned(),
    };
    let e = PrometheusDemand::new(config(&server.uri()), basic)
        .unwrap()
        .demand(1000)
        .await
        .unwrap_err();
    assert!(
        e.is_retryable() && dispatcher_core::chain(&e).contains("503"),
        "{e}"
    );
    // The offset moves the evaluation time back.
    let offset = PrometheusSettings {
        offset: Duration::from_secs(400),
        ..config(&server.uri())
    };
    assert!(
        PrometheusDemand::new(offset, Auth::Bearer("t0ken".to_owned()))
            .unwrap()
            .demand(1400)
            .await
            .is_ok()
    );
}
